import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import pino from "pino";
import { loadConfig } from "./config.ts";
import { ACCESS_LINE, createServerLogger, flushLogsSync } from "./logger.ts";

describe("the server's log format", () => {
  const dir = mkdtempSync(join(tmpdir(), "plinth-logger-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  let n = 0;

  /** Logs a few lines through the server's logger for `env` onto a file (as stdout), flushes, and reads them back. */
  function logWith(env: Record<string, string>, tty: boolean): { out: string; beforeFlush: string } {
    const config = loadConfig(env, dir, tty);
    const path = join(dir, `out-${++n}.log`);
    const fd = openSync(path, "w");
    const log = createServerLogger(config, fd);
    log.info(
      { req: { method: "POST", url: "/auth/verify-email?token=emailed-secret" }, res: { statusCode: 204 }, responseTime: 1.25, reqId: "req_1" },
      ACCESS_LINE,
    );
    log.info({ body: { password: "hunter2-passphrase", refresh_token: "rt-secret" } }, "login attempt");
    log.error({ err: new Error("database unreachable") }, "request failed");
    const beforeFlush = readFileSync(path, "utf8");
    flushLogsSync(log);
    const out = readFileSync(path, "utf8");
    // the JSON stream closes its own fd (and stops its periodic flush) when ended; the pretty one is a plain wrapper
    const stream = (log as unknown as Record<symbol, { end?: () => void }>)[pino.symbols.streamSym];
    if (config.logFormat === "json" && stream.end) stream.end();
    else closeSync(fd);
    return { out, beforeFlush };
  }

  const assertRedacted = (out: string) => {
    for (const secret of ["emailed-secret", "hunter2-passphrase", "rt-secret"]) assert.ok(!out.includes(secret), `${secret} reached the log:\n${out}`);
    assert.ok(out.includes("[REDACTED]"));
  };

  it("defaults to readable lines on a terminal and JSON elsewhere", () => {
    assert.equal(loadConfig({}, dir, true).logFormat, "pretty");
    assert.equal(loadConfig({}, dir, false).logFormat, "json");
    assert.equal(loadConfig({ LOG_FORMAT: "json" }, dir, true).logFormat, "json");
    assert.equal(loadConfig({ LOG_FORMAT: "pretty" }, dir, false).logFormat, "pretty");
  });

  it("LOG_FORMAT=json writes one JSON object a line, redacted (flushLogsSync writes out what is batched)", () => {
    const { out, beforeFlush } = logWith({ LOG_FORMAT: "json" }, true);
    assert.equal(beforeFlush, "", "JSON lines are batched, not written one by one");
    const lines = out
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l));
    assert.equal(lines.length, 3);
    assert.deepEqual(
      lines.map((l) => l.msg),
      [ACCESS_LINE, "login attempt", "request failed"],
    );
    assert.equal(lines[0].req.url, "/auth/verify-email?token=[REDACTED]");
    assert.equal(lines[1].body.password, "[REDACTED]");
    assert.equal(lines[2].err.message, "database unreachable");
    assertRedacted(out);
  });

  it("a batched JSON line is written within a second even when no more lines follow", async () => {
    const path = join(dir, "idle.log");
    const fd = openSync(path, "w");
    const log = createServerLogger(loadConfig({ LOG_FORMAT: "json" }, dir, false), fd);
    log.info("a lone line");
    const deadline = Date.now() + 1000;
    while (!readFileSync(path, "utf8").includes("a lone line") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.match(readFileSync(path, "utf8"), /"msg":"a lone line"/);
    (log as unknown as Record<symbol, { end(): void }>)[pino.symbols.streamSym].end();
  });

  it("lines still in memory are written out when the process exits", () => {
    const path = join(dir, "exit.log");
    const script = `
      import { openSync } from "node:fs";
      import { createServerLogger } from ${JSON.stringify(new URL("./logger.ts", import.meta.url).href)};
      const log = createServerLogger({ logLevel: "info", logFormat: "json" }, openSync(${JSON.stringify(path)}, "w"));
      log.info("the last words");
      process.exit(0);`;
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.match(readFileSync(path, "utf8"), /"msg":"the last words"/);
  });

  it("LOG_FORMAT=pretty writes readable lines, redacted the same way", () => {
    const { out, beforeFlush } = logWith({ LOG_FORMAT: "pretty" }, false);
    assert.equal(beforeFlush, out, "readable lines are written as they come");
    const lines = out.trimEnd().split("\n");
    assert.ok(
      lines.every((l) => !l.startsWith("{")),
      `not JSON:\n${out}`,
    );
    assert.match(lines[0], /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: POST \/auth\/verify-email\?token=\[REDACTED\] 204 1\.3 ms \{"reqId":"req_1"\}$/);
    assert.match(out, /INFO: login attempt \{"body":\{"password":"\[REDACTED\]","refresh_token":"\[REDACTED\]"\}\}/);
    assert.match(out, /ERROR: request failed/);
    assert.match(out, /database unreachable/);
    assert.match(out, /at .*logger\.test\.ts/, "the error's stack is shown");
    assert.ok(!out.includes("\u001b["), "no colours when not writing to a terminal");
    assertRedacted(out);
  });
});
