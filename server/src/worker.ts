import { loadConfig } from "./config.ts";
import { createDeps } from "./deps.ts";
import { exitOnCrash, flushLogs } from "./logger.ts";
import { KEY_RELOAD_INTERVAL_MS } from "./modules/keys/signing-keys.ts";

/**
 * `plinth worker`: the job workers and the schedules (maintenance included) without the HTTP server, for scaled-out
 * deployments — `plinth serve` with PLINTH_RUN_WORKER=false behind a load balancer, plus any number of these. Jobs
 * and schedules are claimed through the database, so each runs once however many workers there are. SIGTERM or
 * SIGINT stops taking jobs, lets the ones in flight finish (JobQueue.stop), and exits 0.
 */
export async function worker(env: Record<string, string | undefined> = process.env): Promise<void> {
  const config = loadConfig(env);
  const deps = await createDeps(config);
  deps.jobs.start();
  // jobs that sign tokens (none today) would need the keys rotated elsewhere: re-read them as serve does
  const reload = setInterval(() => void deps.keys.reload().catch((e) => deps.log.warn({ err: e }, "signing key reload failed")), KEY_RELOAD_INTERVAL_MS);
  reload.unref();
  deps.log.info({ database: config.database.kind, tasks: deps.maintenance.names() }, "Plinth worker is running");
  process.stdout.write(`Plinth worker is running (no HTTP server); ${deps.maintenance.names().length} maintenance tasks scheduled\n`);
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    deps.log.info({ signal }, "worker shutting down: finishing the jobs in flight");
    clearInterval(reload);
    await deps.close(); // jobs.stop() first: no new claims, then waits for the running handler
    await flushLogs(deps.log);
    process.exit(0);
  };
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));
  exitOnCrash(deps.log);
}
