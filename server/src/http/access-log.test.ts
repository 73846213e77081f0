import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { after, before, beforeEach, describe, it } from "node:test";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { buildApp } from "../app.ts";
import { AccessLogController } from "./access-log.ts";
import { createTestApp, signUp, type TestApp, type TestUser } from "../../test/harness.ts";
import { ACCESS_LINE, createLogger } from "../logger.ts";

// The access line does not depend on the database: PGlite only.
describe("request logging: one access line per request", () => {
  let t: TestApp;
  let user: TestUser;
  let lines: string[] = [];
  // biome-ignore lint/suspicious/noExplicitAny: log lines are free-form JSON, read field by field
  const entries = () => lines.map((l) => JSON.parse(l) as Record<string, any>);
  before(async () => {
    const sink = new Writable({
      write(chunk, _enc, cb) {
        lines.push(...String(chunk).split("\n").filter(Boolean));
        cb();
      },
    });
    t = await createTestApp({ backend: "pglite", worker: false, log: createLogger("info", sink) });
    user = await signUp(t, "Logged");
  });
  after(() => t.close());
  beforeEach(() => {
    lines = [];
  });

  it("writes one line when the response is sent: method, redacted URL, status, response time, request id, caller", async () => {
    const res = await t.call("GET", "/v1/me?token=s3cr3t-emailed-token&x=1", undefined, user.access_token);
    assert.equal(res.statusCode, 200);
    const all = entries();
    assert.equal(all.length, 1, `one line per request, got ${lines.join("\n")}`);
    const [line] = all;
    assert.equal(line.msg, ACCESS_LINE);
    assert.equal(line.level, 30);
    assert.deepEqual(line.req, { method: "GET", url: "/v1/me?token=[REDACTED]&x=1", host: "localhost", ip: "127.0.0.1" });
    assert.deepEqual(line.res, { statusCode: 200 });
    assert.equal(typeof line.responseTime, "number");
    assert.ok(line.responseTime >= 0);
    assert.equal(line.reqId, res.headers["x-request-id"]);
    assert.deepEqual(line.principal, { kind: "user", id: user.id });
    assert.ok(!lines.join("").includes(user.access_token), "the token is not logged");
  });

  it("keeps the caller's request id, and logs refused and unknown requests once, without a caller", async () => {
    const refused = await t.inject({ method: "GET", url: "/v1/me", headers: { "x-request-id": "trace-abc.123", authorization: "Bearer nonsense" } });
    assert.equal(refused.statusCode, 401);
    assert.equal(refused.headers["x-request-id"], "trace-abc.123");
    const missing = await t.inject({ method: "GET", url: "/nowhere/at-all" });
    assert.equal(missing.statusCode, 404);
    const all = entries();
    assert.deepEqual(
      all.map((l) => [l.msg, l.reqId, l.res.statusCode, l.req.url, l.principal]),
      [
        [ACCESS_LINE, "trace-abc.123", 401, "/v1/me", undefined],
        [ACCESS_LINE, missing.headers["x-request-id"], 404, "/nowhere/at-all", undefined],
      ],
    );
    assert.ok(!lines.join("").includes("nonsense"), "the presented credential is not logged");
  });

  it("writes the access line as text that is exactly the line pino would write for its fields", async () => {
    const out: string[] = [];
    const log = createLogger("info", new Writable({ write: (c, _e, cb) => (out.push(String(c)), cb()) }));
    const request = {
      id: "req_x",
      method: "GET",
      url: '/v1/orgs?state=s&a="q"',
      hostname: "plinth.test",
      ip: "10.0.0.1",
      principal: { kind: "api_key", keyId: "key_1" },
    };
    const reply = { statusCode: 201, elapsedTime: 0.25 };
    new AccessLogController(log).requestCompleted(null, request as unknown as FastifyRequest, reply as unknown as FastifyReply);
    log
      .child({}, { redact: [] })
      .info({ reqId: "req_x", req: request, res: { statusCode: 201 }, responseTime: 0.25, principal: { kind: "api_key", id: "key_1" } }, ACCESS_LINE);
    await new Promise((r) => setImmediate(r));
    const [fast, viaPino] = out.map((l) => l.replace(/"time":\d+/, '"time":0'));
    assert.equal(fast, viaPino);
    assert.equal(JSON.parse(fast).req.url, '/v1/orgs?state=[REDACTED]&a="q"');
  });

  describe("an error", () => {
    let app: FastifyInstance;
    before(async () => {
      // a second app on the same deps, with a route that fails
      app = await buildApp(t.deps);
      app.get("/boom", { config: { auth: "none" }, schema: { hide: true } }, async () => {
        throw new Error("kaboom: the disk is on fire");
      });
      await app.ready();
    });
    after(() => app.close());

    it("is logged with its details, beside the request's access line", async () => {
      const res = await app.inject({ method: "GET", url: "/boom" });
      assert.equal(res.statusCode, 500);
      assert.ok(!res.body.includes("kaboom"), "the details stay in the log");
      const all = entries();
      const error = all.find((l) => l.level === 50);
      assert.ok(error, `an error line, got ${lines.join("\n")}`);
      assert.equal(error.reqId, res.headers["x-request-id"], "the error line names the request");
      assert.equal(error.err.message, "kaboom: the disk is on fire");
      assert.match(error.err.stack, /access-log\.test\.ts/);
      const access = all.filter((l) => l.msg === ACCESS_LINE);
      assert.equal(access.length, 1);
      assert.equal(access[0].res.statusCode, 500);
      assert.equal(all.length, 2, `the error and the access line, got ${lines.join("\n")}`);
    });
  });
});
