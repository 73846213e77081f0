import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { sql } from "drizzle-orm";
import type { LightMyRequestResponse } from "fastify";
import { BACKENDS, addMember, createTestApp, makeOrg, problemOf, signUp, uniqueSlug, type TestApp, type TestUser } from "../../../test/harness.ts";
import { loadConfig } from "../../config.ts";
import { openPglite } from "../../db/client.ts";
import { createDeps } from "../../deps.ts";
import { createManualClock } from "../../lib/clock.ts";
import { createLogger } from "../../logger.ts";
import { eventHash, GENESIS_HASH } from "./chain.ts";
import type { toEvent } from "./audit.routes.ts";

type ApiEvent = ReturnType<typeof toEvent>;

/** What an auditor with only the export file (and the org id) can check: every hash, every link, no gaps. */
function verifyOffline(orgId: string, events: ApiEvent[]): { ok: boolean; brokenAt?: number } {
  let prev = GENESIS_HASH;
  for (const [i, e] of events.entries()) {
    const hash = eventHash({
      id: e.id,
      orgId,
      seq: e.seq,
      action: e.action,
      actorType: e.actor.type,
      actorId: e.actor.id,
      impersonatorId: e.actor.impersonator_id,
      targetType: e.target.type,
      targetId: e.target.id,
      ip: e.ip,
      userAgent: e.user_agent,
      requestId: e.request_id,
      diff: e.diff,
      createdAt: new Date(e.created_at),
      prevHash: e.prev_hash,
    });
    if (e.seq !== i + 1 || e.prev_hash !== prev || hash !== e.hash) return { ok: false, brokenAt: e.seq };
    prev = e.hash;
  }
  return { ok: true };
}

/** The database's words for a refused statement (drizzle wraps the driver's error in `cause`). */
async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    const msgs: string[] = [];
    for (let c: unknown = e; c && typeof c === "object"; c = (c as { cause?: unknown }).cause) msgs.push(String((c as Error).message));
    return msgs.join(" | ");
  }
  assert.fail("the statement was not refused");
}

