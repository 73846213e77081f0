import { buildApp } from "./app.ts";
import { loadConfig } from "./config.ts";
import { createDeps } from "./deps.ts";
import { exitOnCrash, flushLogs } from "./logger.ts";
import { KEY_RELOAD_INTERVAL_MS } from "./modules/keys/signing-keys.ts";

/** `plinth serve`: loadConfig → createDeps → buildApp → listen. */
export async function serve(env: Record<string, string | undefined> = process.env): Promise<void> {
  const config = loadConfig(env);
  const deps = await createDeps(config);
  const app = await buildApp(deps);
  if (config.runWorker) deps.jobs.start();
  // Each instance re-reads the signing keys, to pick up a key rotated or retired elsewhere; retiring them is a job
  // that runs once across all instances (keys.retire, scheduled in deps.ts).
  const maintenance = setInterval(() => void deps.keys.reload().catch((e) => deps.log.warn({ err: e }, "signing key reload failed")), KEY_RELOAD_INTERVAL_MS);
  maintenance.unref();
  await app.listen({ port: config.port, host: config.host });
  const where = config.database.kind === "embedded" ? `embedded PostgreSQL (PGlite) in ${config.database.dir}` : "PostgreSQL (DATABASE_URL)";
  deps.log.info({ url: config.publicUrl, database: config.database.kind, dataDir: config.dataDir }, "Plinth is serving");
  process.stdout.write(`\nPlinth is running at ${config.publicUrl}  (API reference: ${config.publicUrl}/docs)\nData: ${where}\n\n`);
  const stop = async (signal: string) => {
    deps.log.info({ signal }, "shutting down");
    clearInterval(maintenance);
    await app.close();
    await deps.close();
    await flushLogs(deps.log);
    process.exit(0);
  };
  process.once("SIGINT", () => void stop("SIGINT"));
  process.once("SIGTERM", () => void stop("SIGTERM"));
  // The log is written asynchronously: a crash writes its cause, and what was still buffered, before the process ends.
  exitOnCrash(deps.log);
}
