import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { sql } from "drizzle-orm";
import { Webhook } from "standardwebhooks";
import {
  BACKENDS,
  addMember,
  assertFieldError,
  assertProblem,
  createTestApp,
  makeOrg,
  signUp,
  uniqueSlug,
  type TestApp,
  type TestUser,
} from "../../../test/harness.ts";
import { createManualClock } from "../../lib/clock.ts";
import { newId } from "../../lib/ids.ts";
import { createLogger } from "../../logger.ts";
import { createOutboundGuard, parseOutboundAllow } from "../../lib/outbound.ts";
import { createDeliverer, RETRY_DELAYS_MS } from "./webhooks.delivery.ts";
import { webhooksRepo } from "./webhooks.repo.ts";

interface Received {
  id: string;
  timestamp: string;
  signatures: string[];
  body: Record<string, unknown>;
  raw: string;
  /** For each secret registered for the path: whether Webhook.verify accepted the request with it. */
  verified: boolean[];
}

/**
 * A real receiver on 127.0.0.1: each path answers with the status its plan gives for the n-th request, and verifies
 * every request with the standardwebhooks package against the secrets the test registered for the path.
 */
function startReceiver() {
  const got = new Map<string, Received[]>();
  const plans = new Map<string, (n: number) => number>();
  const secrets = new Map<string, string[]>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const path = req.url ?? "/";
      const raw = Buffer.concat(chunks).toString("utf8");
      const headers = {
        "webhook-id": String(req.headers["webhook-id"]),
        "webhook-timestamp": String(req.headers["webhook-timestamp"]),
        "webhook-signature": String(req.headers["webhook-signature"]),
      };
      const verified = (secrets.get(path) ?? []).map((s) => {
        try {
          new Webhook(s).verify(raw, headers);
          return true;
        } catch {
          return false;
        }
      });
      const list = got.get(path) ?? [];
      list.push({
        id: headers["webhook-id"],
        timestamp: headers["webhook-timestamp"],
        signatures: headers["webhook-signature"].split(" "),
        body: JSON.parse(raw),
        raw,
        verified,
      });
      got.set(path, list);
      const status = (plans.get(path) ?? (() => 200))(list.length);
      res.writeHead(status, { "content-type": "text/plain" }).end(`answer ${status} ${"x".repeat(2000)}`);
    });
  });
  return {
    got: (path: string) => got.get(path) ?? [],
    plan: (path: string, f: (n: number) => number) => plans.set(path, f),
    secrets: (path: string, s: string[]) => secrets.set(path, s),
    async listen() {
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
      return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    },
    async close() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

for (const backend of BACKENDS) {
  describe(`outbound webhooks (${backend})`, () => {
    let t: TestApp;
    let owner: TestUser;
    let viewer: TestUser;
    let stranger: TestUser;
    let otherOrgId: string;
    let receiver: ReturnType<typeof startReceiver>;
    let hookBase: string;
    // behind real time by four minutes: retries move it forward and Webhook.verify (5 min tolerance) still accepts
    const clock = createManualClock(new Date(Date.now() - 4 * 60_000));
    const start = clock.now();
    const logs: string[] = [];
    /** Every signing secret the API showed: none may be stored or logged in plaintext. */
    const secretsShown: string[] = [];

    before(async () => {
      receiver = startReceiver();
      hookBase = await receiver.listen();
      const sink = new Writable({
        write(chunk, _enc, done) {
          logs.push(String(chunk));
          done();
        },
      });
      // the receiver listens on 127.0.0.1: allowed explicitly, as an operator would
      t = await createTestApp({ backend, worker: false, clock, env: { PLINTH_OUTBOUND_ALLOW: "127.0.0.1" }, log: createLogger("trace", sink) });
      owner = await signUp(t, "Olga Owner");
      viewer = await signUp(t, "Vera Viewer");
      stranger = await signUp(t, "Stan Stranger");
      otherOrgId = await makeOrg(t, stranger, "Elsewhere Inc", uniqueSlug("wh"));
    });
    after(async () => {
      await t.close();
      await receiver.close();
    });

    const rows = async (q: ReturnType<typeof sql>) => ((await t.db.owner.execute(q)) as unknown as { rows: Record<string, unknown>[] }).rows;
    const freshOrg = async () => {
      const orgId = await makeOrg(t, owner, "Hooked Inc", uniqueSlug("wh"));
      await addMember(t, orgId, viewer, "viewer");
      return orgId;
    };
    const api = (orgId: string, path = "") => `/v1/orgs/${orgId}/webhooks${path}`;
    async function createEndpoint(orgId: string, path: string, body: Record<string, unknown> = {}) {
      const res = await t.call("POST", api(orgId, "/endpoints"), { url: `${hookBase}${path}`, description: `for ${path}`, ...body }, owner.access_token);
      assert.equal(res.statusCode, 201, res.body);
      const e = res.json();
      secretsShown.push(e.secret);
      receiver.secrets(path, [e.secret]);
      return e as { id: string; secret: string };
    }
    /** Moves the clock to the delivery's pending retry job and runs what is due. */
    async function runNextAttempt(deliveryId: string) {
      const [job] = await rows(sql`select run_at from jobs where kind = 'webhooks.deliver' and payload->>'delivery_id' = ${deliveryId}`);
      assert.ok(job, `a retry of ${deliveryId} is queued`);
      clock.set(new Date(job.run_at as string));
      await t.deps.jobs.drain();
    }
    const delivery = async (orgId: string, id: string) => {
      const res = await t.call("GET", api(orgId, `/deliveries/${id}`), undefined, owner.access_token);
      assert.equal(res.statusCode, 200, res.body);
      return res.json();
    };
    const deliveriesOf = async (orgId: string, endpointId: string, query = "") => {
      const res = await t.call("GET", api(orgId, `/endpoints/${endpointId}/deliveries${query}`), undefined, owner.access_token);
      assert.equal(res.statusCode, 200, res.body);
      return res.json();
    };

    it("lists the event types with a schema and an example, to any signed-in user", async () => {
      const res = await t.call("GET", "/v1/webhook-event-types", undefined, viewer.access_token);
      assert.equal(res.statusCode, 200, res.body);
      const names = res.json().items.map((i: { name: string }) => i.name);
      for (const n of ["member.added", "member.removed", "member.role_changed", "invitation.accepted", "key.created", "key.rotated", "key.revoked"])
        assert.ok(names.includes(n), n);
      for (const n of ["service_account.created", "service_account.updated", "service_account.deleted", "org.updated", "audit.event"])
        assert.ok(names.includes(n), n);
      const role = res.json().items.find((i: { name: string }) => i.name === "member.role_changed");
      assert.equal(role.example.type, "member.role_changed");
      assert.equal(role.schema.properties.type.const, "member.role_changed");
      assert.equal((await t.call("GET", "/v1/webhook-event-types")).statusCode, 401);
    });

    it("creates an endpoint whose secret is shown once; reading it never shows the secret", async () => {
      const orgId = await freshOrg();
      const e = await createEndpoint(orgId, "/once");
      assert.match(e.secret, /^whsec_[A-Za-z0-9+/]{43}=$/);
      const got = await t.call("GET", api(orgId, `/endpoints/${e.id}`), undefined, viewer.access_token);
      assert.equal(got.statusCode, 403, "a viewer lacks webhooks:read");
      const read = await t.call("GET", api(orgId, `/endpoints/${e.id}`), undefined, owner.access_token);
      assert.equal(read.statusCode, 200);
      assert.equal(read.json().secret, undefined);
      assert.ok(!read.body.includes(e.secret.slice(6)));
      const list = await t.call("GET", api(orgId, "/endpoints"), undefined, owner.access_token);
      assert.deepEqual(
        list.json().items.map((x: { id: string }) => x.id),
        [e.id],
      );
      assert.ok(!list.body.includes(e.secret.slice(6)));
      assertProblem(await t.call("GET", api(otherOrgId, `/endpoints/${e.id}`), undefined, stranger.access_token), 404, "WEBHOOK_ENDPOINT_NOT_FOUND");
      assert.equal((await t.call("GET", api(orgId, `/endpoints/${e.id}`), undefined, stranger.access_token)).statusCode, 404);
    });

    it("an org change produces a signed delivery that verifies; event types filter what each endpoint gets", async () => {
      const orgId = await freshOrg();
      const all = await createEndpoint(orgId, "/all");
      const roles = await createEndpoint(orgId, "/roles", { event_types: ["member.role_changed"] });
      const firehose = await createEndpoint(orgId, "/firehose", { event_types: ["audit.event"] });
      const patched = await t.call("PATCH", `/v1/orgs/${orgId}`, { name: "Renamed Inc" }, owner.access_token);
      assert.equal(patched.statusCode, 200, patched.body);
      await t.deps.jobs.drain();

      const [got] = receiver.got("/all");
      assert.ok(got, "the org.updated event reached the endpoint");
      assert.deepEqual(got.verified, [true], "Webhook.verify accepts it");
      assert.equal(got.body.type, "org.updated");
      assert.equal((got.body.data as { org_id: string }).org_id, orgId);
      assert.equal(receiver.got("/roles").length, 0, "an endpoint subscribed to member.role_changed only");
      assert.ok(
        receiver.got("/firehose").some((r) => r.body.type === "audit.event" && (r.body.data as { action: string }).action === "org.updated"),
        "the firehose has every audit event",
      );

      await addMember(t, orgId, stranger, "viewer");
      const changed = await t.call("PATCH", `/v1/orgs/${orgId}/members/${stranger.id}`, { role: "developer" }, owner.access_token);
      assert.equal(changed.statusCode, 200, changed.body);
      await t.deps.jobs.drain();
      const [role] = receiver.got("/roles");
      assert.equal(role?.body.type, "member.role_changed");
      assert.deepEqual(role.verified, [true]);
      assert.deepEqual((role.body.data as { changes: unknown }).changes, { role: ["viewer", "developer"] });
      assert.equal(receiver.got("/all").length, 2, "no firehose for an endpoint that did not ask");

      const page = await deliveriesOf(orgId, all.id);
      assert.equal(page.items.length, 2);
      const one = await delivery(orgId, page.items.find((i: { message_id: string }) => i.message_id === got.id).id);
      assert.equal(one.status, "delivered");
      assert.equal(one.message_id, got.id);
      assert.deepEqual(
        one.attempt_log.map((a: { status: string; response_status: number }) => [a.status, a.response_status]),
        [["succeeded", 200]],
      );
      assert.equal(one.attempt_log[0].response_body.length, 1024, "the first 1 KiB of the answer");
      // cursor pagination, newest first
      const first = await deliveriesOf(orgId, all.id, "?limit=1");
      assert.equal(first.items[0].id, page.items[0].id);
      const second = await deliveriesOf(orgId, all.id, `?limit=1&cursor=${first.next_cursor}`);
      assert.equal(second.items[0].id, page.items[1].id);
      assert.equal(second.next_cursor, null);
      assert.ok(firehose.id && roles.id);
    });

    it("a receiver that is down, then up: retried on the schedule and delivered; the log tells the story", async () => {
      const orgId = await freshOrg();
      receiver.plan("/flaky", (n) => (n <= 2 ? 503 : 200));
      const e = await createEndpoint(orgId, "/flaky");
      const test = await t.call("POST", api(orgId, `/endpoints/${e.id}/$test`), undefined, owner.access_token);
      assert.equal(test.statusCode, 202, test.body);
      const id = test.json().id as string;
      await t.deps.jobs.drain();
      assert.equal((await delivery(orgId, id)).status, "pending");
      const t1 = clock.now().getTime();
      await runNextAttempt(id);
      const t2 = clock.now().getTime();
      assert.ok(t2 - t1 >= RETRY_DELAYS_MS[0] * 0.9 && t2 - t1 <= RETRY_DELAYS_MS[0] * 1.1, "the first retry after about 5 s");
      await runNextAttempt(id);
      assert.ok(clock.now().getTime() - t2 >= RETRY_DELAYS_MS[1] * 0.9, "the second after about 5 min");
      const d = await delivery(orgId, id);
      assert.equal(d.status, "delivered");
      assert.equal(d.attempts, 3);
      assert.deepEqual(
        d.attempt_log.map((a: { attempt: number; status: string; response_status: number; error_kind: string | null }) => [
          a.attempt,
          a.status,
          a.response_status,
          a.error_kind,
        ]),
        [
          [1, "failed", 503, "http_status"],
          [2, "failed", 503, "http_status"],
          [3, "succeeded", 200, null],
        ],
      );
      const got = receiver.got("/flaky");
      assert.equal(got.length, 3);
      assert.ok(
        got.every((r) => r.id === d.message_id && r.verified[0]),
        "one webhook-id, every attempt signed and verified",
      );
      assert.equal(got[0].body.type, "webhook.test");
      const ep = await t.call("GET", api(orgId, `/endpoints/${e.id}`), undefined, owner.access_token);
      assert.equal(ep.json().failing_since, null, "a success ends the failure streak");
    });

    it("a connection refused is an attempt too; 410 disables the endpoint and nothing more is sent", async () => {
      const orgId = await freshOrg();
      const down = await t.call("POST", api(orgId, "/endpoints"), { url: "http://127.0.0.1:9/closed" }, owner.access_token);
      assert.equal(down.statusCode, 201);
      secretsShown.push(down.json().secret);
      const sent = await t.call("POST", api(orgId, `/endpoints/${down.json().id}/$test`), undefined, owner.access_token);
      await t.deps.jobs.drain();
      const d = await delivery(orgId, sent.json().id);
      assert.equal(d.attempt_log[0].error_kind, "connection");
      assert.equal(d.status, "pending", "a retry is due");

      receiver.plan("/gone", () => 410);
      const e = await createEndpoint(orgId, "/gone", { event_types: ["org.updated"] });
      await t.call("POST", api(orgId, `/endpoints/${e.id}/$test`), undefined, owner.access_token);
      await t.deps.jobs.drain();
      const ep = (await t.call("GET", api(orgId, `/endpoints/${e.id}`), undefined, owner.access_token)).json();
      assert.equal(ep.enabled, false);
      assert.equal(ep.disabled_reason, "gone");
      const [gone] = (await deliveriesOf(orgId, e.id)).items;
      assert.equal(gone.status, "failed", "no retry after 410");
      await t.call("PATCH", `/v1/orgs/${orgId}`, { name: "Still Changing Inc" }, owner.access_token);
      await t.deps.jobs.drain();
      assert.equal(receiver.got("/gone").length, 1, "a disabled endpoint gets nothing");
      assertProblem(await t.call("POST", api(orgId, `/endpoints/${e.id}/$test`), undefined, owner.access_token), 409, "WEBHOOK_ENDPOINT_DISABLED");
      const audit = await rows(sql`select actor_type, diff from audit_events where org_id = ${orgId} and action = 'webhook.endpoint.disabled'`);
      assert.deepEqual(audit[0].diff, { enabled: [true, false], reason: "gone" });
      // the owner is told by mail
      const mail = await rows(sql`select subject, text from mail_outbox where "to" = ${owner.email} and subject = 'A webhook endpoint was disabled'`);
      assert.ok(mail.some((m) => String(m.text).includes(e.id)));
    });

    it("an endpoint failing for 5 days is disabled", async () => {
      const orgId = await freshOrg();
      receiver.plan("/dying", () => 500);
      const e = await createEndpoint(orgId, "/dying");
      await t.db.owner.execute(sql`update webhook_endpoints set failing_since = ${new Date(clock.now().getTime() - 5 * 86_400_000)} where id = ${e.id}`);
      await t.call("POST", api(orgId, `/endpoints/${e.id}/$test`), undefined, owner.access_token);
      await t.deps.jobs.drain();
      const ep = (await t.call("GET", api(orgId, `/endpoints/${e.id}`), undefined, owner.access_token)).json();
      assert.equal(ep.disabled_reason, "failing");
      // enabling again clears it
      const on = await t.call("PATCH", api(orgId, `/endpoints/${e.id}`), { enabled: true }, owner.access_token);
      assert.equal(on.statusCode, 200, on.body);
      assert.equal(on.json().disabled_reason, null);
      assert.equal(on.json().failing_since, null);
    });

    it("a rotated secret: during the overlap each delivery carries both signatures, each verifying with its secret", async () => {
      const orgId = await freshOrg();
      const e = await createEndpoint(orgId, "/rotated");
      const rotated = await t.call("POST", api(orgId, `/endpoints/${e.id}/$rotate-secret`), undefined, owner.access_token);
      assert.equal(rotated.statusCode, 200, rotated.body);
      const next = rotated.json().secret as string;
      secretsShown.push(next);
      assert.notEqual(next, e.secret);
      receiver.secrets("/rotated", [e.secret, next]);
      await t.call("POST", api(orgId, `/endpoints/${e.id}/$test`), undefined, owner.access_token);
      await t.deps.jobs.drain();
      const [got] = receiver.got("/rotated");
      assert.equal(got.signatures.length, 2);
      assert.ok(got.signatures.every((s) => s.startsWith("v1,")));
      assert.deepEqual(got.verified, [true, true], "the old secret and the new one each verify");
      // each signature is the one of its secret: with only one of them left in the header, each still verifies alone
      for (const [i, secret] of [e.secret, next].entries()) {
        const headers = { "webhook-id": got.id, "webhook-timestamp": got.timestamp, "webhook-signature": got.signatures[1 - i] };
        assert.doesNotThrow(() => new Webhook(secret).verify(got.raw, headers));
        assert.throws(() => new Webhook(secret).verify(got.raw, { ...headers, "webhook-signature": got.signatures[i] }));
      }
      const ep = (await t.call("GET", api(orgId, `/endpoints/${e.id}`), undefined, owner.access_token)).json();
      assert.equal(ep.previous_secret_expires_at, rotated.json().previous_secret_expires_at);
    });

    it("an org key rotation re-wraps the signing secrets too: the old key version retires only once they moved, and deliveries still verify", async () => {
      const orgId = await freshOrg();
      const e = await createEndpoint(orgId, "/kek");
      const kekOf = async () => (await rows(sql`select (secret->>'kekVersion')::int as v from webhook_endpoints where id = ${e.id}`))[0].v;
      assert.equal(await kekOf(), 1);
      const rotated = await t.call("POST", `/v1/orgs/${orgId}/vault/$rotate`, undefined, owner.access_token);
      assert.equal(rotated.statusCode, 202, rotated.body);
      await t.deps.jobs.drain();
      assert.equal(await kekOf(), 2, "the endpoint's secret is wrapped under the new key version");
      const keks = await rows(sql`select version, retired_at from vault_keks where org_id = ${orgId} order by version`);
      assert.deepEqual(
        keks.map((k) => [k.version, k.retired_at !== null]),
        [
          [1, true],
          [2, false],
        ],
        "v1 retired: nothing uses it any more",
      );
      await t.call("POST", api(orgId, `/endpoints/${e.id}/$test`), undefined, owner.access_token);
      await t.deps.jobs.drain();
      const [got] = receiver.got("/kek");
      assert.deepEqual(got.verified, [true], "signed with the same secret, opened under the new key version");
    });

    it("refuses endpoints at loopback, private, link-local and metadata addresses (400 naming url), and again at delivery time", async () => {
      const orgId = await freshOrg();
      const before = await rows(sql`select count(*)::int as n from webhook_endpoints where org_id = ${orgId}`);
      for (const url of [
        "http://10.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[fd00:ec2::254]/",
        "http://127.0.0.2/",
        "https://[::1]/x",
      ]) {
        assertFieldError(await t.call("POST", api(orgId, "/endpoints"), { url }, owner.access_token), "url");
      }
      // without the allowlist, 127.0.0.1 and localhost are refused too
      const bare = await createTestApp({ backend, worker: false, sameDatabaseAs: t });
      try {
        for (const url of [`${hookBase}/x`, "http://localhost/x", "https://localhost/x"])
          assertFieldError(await bare.call("POST", api(orgId, "/endpoints"), { url }, owner.access_token), "url");
      } finally {
        await bare.close();
      }
      assert.deepEqual(await rows(sql`select count(*)::int as n from webhook_endpoints where org_id = ${orgId}`), before);

      // an endpoint whose address became a blocked one is refused when the delivery is attempted
      const e = await createEndpoint(orgId, "/moved");
      await t.db.owner.execute(sql`update webhook_endpoints set url = 'http://169.254.169.254/latest/meta-data/' where id = ${e.id}`);
      const sent = await t.call("POST", api(orgId, `/endpoints/${e.id}/$test`), undefined, owner.access_token);
      await t.deps.jobs.drain();
      const d = await delivery(orgId, sent.json().id);
      assert.equal(d.attempt_log[0].error_kind, "blocked_address");
      assert.equal(d.attempt_log[0].response_status, null);
      assert.equal(receiver.got("/moved").length, 0);
      const patched = await t.call("PATCH", api(orgId, `/endpoints/${e.id}`), { url: "http://192.168.1.1/" }, owner.access_token);
      assertFieldError(patched, "url");
    });

    it("a name that resolves to loopback when the delivery is attempted is refused then (no allowlist)", async () => {
      const orgId = await freshOrg();
      const e = await createEndpoint(orgId, "/rebound");
      const port = new URL(hookBase).port;
      await t.db.owner.execute(sql`update webhook_endpoints set url = ${`http://hooks.example.test:${port}/rebound`} where id = ${e.id}`);
      const sent = await t.call("POST", api(orgId, `/endpoints/${e.id}/$test`), undefined, owner.access_token);
      // the delivery path as wired, with a guard that has no allowlist and a resolver that answers 127.0.0.1
      const deliverer = createDeliverer({
        db: t.db,
        clock,
        log: createLogger("silent"),
        repo: webhooksRepo,
        service: t.deps.webhooks,
        audit: t.deps.audit,
        jobs: t.deps.jobs,
        outbound: createOutboundGuard({ allow: parseOutboundAllow(undefined), resolve: async () => [{ address: "127.0.0.1", family: 4 }] }),
        onEndpointsChanged: async () => {},
      });
      const outcome = await deliverer.attempt(orgId, sent.json().id, 0);
      assert.equal(outcome?.errorKind, "blocked_address");
      assert.equal(receiver.got("/rebound").length, 0, "nothing reached the receiver");
      assert.equal((await delivery(orgId, sent.json().id)).attempt_log[0].error_kind, "blocked_address");
    });

    it("an endpoint's rate limit holds attempts beyond it for a second", async () => {
      const orgId = await freshOrg();
      const e = await createEndpoint(orgId, "/limited", { rate_limit_per_second: 1 });
      const a = (await t.call("POST", api(orgId, `/endpoints/${e.id}/$test`), undefined, owner.access_token)).json().id;
      const b = (await t.call("POST", api(orgId, `/endpoints/${e.id}/$test`), undefined, owner.access_token)).json().id;
      await t.deps.jobs.drain();
      const states = [await delivery(orgId, a), await delivery(orgId, b)].map((d) => [d.status, d.attempts]).sort();
      assert.deepEqual(states, [
        ["delivered", 1],
        ["pending", 0],
      ]);
      const waiting = (await delivery(orgId, a)).status === "pending" ? a : b;
      await runNextAttempt(waiting);
      assert.equal((await delivery(orgId, waiting)).status, "delivered");
      assert.equal(receiver.got("/limited").length, 2);
    });

    it("replays one delivery with its webhook-id, and every failed one since a time", async () => {
      const orgId = await freshOrg();
      let down = true;
      receiver.plan("/replay", () => (down ? 500 : 200));
      const e = await createEndpoint(orgId, "/replay");
      const since = clock.now().toISOString();
      const sent = await t.call("POST", api(orgId, `/endpoints/${e.id}/$test`), undefined, owner.access_token);
      const id = sent.json().id as string;
      await t.deps.jobs.drain();
      const back = clock.now();
      for (let i = 0; i < RETRY_DELAYS_MS.length; i++) await runNextAttempt(id);
      clock.set(back);
      const failed = await delivery(orgId, id);
      assert.equal(failed.status, "failed", "no retry left after 8 attempts");
      assert.equal(failed.attempts, 8);
      assert.equal((await deliveriesOf(orgId, e.id, "?status=failed")).items.length, 1);

      down = false;
      const all = await t.call("POST", api(orgId, `/endpoints/${e.id}/$replay-failed`), { since }, owner.access_token);
      assert.equal(all.statusCode, 202, all.body);
      assert.equal(all.json().replayed, 1);
      await t.deps.jobs.drain();
      assert.equal((await delivery(orgId, id)).status, "delivered");

      const one = await t.call("POST", api(orgId, `/deliveries/${id}/$replay`), undefined, owner.access_token);
      assert.equal(one.statusCode, 202, one.body);
      await t.deps.jobs.drain();
      const got = receiver.got("/replay");
      assert.equal(got.length, 10);
      assert.ok(
        got.every((r) => r.id === failed.message_id),
        "a replay keeps the webhook-id",
      );
      assert.ok(got.at(-1)?.verified[0]);
      assert.equal((await delivery(orgId, id)).attempt_log.length, 10);
    });

    it("bad input on every route: 400 problem+json naming the field, nothing changed", async () => {
      const orgId = await freshOrg();
      const e = await createEndpoint(orgId, "/bad");
      const state = async () =>
        rows(sql`select id, url, description, event_types, enabled, rate_limit_per_second from webhook_endpoints where org_id = ${orgId}`);
      const deliveries = async () => rows(sql`select count(*)::int as n from webhook_deliveries where org_id = ${orgId}`);
      const before = [await state(), await deliveries()];
      const good = { url: `${hookBase}/bad2` };
      const creates: [Record<string, unknown>, string][] = [
        [{}, "url"],
        [{ url: "not a url" }, "url"],
        [{ url: "ftp://example.com/x" }, "url"],
        [{ url: "https://user:pw@example.com/x" }, "url"],
        [{ url: "https://nowhere.invalid/x" }, "url"],
        [{ ...good, event_types: ["member.exploded"] }, "event_types.0"],
        [{ ...good, event_types: "org.updated" }, "event_types"],
        [{ ...good, rate_limit_per_second: 0 }, "rate_limit_per_second"],
        [{ ...good, description: "x".repeat(501) }, "description"],
        [{ ...good, secret: "whsec_mine" }, "secret"],
      ];
      for (const [body, field] of creates) assertFieldError(await t.call("POST", api(orgId, "/endpoints"), body, owner.access_token), field);
      const ep = api(orgId, `/endpoints/${e.id}`);
      assert.equal((await t.call("PATCH", ep, {}, owner.access_token)).statusCode, 400);
      assertFieldError(await t.call("PATCH", ep, { url: "nope" }, owner.access_token), "url");
      assertFieldError(await t.call("PATCH", ep, { enabled: "yes" }, owner.access_token), "enabled");
      assertFieldError(await t.call("PATCH", ep, { rate_limit_per_second: 10_001 }, owner.access_token), "rate_limit_per_second");
      assertFieldError(await t.call("POST", api(orgId, `/endpoints/${e.id}/$replay-failed`), {}, owner.access_token), "since");
      assertFieldError(await t.call("POST", api(orgId, `/endpoints/${e.id}/$replay-failed`), { since: "yesterday" }, owner.access_token), "since");
      for (const [method, path] of [
        ["GET", "/endpoints/whe_nope"],
        ["PATCH", "/endpoints/con_01kbx4c3p8s2v0q9w7z5y1t6rm"],
        ["DELETE", "/endpoints/x"],
        ["POST", "/endpoints/x/$rotate-secret"],
        ["POST", "/endpoints/x/$test"],
        ["GET", "/endpoints/x/deliveries"],
      ] as const)
        assertFieldError(await t.call(method, api(orgId, path), method === "PATCH" ? { description: "x" } : undefined, owner.access_token), "endpointId");
      assertFieldError(await t.call("GET", api(orgId, "/deliveries/whd_x"), undefined, owner.access_token), "deliveryId");
      assertFieldError(await t.call("POST", api(orgId, "/deliveries/whd_x/$replay"), undefined, owner.access_token), "deliveryId");
      assertFieldError(await t.call("GET", api(orgId, `/endpoints/${e.id}/deliveries?status=lost`), undefined, owner.access_token), "status");
      assertFieldError(await t.call("GET", api(orgId, `/endpoints/${e.id}/deliveries?cursor=AAAA`), undefined, owner.access_token), "cursor");
      assertFieldError(await t.call("GET", api(orgId, "/endpoints?limit=0"), undefined, owner.access_token), "limit");
      const missing = newId("webhookDelivery");
      assertProblem(await t.call("GET", api(orgId, `/deliveries/${missing}`), undefined, owner.access_token), 404, "WEBHOOK_DELIVERY_NOT_FOUND");
      assertProblem(await t.call("POST", api(orgId, `/deliveries/${missing}/$replay`), undefined, owner.access_token), 404, "WEBHOOK_DELIVERY_NOT_FOUND");
      assert.deepEqual([await state(), await deliveries()], before);
      // and a viewer may not change anything
      assertProblem(await t.call("PATCH", ep, { description: "viewer" }, viewer.access_token), 403, "FORBIDDEN");
      assert.equal((await t.call("DELETE", ep, undefined, owner.access_token)).statusCode, 204);
      assertProblem(await t.call("GET", ep, undefined, owner.access_token), 404, "WEBHOOK_ENDPOINT_NOT_FOUND");
    });

    it("no signing secret in the jobs table, delivery rows, endpoint rows, audit diffs or logs", async () => {
      assert.ok(secretsShown.length >= 8);
      const dump = JSON.stringify([
        await rows(sql`select * from jobs`),
        await rows(sql`select * from webhook_deliveries`),
        await rows(sql`select * from webhook_attempts`),
        await rows(sql`select * from webhook_endpoints`),
        await rows(sql`select * from audit_events`),
      ]);
      const text = `${dump}\n${logs.join("")}`;
      for (const s of secretsShown) {
        assert.ok(!text.includes(s.slice(6)), "a signing secret was stored or logged in plaintext");
      }
      assert.ok(start <= clock.now());
    });
  });
}