for (const backend of BACKENDS) {
  describe(`audit log (${backend})`, () => {
    const clock = createManualClock(new Date("2030-01-01T00:00:00.000Z"));
    let t: TestApp;
    let owner: TestUser;
    let admin: TestUser;
    let org: string;
    /** The history of `org`: each mutation's response, in order. */
    const history: { res: LightMyRequestResponse; actor: () => string; action: string; diff: Record<string, unknown> }[] = [];
    const UA = "audit-test/1.0";

    const patch = (orgId: string, body: unknown, user = owner, headers: Record<string, string> = {}) =>
      t.call("PATCH", `/v1/orgs/${orgId}`, body, user.access_token, { "user-agent": UA, ...headers });
    const list = async (query = "", orgId = org) => t.call("GET", `/v1/orgs/${orgId}/audit${query ? `?${query}` : ""}`, undefined, owner.access_token);
    const items = async (query = "") => (await list(query)).json().items as ApiEvent[];
    /** A fresh org of the owner with `patches` audited changes after its creation. */
    async function orgWith(patches: number): Promise<string> {
      const orgId = await makeOrg(t, owner, "Chain", uniqueSlug("chain"));
      for (let i = 0; i < patches; i++) assert.equal((await patch(orgId, { display_name: `v${i}` })).statusCode, 200);
      return orgId;
    }

    before(async () => {
      t = await createTestApp({ backend, worker: false, clock });
      owner = await signUp(t, "Owner");
      admin = await signUp(t, "Admin");
      const created = await t.call("POST", "/v1/orgs", { name: "Audited", slug: `audited-${Date.now().toString(36)}` }, owner.access_token, {
        "x-request-id": "req-create-1",
        "user-agent": UA,
      });
      assert.equal(created.statusCode, 201, created.body);
      org = created.json().id;
      history.push({ res: created, actor: () => owner.id, action: "org.created", diff: { name: [null, "Audited"], slug: [null, created.json().slug] } });
      await addMember(t, org, admin, "admin");
      const steps: [TestUser, Record<string, unknown>, Record<string, unknown>, Record<string, string>][] = [
        [owner, { display_name: "Acme" }, { display_name: [null, "Acme"] }, { "x-request-id": "req-patch-2" }],
        [admin, { primary_color: "#112233", contact_phone: "+1 555 0100" }, { primary_color: [null, "#112233"], contact_phone: [null, "+1 555 0100"] }, {}],
        [owner, { name: "Audited Inc" }, { name: ["Audited", "Audited Inc"] }, {}],
        [admin, { display_name: null }, { display_name: ["Acme", null] }, { "x-request-id": "req-patch-5" }],
      ];
      for (const [user, body, diff, headers] of steps) {
        clock.advance(60_000);
        const res = await patch(org, body, user, headers);
        assert.equal(res.statusCode, 200, res.body);
        history.push({ res, actor: () => user.id, action: "org.updated", diff });
      }
    });
    after(() => t.close());

    it("every mutation wrote exactly one event: actor, action, target, ip, user agent, request id, diff", async () => {
      const all = await items();
      assert.equal(all.length, history.length);
      for (const [i, h] of history.entries()) {
        const e = all[all.length - 1 - i];
        assert.equal(e.seq, i + 1);
        assert.match(e.id, /^aud_[0-9a-z]{26}$/);
        assert.equal(e.action, h.action);
        assert.deepEqual(e.actor, { type: "user", id: h.actor(), impersonator_id: null, via_key_id: null });
        assert.deepEqual(e.target, { type: "org", id: org });
        assert.equal(e.ip, "127.0.0.1");
        assert.equal(e.user_agent, UA);
        assert.equal(e.request_id, h.res.headers["x-request-id"], "the request id the client saw");
        assert.deepEqual(e.diff, h.diff);
      }
      const bySeq = new Map(all.map((e) => [e.seq, e.request_id]));
      assert.deepEqual([bySeq.get(1), bySeq.get(2), bySeq.get(5)], ["req-create-1", "req-patch-2", "req-patch-5"], "the client's x-request-id");
      for (const seq of [3, 4]) assert.match(String(bySeq.get(seq)), /^req_[0-9a-z]{26}$/, "or the one the server made up");
    });

    it("lists newest first and pages with next_cursor", async () => {
      const seqs: number[] = [];
      let cursor: string | null = null;
      for (let pages = 0; pages < 10; pages++) {
        const res = await list(`limit=2${cursor ? `&cursor=${cursor}` : ""}`);
        assert.equal(res.statusCode, 200, res.body);
        const body = res.json();
        seqs.push(...body.items.map((e: ApiEvent) => e.seq));
        cursor = body.next_cursor;
        if (!cursor) break;
        assert.equal(body.items.length, 2);
      }
      assert.deepEqual(seqs, [5, 4, 3, 2, 1]);
      const one = (await list("limit=1")).json();
      assert.equal(one.items[0].seq, 5);
      assert.equal(typeof one.next_cursor, "string");
      const next = (await list(`limit=1&cursor=${one.next_cursor}`)).json();
      assert.equal(next.items[0].seq, 4);
      assert.equal((await list("limit=5")).json().next_cursor, null, "no cursor after the last page");
    });

    it("filters by actor, action, target type, target id and time", async () => {
      const seqs = async (q: string) => (await items(q)).map((e) => e.seq);
      assert.deepEqual(await seqs(`actor=${admin.id}`), [5, 3]);
      assert.deepEqual(await seqs(`actor=${owner.id}`), [4, 2, 1]);
      assert.deepEqual(await seqs("action=org.created"), [1]);
      assert.deepEqual(await seqs("action=org.updated&limit=2"), [5, 4]);
      assert.deepEqual(await seqs("target_type=org"), [5, 4, 3, 2, 1]);
      assert.deepEqual(await seqs("target_type=user"), []);
      assert.deepEqual(await seqs(`target_id=${org}`), [5, 4, 3, 2, 1]);
      assert.deepEqual(await seqs(`target_id=${owner.id}`), []);
      const at = (await items()).reverse().map((e) => e.created_at);
      assert.deepEqual(await seqs(`from=${at[2]}`), [5, 4, 3], "from is inclusive");
      assert.deepEqual(await seqs(`to=${at[1]}`), [2, 1], "to is inclusive");
      assert.deepEqual(await seqs(`from=${at[1]}&to=${at[3]}&actor=${owner.id}`), [4, 2]);
    });

    const badFilters: [string, string][] = [
      ["actor=bob", "actor"],
      ["action=Org%20Updated", "action"],
      ["target_type=Org!", "target_type"],
      ["target_id=org_x", "target_id"],
      ["from=yesterday", "from"],
      ["to=2030-13-01T00:00:00Z", "to"],
      ["limit=0", "limit"],
      ["limit=201", "limit"],
      ["cursor=!!", "cursor"],
      ["cursor=YWJj", "cursor"],
      ["color=red", "color"],
    ];
    for (const [query, field] of badFilters) {
      it(`refuses ?${query} with 400 naming ${field}`, async () => {
        const res = await list(query);
        assert.equal(res.statusCode, 400, res.body);
        const p = problemOf(res);
        assert.ok([p.field, ...(p.errors ?? []).map((e) => e.field)].includes(field), res.body);
      });
    }

    it("exports ndjson, oldest first, that verifies offline with eventHash()", async () => {
      const res = await t.call("GET", `/v1/orgs/${org}/audit/export`, undefined, owner.access_token);
      assert.equal(res.statusCode, 200, res.body);
      assert.match(String(res.headers["content-type"]), /^application\/x-ndjson/);
      assert.match(String(res.headers["content-disposition"]), new RegExp(`audit-${org}\\.jsonl`));
      assert.ok(res.body.endsWith("\n"));
      const lines = res.body.slice(0, -1).split("\n");
      const exported = lines.map((l) => JSON.parse(l) as ApiEvent);
      assert.deepEqual(
        exported.map((e) => e.seq),
        [1, 2, 3, 4, 5],
      );
      assert.deepEqual(exported, (await items()).reverse(), "the same events as the list");
      assert.deepEqual(verifyOffline(org, exported), { ok: true });
      const forged = exported.map((e) => (e.seq === 3 ? { ...e, diff: { primary_color: [null, "#ffffff"] } } : e));
      assert.deepEqual(verifyOffline(org, forged), { ok: false, brokenAt: 3 }, "the offline check catches an edited copy");
      assert.deepEqual(
        verifyOffline(
          org,
          exported.filter((e) => e.seq !== 2),
        ),
        { ok: false, brokenAt: 3 },
      );
    });

    it("chains seq 1..n with prev_hash links, verify() is ok, and batched reads see the same chain", async () => {
      const chain = (await items()).reverse();
      assert.equal(chain[0].prev_hash, GENESIS_HASH);
      for (let i = 1; i < chain.length; i++) assert.equal(chain[i].prev_hash, chain[i - 1].hash);
      assert.deepEqual(await t.deps.audit.verify(org), { ok: true, events: 5 });
      const batched: number[] = [];
      for await (const e of t.deps.audit.all(org, 2)) batched.push(e.seq);
      assert.deepEqual(batched, [1, 2, 3, 4, 5]);
    });

    it("an event altered by the table owner is named by verify()", async () => {
      const o = await orgWith(3);
      await t.db.owner.execute(sql`update audit_events set diff = '{"display_name":["v0","v9"]}'::jsonb where org_id = ${o} and seq = 3`);
      const r = await t.deps.audit.verify(o);
      assert.equal(r.ok, false);
      assert.ok(!r.ok && r.brokenAt.seq === 3 && /altered/.test(r.brokenAt.reason), JSON.stringify(r));
    });

    it("re-hashing an altered event does not hide it: the next link breaks", async () => {
      const o = await orgWith(3);
      const [row] = await t.deps.audit.list(o, {}, 1, 3);
      const forged = { ...row, diff: { display_name: ["v0", "v9"] } };
      await t.db.owner.execute(sql`update audit_events set diff = ${JSON.stringify(forged.diff)}::jsonb, hash = ${eventHash(forged)} where id = ${row.id}`);
      const r = await t.deps.audit.verify(o);
      assert.ok(!r.ok && r.brokenAt.seq === 3 && /prev_hash/.test(r.brokenAt.reason), JSON.stringify(r));
    });

    it("a deleted middle event is named by verify() as missing", async () => {
      const o = await orgWith(3);
      await t.db.owner.execute(sql`delete from audit_events where org_id = ${o} and seq = 2`);
      const r = await t.deps.audit.verify(o);
      assert.ok(!r.ok && r.brokenAt.seq === 3 && /#2/.test(r.brokenAt.reason) && /missing/.test(r.brokenAt.reason), JSON.stringify(r));
    });

    it("events cut from the end of the chain are named by verify(): the head is anchored", async () => {
      const o = await orgWith(3);
      await t.db.owner.execute(sql`delete from audit_events where org_id = ${o} and seq >= 3`);
      const r = await t.deps.audit.verify(o);
      assert.ok(!r.ok && r.brokenAt.seq === 3 && /removed from the end/.test(r.brokenAt.reason), JSON.stringify(r));
    });

    it("the app role cannot UPDATE, DELETE or TRUNCATE events, even its own org's", async () => {
      const o = await orgWith(1);
      for (const stmt of [
        sql`update audit_events set diff = '{}'::jsonb where org_id = ${o}`,
        sql`delete from audit_events where org_id = ${o}`,
        sql`truncate audit_events`,
      ]) {
        assert.match(await refusal(t.db.tx({ orgId: o }, (tx) => tx.execute(stmt))), /permission denied/);
      }
      assert.deepEqual(await t.deps.audit.verify(o), { ok: true, events: 2 });
    });

    it("the app role cannot read or insert another org's events (row-level security)", async () => {
      const mine = await orgWith(0);
      const count = async (scope: string, of: string) =>
        (
          (await t.db.tx({ orgId: scope }, (tx) => tx.execute(sql`select count(*)::int as n from audit_events where org_id = ${of}`))) as unknown as {
            rows: { n: number }[];
          }
        ).rows[0].n;
      assert.equal(await count(org, org), 5);
      assert.equal(await count(mine, org), 0, "another org's events are invisible");
      assert.equal(await count(mine, mine), 1);
      const forge = t.db.tx({ orgId: mine }, (tx) =>
        t.deps.audit.record(
          tx,
          { type: "user", id: owner.id },
          { orgId: org, action: "org.updated", target: { type: "org", id: org }, diff: { name: ["x", "y"] } },
        ),
      );
      assert.match(await refusal(forge), /row-level security/);
      assert.deepEqual(await t.deps.audit.verify(org), { ok: true, events: 5 });
    });

    it("10 concurrent PATCHes leave an unbroken chain of 10 consecutive events whose diffs follow each other", async () => {
      const o = await orgWith(0);
      const results = await Promise.all(Array.from({ length: 10 }, (_, i) => patch(o, { display_name: `name-${i}` })));
      for (const r of results) assert.equal(r.statusCode, 200, r.body);
      const chain = (await t.deps.audit.list(o, {}, 100)).reverse();
      assert.deepEqual(
        chain.map((e) => e.seq),
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
      );
      assert.deepEqual(await t.deps.audit.verify(o), { ok: true, events: 11 });
      const names = chain.slice(1).map((e) => (e.diff as { display_name: [string | null, string] }).display_name);
      for (let i = 1; i < names.length; i++) assert.equal(names[i][0], names[i - 1][1], `event #${i + 2}'s before is #${i + 1}'s after`);
      assert.equal(names[0][0], null);
      const final = (await t.call("GET", `/v1/orgs/${o}`, undefined, owner.access_token)).json();
      assert.equal(final.display_name, names[names.length - 1][1], "the last audited value is the stored one");
    });
  });
}

describe("plinth audit verify (embedded data dir)", () => {
  const ROOT = fileURLToPath(new URL("../../../../", import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), "plinth-audit-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const plinth = (args: string[]) => {
    const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/tmp", LOG_LEVEL: "silent", PLINTH_DATA_DIR: dir };
    const r = spawnSync(process.execPath, ["bin/plinth.mjs", ...args], { cwd: ROOT, env, encoding: "utf8", timeout: 90_000 });
    if (r.error) throw r.error;
    return { status: r.status, stdout: r.stdout, all: `${r.stdout}\n${r.stderr}` };
  };
  let orgId: string;

  it("exits 0 and says intact for an untouched chain", async () => {
    const created = plinth(["user", "create", "--email", "audit@example.com"]);
    assert.equal(created.status, 0, created.all);
    const userId = /\((usr_[0-9a-z]{26})\)/.exec(created.stdout)?.[1];
    assert.ok(userId, created.stdout);
    const deps = await createDeps(loadConfig({ PLINTH_DATA_DIR: dir, LOG_LEVEL: "silent" }), { log: createLogger("silent") });
    try {
      orgId = (await deps.orgs.listMyOrgs(userId))[0].org.id;
      for (const name of ["one", "two"]) await deps.orgProfile.updateOrg(orgId, { display_name: name }, { type: "system", id: null });
    } finally {
      await deps.close(); // the data dir is locked to one process
    }
    const r = plinth(["audit", "verify", "--org", orgId]);
    assert.equal(r.status, 0, r.all);
    assert.match(r.stdout, new RegExp(`audit chain of ${orgId} is intact: 3 events`));
  });

  it("exits 1 naming the event the table owner altered", async () => {
    const db = await openPglite(join(dir, "pgdata"));
    try {
      await db.owner.execute(sql`update audit_events set diff = '{"display_name":[null,"forged"]}'::jsonb where org_id = ${orgId} and seq = 2`);
    } finally {
      await db.close();
    }
    const r = plinth(["audit", "verify", "--org", orgId]);
    assert.equal(r.status, 1, r.all);
    assert.match(r.stdout, /BROKEN at event #2 \(aud_[0-9a-z]{26}\): .*altered/);
  });

  it("exits 1 for an organization that does not exist, instead of calling an empty chain intact", () => {
    const r = plinth(["audit", "verify", "--org", "org_01aaaaaaaaaaaaaaaaaaaaaaaa"]);
    assert.equal(r.status, 1, r.all);
    assert.match(r.stdout, /no organization org_01a/);
  });

  it("exits 2 without --org or with a malformed one", () => {
    for (const args of [
      ["audit", "verify"],
      ["audit", "verify", "--org", "acme"],
    ]) {
      const r = plinth(args);
      assert.equal(r.status, 2, r.all);
      assert.match(r.all, /--org/);
    }
  });
});
