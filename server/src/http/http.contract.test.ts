import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { sql } from "drizzle-orm";
import type { FastifyInstance, InjectOptions } from "fastify";
import { BACKENDS, createTestApp, GOOD_PASSWORD, problemOf, signUp, uniqueEmail, type TestApp, type TestUser } from "../../test/harness.ts";
import { linkIn, startSmtp, type TestSmtp } from "../../test/smtp.ts";
import { createLogger } from "../logger.ts";

const JSON_TYPE = { "content-type": "application/json" };
const LOGIN = "/v1/auth/login";
const MiB = 1024 * 1024;

/** Every METHOD /path Fastify serves (HEAD aside), read from its route tree. */
function servedRoutes(app: FastifyInstance): Set<string> {
  const out = new Set<string>();
  const stack: string[] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split("\n")) {
    const m = /^([│ ]*)[├└]── (.*?)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (!m) continue;
    stack.length = m[1].length / 4;
    stack.push(m[2]);
    for (const method of (m[3] ?? "").split(", ").filter((x) => x && x !== "HEAD")) out.add(`${method} ${stack.join("")}`);
  }
  return out;
}

/** Bodies no route accepts: not objects, or objects with unknown fields. */
function junkBodies(): [string, string][] {
  let deep = '"bottom"';
  for (let i = 0; i < 5000; i++) deep = `{"a":${deep}}`;
  return [
    ["array", "[]"],
    ["array of objects", '[{"email":"a@example.com"}]'],
    ["null", "null"],
    ["number", "42"],
    ["huge number", "1e999"],
    ["string", '"hello"'],
    ["boolean", "true"],
    ["deeply nested object", deep],
    ["huge string", JSON.stringify("x".repeat(900_000))],
    ["object with a huge unknown field", JSON.stringify({ junk: "y".repeat(900_000) })],
    ["prototype pollution", '{"__proto__":{"is_platform_admin":true}}'],
    ["constructor pollution", '{"constructor":{"prototype":{"admin":true}}}'],
    ["control characters", '{"\\u0000":"\\u0000\\ud800"}'],
  ];
}

