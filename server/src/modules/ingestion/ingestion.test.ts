import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { sql } from "drizzle-orm";
import {
  BACKENDS,
  GOOD_PASSWORD,
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
import { PROCESS_BATCH } from "./ingestion.processing.ts";

const MAX_PENDING = 2000;
const MAX_LAG = 30;

for (const backend of BACKENDS) {
  describe(`event ingestion (${backend})`, () => {
    let t: TestApp;
    let owner: TestUser;
    let viewer: TestUser;
    let stranger: TestUser;
    let otherOrgId: string;
    const clock = createManualClock();
    /** Batch sizes each test processor saw, by its prefix. */
    const seen = new Map<string, number[]>();
    let crashes = 0;

    before(async () => {
      t = await createTestApp({
        backend,
        worker: false,
        clock,
        env: { PLINTH_INGEST_MAX_PENDING: String(MAX_PENDING), PLINTH_INGEST_MAX_LAG_SECONDS: String(MAX_LAG), PLINTH_INGEST_RETENTION_DAYS: "30" },
      });
      for (const prefix of ["bulk", "crashy"])
        t.deps.ingestion.onEvents(prefix, async (_tx, events) => {
          seen.set(prefix, [...(seen.get(prefix) ?? []), events.length]);
          if (prefix === "crashy" && crashes++ === 0) throw new Error("processor crashed on its first run");
        });
      owner = await signUp(t, "Olga Owner");
      viewer = await signUp(t, "Vera Viewer");
      stranger = await signUp(t, "Stan Stranger");
      otherOrgId = await makeOrg(t, stranger, "Elsewhere Inc", uniqueSlug("ing"));
    });
    after(async () => {
      await t.close();
    });

    const rows = async (q: ReturnType<typeof sql>) => ((await t.db.owner.execute(q)) as unknown as { rows: Record<string, unknown>[] }).rows;
    const stored = async (orgId: string) => Number((await rows(sql`select count(*)::int as n from ingest_events where org_id = ${orgId}`))[0].n);
    const freshOrg = async () => {
      const orgId = await makeOrg(t, owner, "Ingesting Inc", uniqueSlug("ing"));
      await addMember(t, orgId, viewer, "viewer");
      return orgId;
    };
    const ev = (id: string, type = "order.created", data: Record<string, unknown> = { n: 1 }) => ({ id, type, data });
    const many = (n: number, tag: string, type = "order.created") => Array.from({ length: n }, (_, i) => ev(`${tag}-${i}`, type, { i }));
    const send = (orgId: string, events: unknown, token = owner.access_token) => t.call("POST", `/v1/orgs/${orgId}/events:batch`, { events }, token);
    const stats = async (orgId: string) => {
      const res = await t.call("GET", `/v1/orgs/${orgId}/events/stats`, undefined, viewer.access_token);
      assert.equal(res.statusCode, 200, res.body);
      return res.json();
    };
    const countsOf = async (orgId: string) =>
      Object.fromEntries((await stats(orgId)).processed_by_type.map((r: { type: string; processed: number }) => [r.type, r.processed]));

    it("answers 202 only once the batch is stored, and queues one job naming only the org", async () => {
      const orgId = await freshOrg();
      const res = await send(orgId, [ev("a-1"), { ...ev("a-2", "user.signed_up"), occurred_at: "2026-01-02T03:04:05Z" }, ev("a-3")]);
      assert.equal(res.statusCode, 202, res.body);
      assert.deepEqual(res.json(), { accepted: 3, duplicates: 0, duplicate_ids: [] });
      assert.equal(await stored(orgId), 3, "every acknowledged event is in the table when the answer arrives");
      const jobs = await rows(sql`select payload from jobs where kind = 'ingestion.process' and payload->>'org_id' = ${orgId}`);
      assert.deepEqual(
        jobs.map((j) => j.payload),
        [{ org_id: orgId }],
        "the job names the org, never event data",
      );
      const list = await t.call("GET", `/v1/orgs/${orgId}/events`, undefined, viewer.access_token);
      assert.equal(list.statusCode, 200, list.body);
      const signed = list.json().items.find((e: { id: string }) => e.id === "a-2");
      assert.equal(signed.type, "user.signed_up");
      assert.equal(signed.occurred_at, "2026-01-02T03:04:05.000Z");
      assert.equal(signed.processed_at, null);
      await t.deps.jobs.drain();
    });

    it("stores a duplicate once, within a batch and across batches, and names it", async () => {
      const orgId = await freshOrg();
      const first = await send(orgId, [ev("d-1"), ev("d-2"), ev("d-1"), ev("d-3")]);
      assert.equal(first.statusCode, 202, first.body);
      assert.deepEqual(first.json(), { accepted: 3, duplicates: 1, duplicate_ids: ["d-1"] });
      const second = await send(orgId, [ev("d-4"), ev("d-2"), ev("d-3"), ev("d-2")]);
      assert.equal(second.statusCode, 202, second.body);
      assert.deepEqual(second.json(), { accepted: 1, duplicates: 3, duplicate_ids: ["d-2", "d-3"] });
      assert.equal(await stored(orgId), 4);
      // the key is per org: another org may use the same ids
      const other = await send(otherOrgId, [ev("d-1")], stranger.access_token);
      assert.deepEqual(other.json(), { accepted: 1, duplicates: 0, duplicate_ids: [] });
      await t.deps.jobs.drain();
      assert.deepEqual(await countsOf(orgId), { "order.created": 4 });
    });

    it("processes in batches of 500 by running the job, and a second run counts nothing twice", async () => {
      const orgId = await freshOrg();
      seen.delete("bulk");
      assert.equal((await send(orgId, many(1000, "b1", "bulk.item"))).statusCode, 202);
      assert.equal((await send(orgId, [...many(200, "b2", "bulk.item"), ...many(5, "b3", "other")])).statusCode, 202);
      assert.equal((await stats(orgId)).pending, 1205);
      await t.deps.jobs.drain();
      assert.deepEqual(seen.get("bulk"), [PROCESS_BATCH, PROCESS_BATCH, 200], "three claims of at most 500");
      assert.deepEqual(await countsOf(orgId), { "bulk.item": 1200, other: 5 });
      assert.equal((await stats(orgId)).pending, 0);
      assert.equal(Number((await rows(sql`select count(*)::int as n from ingest_events where org_id = ${orgId} and processed_at is null`))[0].n), 0);
      // running again (a duplicate job, a retry) finds nothing to do
      assert.equal((await send(orgId, [ev("b1-0", "bulk.item")])).json().accepted, 0);
      await t.deps.jobs.drain();
      assert.deepEqual(await countsOf(orgId), { "bulk.item": 1200, other: 5 });
      assert.deepEqual(seen.get("bulk"), [PROCESS_BATCH, PROCESS_BATCH, 200]);
    });

    it("a processor that crashes leaves the batch unprocessed; the retry processes it once", async () => {
      const orgId = await freshOrg();
      assert.equal((await send(orgId, [ev("c-1", "crashy.one"), ev("c-2", "crashy.two"), ev("c-3", "plain")])).statusCode, 202);
      await t.deps.jobs.drain();
      assert.equal(crashes, 1);
      assert.equal((await stats(orgId)).pending, 3, "nothing is marked when the processing transaction fails");
      assert.deepEqual(await countsOf(orgId), {}, "the rollup rolled back with it");
      const [job] = await rows(sql`select attempts, last_error from jobs where kind = 'ingestion.process' and payload->>'org_id' = ${orgId}`);
      assert.match(String(job.last_error), /crashed/);
      clock.advance(5_000);
      await t.deps.jobs.drain();
      assert.equal(crashes, 2);
      assert.deepEqual(seen.get("crashy"), [2, 2]);
      assert.deepEqual(await countsOf(orgId), { "crashy.one": 1, "crashy.two": 1, plain: 1 });
      assert.equal((await stats(orgId)).pending, 0);
      await t.deps.jobs.drain();
      assert.deepEqual(await countsOf(orgId), { "crashy.one": 1, "crashy.two": 1, plain: 1 });
    });

    it("answers 429 with Retry-After while the oldest unprocessed event is too old, storing nothing", async () => {
      const orgId = await freshOrg();
      assert.equal((await send(orgId, [ev("l-1")])).statusCode, 202);
      clock.advance((MAX_LAG + 1) * 1000);
      assert.ok((await stats(orgId)).lag_seconds > MAX_LAG);
      const res = await send(orgId, [ev("l-2"), ev("l-3")]);
      assertProblem(res, 429, "INGESTION_BACKLOGGED");
      assert.ok(Number(res.headers["retry-after"]) >= 1, "Retry-After in seconds");
      assert.equal(await stored(orgId), 1, "nothing of the refused batch is stored");
      // another org is not held back by this one's lag
      assert.equal((await send(otherOrgId, [ev("l-other")], stranger.access_token)).statusCode, 202);
      await t.deps.jobs.drain();
      assert.equal((await send(orgId, [ev("l-2"), ev("l-3")])).statusCode, 202, "accepted again once the workers caught up");
      await t.deps.jobs.drain();
    });

    it("answers 429 when the batch would take the unprocessed events above the bound", async () => {
      const orgId = await freshOrg();
      assert.equal((await send(orgId, many(1000, "p1"))).statusCode, 202);
      assert.equal((await send(orgId, many(1000, "p2"))).statusCode, 202);
      const res = await send(orgId, [ev("p3-0")]);
      assertProblem(res, 429, "INGESTION_BACKLOGGED");
      assert.ok(res.headers["retry-after"]);
      assert.equal(await stored(orgId), MAX_PENDING);
      await t.deps.jobs.drain();
      assert.equal((await send(orgId, [ev("p3-0")])).statusCode, 202);
      await t.deps.jobs.drain();
    });

    it("refuses bad input with 400 naming the field, and stores nothing", async () => {
      const orgId = await freshOrg();
      const cases: [unknown, string][] = [
        [[], "events"],
        [many(1001, "x"), "events"],
        [[ev("ok-0"), ev("ok-1"), ev("ok-2"), ev("bad id!")], "events.3.id"],
        [[ev("")], "events.0.id"],
        [[ev("x".repeat(201))], "events.0.id"],
        [[ev("ok", "Not A Dotted Name")], "events.0.type"],
        [[ev("ok", "")], "events.0.type"],
        [[ev("ok-0"), ev("ok-1", "t", { big: "x".repeat(64 * 1024) })], "events.1.data"],
        [[{ ...ev("ok"), extra: 1 }], "events.0.extra"],
        [[{ ...ev("ok"), type: 5 }], "events.0.type"],
        [[{ ...ev("ok"), data: [1, 2] }], "events.0.data"],
        [[{ ...ev("ok"), data: "text" }], "events.0.data"],
        [[{ ...ev("ok"), occurred_at: "yesterday" }], "events.0.occurred_at"],
        [[{ id: "ok", type: "t" }], "events.0.data"],
        ["not a list", "events"],
      ];
      for (const [events, field] of cases) assertFieldError(await send(orgId, events), field);
      assertFieldError(await t.call("POST", `/v1/orgs/${orgId}/events:batch`, { events: [ev("ok")], more: true }, owner.access_token), "more");
      assertFieldError(await t.call("POST", `/v1/orgs/${orgId}/events:batch`, {}, owner.access_token), "events");
      assert.equal(await stored(orgId), 0);
      // the body limit is 5 MiB (above the server's 1 MiB default): 40 events of 60 KiB pass, 100 do not
      const chunky = (n: number) => Array.from({ length: n }, (_, i) => ev(`big-${i}`, "t", { s: "y".repeat(60 * 1024) }));
      assert.equal((await send(orgId, chunky(40))).statusCode, 202);
      const tooLarge = await send(orgId, chunky(100));
      assertProblem(tooLarge, 413, "PAYLOAD_TOO_LARGE");
      assert.match(tooLarge.json().detail, /larger than 5 MiB/, "names this route's own limit");
      assert.equal(await stored(orgId), 40);
      const list = (q: string) => t.call("GET", `/v1/orgs/${orgId}/events${q}`, undefined, viewer.access_token);
      assertFieldError(await list("?cursor=bm90LWFuLWlk"), "cursor");
      assertFieldError(await list("?processed=maybe"), "processed");
      assertFieldError(await list("?type=Bad%20Type"), "type");
      assertFieldError(await list("?limit=0"), "limit");
      await t.deps.jobs.drain();
    });

    it("lists newest first with cursors, by type and processed state", async () => {
      const orgId = await freshOrg();
      await send(orgId, [ev("o-1", "order.created"), ev("o-2", "order.paid"), ev("o-3", "order.created")]);
      await t.deps.jobs.drain();
      await send(orgId, [ev("o-4", "order.created")]);
      const get = async (q: string) => {
        const res = await t.call("GET", `/v1/orgs/${orgId}/events${q}`, undefined, viewer.access_token);
        assert.equal(res.statusCode, 200, res.body);
        return res.json();
      };
      const p1 = await get("?limit=2");
      assert.equal(p1.items.length, 2);
      assert.ok(p1.next_cursor);
      const p2 = await get(`?limit=2&cursor=${p1.next_cursor}`);
      assert.equal(p2.next_cursor, null);
      const all = [...p1.items, ...p2.items].map((e: { id: string }) => e.id);
      assert.deepEqual(new Set(all), new Set(["o-1", "o-2", "o-3", "o-4"]));
      assert.equal(all[0], "o-4", "newest first");
      assert.deepEqual((await get("?type=order.created")).items.map((e: { id: string }) => e.id).sort(), ["o-1", "o-3", "o-4"]);
      assert.deepEqual(
        (await get("?processed=false")).items.map((e: { id: string }) => e.id),
        ["o-4"],
      );
      const done = (await get("?processed=true&type=order.created")).items;
      assert.deepEqual(done.map((e: { id: string }) => e.id).sort(), ["o-1", "o-3"]);
      assert.ok(done.every((e: { processed_at: string | null }) => e.processed_at !== null));
      const s = await stats(orgId);
      assert.equal(s.pending, 1);
      assert.equal(s.max_pending, MAX_PENDING);
      assert.deepEqual(s.processed_by_type, [
        { type: "order.created", processed: 2 },
        { type: "order.paid", processed: 1 },
      ]);
      await t.deps.jobs.drain();
    });

    it("keeps tenants apart: a stranger gets 404, a viewer may read but not send", async () => {
      const orgId = await freshOrg();
      await send(orgId, [ev("secret-event", "order.created", { card: "mine" })]);
      for (const [method, path, body] of [
        ["POST", "/events:batch", { events: [ev("s-1")] }],
        ["GET", "/events", undefined],
        ["GET", "/events/stats", undefined],
      ] as const) {
        const res = await t.call(method, `/v1/orgs/${orgId}${path}`, body, stranger.access_token);
        assert.equal(res.statusCode, 404, `${method} ${path}: ${res.body}`);
        assert.ok(!res.body.includes("secret-event"));
      }
      assert.equal((await t.call("POST", `/v1/orgs/${orgId}/events:batch`, { events: [ev("s-1")] })).statusCode, 401);
      assertProblem(await send(orgId, [ev("v-1")], viewer.access_token), 403, "FORBIDDEN", { permission: "events:write" });
      const theirs = await t.call("GET", `/v1/orgs/${otherOrgId}/events`, undefined, stranger.access_token);
      assert.ok(!theirs.body.includes("secret-event"), "another org's list never shows this org's events");
      assert.equal(await stored(orgId), 1);
      await t.deps.jobs.drain();
    });

    // last: it moves the clock past the retention window
    it("purges events older than the retention window in every org, by the scheduled job", async () => {
      const a = await freshOrg();
      await send(a, [ev("r-old-1"), ev("r-old-2")]);
      await send(otherOrgId, [ev("r-old-other")], stranger.access_token);
      await t.deps.jobs.drain();
      clock.advance(31 * 86_400_000);
      // tokens issued before the jump have expired: sign in again
      const login = await t.call("POST", "/v1/auth/login", { email: owner.email, password: GOOD_PASSWORD });
      assert.equal(login.statusCode, 200, login.body);
      assert.equal((await send(a, [ev("r-new")], login.json().access_token)).statusCode, 202);
      await t.deps.jobs.drain();
      const left = await rows(sql`select org_id, event_id from ingest_events where org_id in (${a}, ${otherOrgId}) order by event_id`);
      assert.deepEqual(
        left.map((r) => `${r.org_id === a ? "a" : "other"}:${r.event_id}`),
        ["a:r-new"],
      );
      const counts = await rows(sql`select processed from ingest_type_counts where org_id = ${a}`);
      assert.equal(Number(counts[0].processed), 3, "the rollup outlives the events it counted");
    });
  });
}
