/**
 * `plinth maintenance list|run` and `plinth worker` on an embedded data dir: the commands themselves (bin/plinth.mjs),
 * with rows made beforehand by deps booted in this process (and closed, so the data dir's lock is free).
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, describe, it } from "node:test";
import { loadConfig } from "../config.ts";
import { createDeps, type Deps } from "../deps.ts";
import { createManualClock, type Clock } from "../lib/clock.ts";
import { createLogger } from "../logger.ts";
import { freePort } from "../../test/services.ts";
import { startSmtp } from "../../test/smtp.ts";
import { GOOD_PASSWORD, uniqueEmail } from "../../test/harness.ts";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function freshDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "plinth-maintenance-"));
  dirs.push(dir);
  return dir;
}

const cliEnv = (env: Record<string, string>) => ({ PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/tmp", LOG_LEVEL: "silent", ...env });

function plinth(args: string[], env: Record<string, string>) {
  const r = spawnSync(process.execPath, ["bin/plinth.mjs", ...args], { cwd: ROOT, env: cliEnv(env), encoding: "utf8", timeout: 120_000 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function withDeps<T>(env: Record<string, string>, fn: (deps: Deps) => Promise<T>, clock?: Clock): Promise<T> {
  const deps = await createDeps(loadConfig(cliEnv(env)), { log: createLogger("silent"), clock });
  try {
    return await fn(deps);
  } finally {
    await deps.close();
  }
}

describe("plinth maintenance", { timeout: 300_000 }, () => {
  const dir = freshDir();
  const env = { PLINTH_DATA_DIR: dir };

  it("run TASK removes what is due and says what; list shows each task's schedule and last run; an unknown task is exit 2 with the list", async () => {
    // a job that failed for good a month ago (no handler for its kind, one attempt): past the dead jobs' retention
    const past = createManualClock(new Date(Date.now() - 30 * 24 * 3600 * 1000));
    await withDeps(
      env,
      async (deps) => {
        await deps.db.tx({}, (tx) => deps.jobs.enqueue(tx, "test.nobody-handles", {}, { maxAttempts: 1 }));
        assert.equal(await deps.jobs.drain("test.nobody-handles"), 1);
      },
      past,
    );

    const run = plinth(["maintenance", "run", "jobs.dead"], env);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /^jobs\.dead: removed 1 jobs in \d+ ms$/m);
    const again = plinth(["maintenance", "run", "jobs.dead"], env);
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, /^jobs\.dead: removed 0 jobs in \d+ ms$/m);

    const list = plinth(["maintenance", "list"], env);
    assert.equal(list.status, 0, list.stderr);
    const lines = list.stdout.trim().split("\n");
    assert.deepEqual(
      lines.map((l) => l.split("  ")[0]),
      [
        "identity.email-tokens",
        "identity.sessions",
        "ingestion.retention",
        "invitations.ended",
        "jobs.dead",
        "keys.retire",
        "orgs.purge-deleted",
        "vault.lifecycle",
      ],
    );
    const dead = lines.find((l) => l.startsWith("jobs.dead"));
    assert.match(dead ?? "", /^jobs\.dead {2}every 1 d {2}next \S+ {2}last \S+ \(cli\) ok; removed 0 jobs$/);
    assert.match(lines.find((l) => l.startsWith("keys.retire")) ?? "", /every 10 min .* never run$/);

    const unknown = plinth(["maintenance", "run", "sessions"], env);
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /no maintenance task sessions; the tasks are:\n {2}identity\.email-tokens\n[\s\S]* {2}orgs\.purge-deleted\n/);
    assert.equal(plinth(["maintenance", "run"], env).status, 2);
    assert.equal(plinth(["maintenance", "nope"], env).status, 2);
  });
});

describe("plinth worker", { timeout: 300_000 }, () => {
  it("runs a queued job (a mail reaches SMTP) with no HTTP port open, and exits 0 on SIGTERM", async () => {
    const smtp = await startSmtp();
    const port = await freePort();
    const env = { PLINTH_DATA_DIR: freshDir(), SMTP_URL: smtp.url, PORT: String(port) };
    try {
      // a sign-up queues its verification mail; nothing runs it here (no worker in this process)
      const email = uniqueEmail("worker");
      await withDeps(env, (deps) =>
        deps.identity.identity.register({ email, password: GOOD_PASSWORD, name: "Queued" }, { ip: "127.0.0.1", userAgent: null, requestId: "req_test" }),
      );
      assert.equal(smtp.messages.length, 0);

      const child = spawn(process.execPath, ["bin/plinth.mjs", "worker"], { cwd: ROOT, env: cliEnv(env), stdio: ["ignore", "pipe", "pipe"] });
      const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
      let output = "";
      child.stdout.on("data", (b: Buffer) => (output += b.toString()));
      child.stderr.on("data", (b: Buffer) => (output += b.toString()));
      try {
        const mail = await smtp.waitFor(email, undefined, 90_000);
        assert.match(mail.subject, /verify|confirm/i);
        assert.match(output, /Plinth worker is running \(no HTTP server\)/);
        const refused = await new Promise<boolean>((resolve) => {
          const s = connect({ port, host: "127.0.0.1" });
          s.once("connect", () => {
            s.destroy();
            resolve(false);
          });
          s.once("error", () => resolve(true));
        });
        assert.ok(refused, `nothing listens on port ${port}`);
        child.kill("SIGTERM");
        assert.equal(await exited, 0, output);
      } finally {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      }
    } finally {
      await smtp.close();
    }
  });
});