for (const backend of BACKENDS) {
  describe(`HTTP contract (${backend})`, () => {
    let t: TestApp;
    let user: TestUser;
    before(async () => {
      t = await createTestApp({ backend, worker: false });
      user = await signUp(t);
    });
    after(() => t.close());

    const raw = (method: InjectOptions["method"], url: string, payload?: string, headers: Record<string, string> = JSON_TYPE) =>
      t.inject({ method, url, payload, headers });

    it("answers malformed JSON with 400 MALFORMED_JSON", async () => {
      for (const payload of ['{"email":', "{", "{'email': 1}", '{"a":1}}', ""]) {
        const res = await raw("POST", LOGIN, payload);
        assert.equal(res.statusCode, 400, `${JSON.stringify(payload)}: ${res.body}`);
        const p = problemOf(res);
        assert.equal(p.code, "MALFORMED_JSON");
        assert.equal(p.field, "body");
      }
    });

    it("answers bodies that are not JSON with 415", async () => {
      for (const [type, payload] of [
        ["text/plain", "email=a@example.com"],
        ["application/xml", "<a/>"],
        ["application/x-www-form-urlencoded", "email=a%40example.com"],
      ]) {
        const res = await raw("POST", LOGIN, payload, { "content-type": type });
        assert.equal(res.statusCode, 415, `${type}: ${res.body}`);
        assert.equal(problemOf(res).code, "UNSUPPORTED_MEDIA_TYPE");
      }
    });

    it("answers bodies over 1 MiB with 413, and reads one just under", async () => {
      const over = await raw("POST", LOGIN, JSON.stringify({ email: "a".repeat(MiB), password: "x" }));
      assert.equal(over.statusCode, 413);
      assert.equal(problemOf(over).code, "PAYLOAD_TOO_LARGE");
      assert.equal(problemOf(over).detail, "The body is larger than 1 MiB.");
      const under = await raw("POST", LOGIN, JSON.stringify({ email: "a".repeat(MiB - 100), password: "x" }));
      assert.equal(under.statusCode, 400, "parsed and validated, not refused for size");
      assert.equal(problemOf(under).field, "email");
    });

    it("answers unknown routes with 404 ROUTE_NOT_FOUND", async () => {
      for (const [method, url] of [
        ["GET", "/v1/nope"],
        ["POST", "/nope?token=x"],
        ["GET", "/v1/me/"],
      ] as const) {
        const res = await raw(method, url, method === "POST" ? "{}" : undefined);
        assert.equal(res.statusCode, 404, `${method} ${url}: ${res.body}`);
        const p = problemOf(res);
        assert.equal(p.code, "ROUTE_NOT_FOUND");
        assert.equal((p as { instance?: string }).instance, url.split("?")[0], "the instance carries no query string");
      }
    });

    it("answers a wrong method on a known path with a 404/405 problem", async () => {
      for (const [method, url] of [
        ["DELETE", LOGIN],
        ["GET", "/v1/auth/register"],
        ["PUT", "/v1/me"],
        ["POST", "/healthz"],
      ] as const) {
        const res = await raw(method, url, method === "GET" ? undefined : "{}", { ...JSON_TYPE, authorization: `Bearer ${user.access_token}` });
        assert.ok([404, 405].includes(res.statusCode), `${method} ${url}: ${res.statusCode}`);
        assert.ok(["ROUTE_NOT_FOUND", "METHOD_NOT_ALLOWED"].includes(problemOf(res).code));
      }
    });

    it("refuses unknown fields with 400 naming them", async () => {
      const login = await t.call("POST", LOGIN, { email: user.email, password: GOOD_PASSWORD, remember_me: true });
      assert.equal(login.statusCode, 400);
      assert.deepEqual(
        problemOf(login).errors?.find((e) => e.field === "remember_me"),
        { field: "remember_me", reason: "is not a known field" },
      );
      const patch = await t.call("PATCH", "/v1/me", { is_platform_admin: true }, user.access_token);
      assert.equal(patch.statusCode, 400);
      assert.equal(problemOf(patch).field, "is_platform_admin");
      const me = await t.call("GET", "/v1/me", undefined, user.access_token);
      assert.equal(me.json().is_platform_admin ?? false, false);
    });

    it("never answers junk bodies with a 5xx or a stack trace", async () => {
      const routes: [InjectOptions["method"], string, boolean][] = [
        ["POST", "/v1/auth/register", false],
        ["POST", LOGIN, false],
        ["POST", "/v1/auth/refresh", false],
        ["POST", "/v1/auth/logout", false],
        ["POST", "/v1/auth/verify-email", false],
        ["POST", "/v1/auth/password-reset", false],
        ["POST", "/v1/auth/password-reset/confirm", false],
        ["POST", "/v1/auth/magic-link", false],
        ["POST", "/v1/auth/magic-link/verify", false],
        ["PATCH", "/v1/me", true],
        ["POST", "/v1/me/password", true],
      ];
      for (const [method, url, auth] of routes) {
        for (const [label, payload] of junkBodies()) {
          const res = await raw(method, url, payload, { ...JSON_TYPE, ...(auth ? { authorization: `Bearer ${user.access_token}` } : {}) });
          const what = `${method} ${url} with ${label}`;
          assert.ok(res.statusCode >= 400 && res.statusCode < 500, `${what}: ${res.statusCode} ${res.body.slice(0, 300)}`);
          problemOf(res); // problem+json, no stack
          assert.doesNotMatch(res.body, /node_modules|Error:|\.ts:\d+/, what);
        }
      }
      assert.equal((await t.call("GET", "/v1/me", undefined, user.access_token)).statusCode, 200, "the user is untouched");
    });

    it("echoes a valid x-request-id, replaces an invalid one, and quotes it in problems", async () => {
      const given = "client-req_1.2:3";
      const ok = await t.inject({ method: "GET", url: "/healthz", headers: { "x-request-id": given } });
      assert.equal(ok.headers["x-request-id"], given);
      const notFound = await t.inject({ method: "GET", url: "/nope", headers: { "x-request-id": given } });
      assert.equal(problemOf(notFound).request_id, given);
      for (const bad of ["r".repeat(300), "has spaces in it", "semi;colon", ""]) {
        const res = await t.inject({ method: "GET", url: "/nope", headers: { "x-request-id": bad } });
        const id = String(res.headers["x-request-id"]);
        assert.match(id, /^req_[0-9a-z]{26}$/, `replaced ${JSON.stringify(bad.slice(0, 20))}`);
        assert.equal(problemOf(res).request_id, id);
      }
      const a = await t.inject({ method: "GET", url: "/nope" });
      const b = await t.inject({ method: "GET", url: "/nope" });
      assert.match(String(a.headers["x-request-id"]), /^req_/);
      assert.notEqual(a.headers["x-request-id"], b.headers["x-request-id"]);
    });

    it("answers /healthz and /readyz", async () => {
      const health = await t.inject({ method: "GET", url: "/healthz" });
      assert.equal(health.statusCode, 200);
      assert.deepEqual(health.json(), { status: "ok" });
      const ready = await t.inject({ method: "GET", url: "/readyz" });
      assert.equal(ready.statusCode, 200, ready.body);
      const body = ready.json();
      assert.equal(body.status, "ready");
      assert.equal(body.checks.database.ok, true);
      assert.equal(body.checks.migrations.ok, true);
      assert.match(body.checks.migrations.detail, /^(\d+) of \1 applied$/);
    });

    it("answers /readyz 503 NOT_READY while a migration is missing", async () => {
      const t2 = await createTestApp({ backend, worker: false });
      try {
        await t2.db.owner.execute(sql`delete from drizzle.__drizzle_migrations where id = (select max(id) from drizzle.__drizzle_migrations)`);
        const res = await t2.inject({ method: "GET", url: "/readyz" });
        assert.equal(res.statusCode, 503, res.body);
        const p = problemOf(res);
        assert.equal(p.code, "NOT_READY");
        assert.match(p.detail, /migrations: (\d+) of (?!\1)\d+ applied; run plinth migrate/);
        assert.equal((await t2.inject({ method: "GET", url: "/healthz" })).statusCode, 200, "still alive");
      } finally {
        await t2.close();
      }
    });

    it("counts requests in /metrics by route template and status, with unmatched paths in one label", async () => {
      await t.call("GET", "/v1/me", undefined, user.access_token);
      await t.call("GET", "/v1/me");
      await t.inject({ method: "GET", url: "/scanner/probe-8c1f/wp-login.php" });
      const res = await t.inject({ method: "GET", url: "/metrics" });
      assert.equal(res.statusCode, 200);
      assert.match(String(res.headers["content-type"]), /^text\/plain/);
      const count = (labels: string) => {
        const line = res.body.split("\n").find((l) => l.startsWith(`plinth_http_requests_total{${labels}}`));
        return line ? Number(line.split(" ").pop()) : 0;
      };
      assert.ok(count('method="GET",route="/v1/me",status_code="200"') >= 1, res.body.slice(0, 2000));
      assert.ok(count('method="GET",route="/v1/me",status_code="401"') >= 1);
      assert.ok(count('method="GET",route="(unmatched)",status_code="404"') >= 1);
      assert.ok(!res.body.includes("probe-8c1f"), "raw paths never become labels");
      assert.match(res.body, /plinth_http_request_duration_seconds_bucket\{[^}]*route="\/v1\/me"/);
      // the histogram agrees with the counter: +Inf bucket = _count = requests, and buckets only grow
      const samples = res.body.split("\n").flatMap((l) => {
        const m = /^(\w+)\{(.*)\} (\S+)$/.exec(l);
        return m ? [{ name: m[1], labels: Object.fromEntries([...m[2].matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]])), value: Number(m[3]) }] : [];
      });
      const ofMe = (name: string) =>
        samples.filter((x) => x.name === name && x.labels.route === "/v1/me" && x.labels.method === "GET" && x.labels.status_code === "200");
      const requests = count('method="GET",route="/v1/me",status_code="200"');
      assert.equal(ofMe("plinth_http_request_duration_seconds_count")[0]?.value, requests);
      assert.ok((ofMe("plinth_http_request_duration_seconds_sum")[0]?.value ?? 0) > 0);
      const buckets = ofMe("plinth_http_request_duration_seconds_bucket");
      assert.equal(buckets.length, 13);
      assert.equal(buckets.find((b) => b.labels.le === "+Inf")?.value, requests);
      const values = buckets.map((b) => b.value);
      assert.deepEqual(
        values,
        [...values].sort((a, b) => a - b),
      );
      assert.match(res.body, /# TYPE plinth_http_request_duration_seconds histogram\n/);
      assert.match(res.body, /# TYPE plinth_http_requests_total counter\n/);
    });

    it("serves the invitation link's page: HTML that does nothing on GET, under a strict CSP", async () => {
      const res = await t.inject({ method: "GET", url: "/invitations/accept?token=org_x.secret" });
      assert.equal(res.statusCode, 200);
      assert.match(String(res.headers["content-type"]), /text\/html/);
      assert.match(String(res.headers["content-security-policy"]), /default-src 'none'; script-src 'self'/);
      assert.match(res.body, /\/invitations\/page\.js/);
      assert.doesNotMatch(res.body, /org_x\.secret/, "the token is read by the script, never echoed into the page");
      const js = await t.inject({ method: "GET", url: "/invitations/page.js" });
      assert.match(js.body, /\/v1\/invitations\/register/);
      assert.match(js.body, /\/v1\/invitations\/accept/);
    });

    it("serves an OpenAPI 3.1 document listing every route with an operationId, equal to ./openapi.json", async () => {
      const res = await t.inject({ method: "GET", url: "/openapi.json" });
      assert.equal(res.statusCode, 200);
      const doc = res.json() as { openapi: string; paths: Record<string, Record<string, { operationId?: string }>> };
      assert.equal(doc.openapi, "3.1.0");
      const documented = new Set<string>();
      const ids = new Set<string>();
      for (const [path, ops] of Object.entries(doc.paths)) {
        for (const [method, op] of Object.entries(ops)) {
          assert.match(op.operationId ?? "", /^[a-z][A-Za-z0-9]+$/, `${method} ${path} has an operationId`);
          assert.ok(!ids.has(op.operationId!), `operationId ${op.operationId} is unique`);
          ids.add(op.operationId!);
          documented.add(`${method.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ":$1")}`);
        }
      }
      // hidden on purpose: the docs UI, the document itself, and the HTML pages mail links open
      const served = [...servedRoutes(t.app)].filter((r) => !/ \/(docs|openapi\.json|auth\/|invitations\/(accept|page\.js)$)/.test(r));
      assert.ok(served.length >= 15, `parsed the route tree: ${served.join(", ")}`);
      assert.deepEqual([...documented].sort(), served.sort());
      const committed = JSON.parse(readFileSync(new URL("../../../openapi.json", import.meta.url), "utf8"));
      assert.deepEqual(doc, committed, "openapi.json is stale: run npm run openapi");
      const docs = await t.inject({ method: "GET", url: "/docs" });
      assert.equal(docs.statusCode, 200);
      assert.match(String(docs.headers["content-type"]), /text\/html/);
    });
  });

  describe(`logs keep secrets out (${backend})`, () => {
    let smtp: TestSmtp;
    let t: TestApp;
    const lines: string[] = [];
    before(async () => {
      smtp = await startSmtp();
      const sink = new Writable({
        write(chunk, _enc, cb) {
          lines.push(String(chunk));
          cb();
        },
      });
      // SMTP as in production: the dev outbox deliberately logs mail text (links included) for local development.
      t = await createTestApp({ backend, env: { SMTP_URL: smtp.url }, log: createLogger("trace", sink) });
    });
    after(async () => {
      await t.close();
      await smtp.close();
    });

    it("never logs passwords, access or refresh tokens, or emailed tokens", async () => {
      const email = uniqueEmail("logs");
      const password = `Secret-${Math.random().toString(36).slice(2)}-passphrase`;
      assert.equal((await t.call("POST", "/v1/auth/register", { email, password, name: "Logs" })).statusCode, 201);
      const { token } = linkIn(await smtp.waitFor(email), "/auth/verify-email");
      assert.equal((await t.inject({ method: "GET", url: `/auth/verify-email?token=${token}` })).statusCode, 200);
      assert.equal((await t.call("POST", "/v1/auth/verify-email", { token })).statusCode, 204);
      assert.equal((await t.call("POST", LOGIN, { email, password: `${password}-wrong` })).statusCode, 401);
      const login = await t.call("POST", LOGIN, { email, password });
      assert.equal(login.statusCode, 200);
      const first = login.json();
      assert.equal((await t.call("GET", `/v1/me?token=${first.refresh_token}`, undefined, first.access_token)).statusCode, 200);
      const refreshed = await t.call("POST", "/v1/auth/refresh", { refresh_token: first.refresh_token });
      assert.equal(refreshed.statusCode, 200);
      const second = refreshed.json();
      assert.equal((await t.call("POST", "/v1/auth/refresh", { refresh_token: first.refresh_token })).statusCode, 401, "reuse is refused (and logged)");
      assert.equal((await t.call("PATCH", "/v1/me", { name: "x" }, `${second.access_token}tampered`)).statusCode, 401);

      const log = lines.join("");
      assert.ok(lines.length >= 10, "the logger captured the requests");
      assert.ok(log.includes("/auth/verify-email?token=[REDACTED]"), "query tokens are redacted, the rest of the URL kept");
      assert.ok(log.includes(email.split("@")[1]) || log.includes("/v1/auth/register"), "the log is about these requests");
      const secrets: [string, string][] = [
        ["password", password],
        ["emailed token", token],
        ["access token", first.access_token],
        ["access token signature", first.access_token.split(".")[2]],
        ["refresh token", first.refresh_token],
        ["new access token", second.access_token],
        ["new refresh token", second.refresh_token],
      ];
      for (const [what, secret] of secrets) {
        assert.ok(secret.length >= 16, what);
        assert.ok(!log.includes(secret), `the ${what} appears in the log`);
      }
      assert.ok(!log.includes(GOOD_PASSWORD));
    });
  });
}
