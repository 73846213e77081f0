import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { sql } from "drizzle-orm";
import { createManualClock } from "../../lib/clock.ts";
import { newId } from "../../lib/ids.ts";
import { BACKENDS, addMember, assertProblem, createTestApp, makeOrg, signUp, uniqueSlug, type TestApp, type TestUser } from "../../../test/harness.ts";
import { RESTORE_WINDOW_MS } from "./orgs.lifecycle.service.ts";

const DAY = 24 * 60 * 60 * 1000;

for (const backend of BACKENDS) {
  describe(`organization delete, restore and purge (${backend})`, () => {
    const clock = createManualClock(new Date("2030-01-01T00:00:00Z"));
    let t: TestApp;
    let alice: TestUser; // owner
    let bob: TestUser; // admin
    let vera: TestUser; // viewer
    let sam: TestUser; // stranger
    before(async () => {
      t = await createTestApp({ backend, worker: false, clock });
      [alice, bob, vera, sam] = [await signUp(t, "Alice"), await signUp(t, "Bob"), await signUp(t, "Vera"), await signUp(t, "Sam")];
    });
    after(() => t.close());

    /** Fresh access tokens: moving the clock by weeks expires the old ones. */
    async function relogin(): Promise<void> {
      for (const u of [alice, bob, vera, sam]) {
        const res = await t.call("POST", "/v1/auth/login", { email: u.email, password: u.password });
        assert.equal(res.statusCode, 200, res.body);
        u.access_token = res.json().access_token;
      }
    }

    /** An org owned by alice with bob as admin and vera as viewer, two nested teams, and a warmed access cache. */
    async function newOrg(): Promise<{ id: string; slug: string }> {
      const slug = uniqueSlug();
      const id = await makeOrg(t, alice, "Doomed", slug);
      await addMember(t, id, bob, "admin");
      await addMember(t, id, vera, "viewer");
      const parent = newId("team");
      const child = newId("team");
      await t.db.owner.execute(sql`insert into teams (id, org_id, name, parent_id, path) values
        (${parent}, ${id}, 'Parent', null, ARRAY[${parent}]::text[]),
        (${child}, ${id}, 'Child', ${parent}, ARRAY[${parent}, ${child}]::text[])`);
      await t.db.owner.execute(sql`insert into team_members (team_id, org_id, user_id, role) values (${child}, ${id}, ${vera.id}, 'member')`);
      await t.db.owner.execute(
        sql`insert into custom_roles (id, org_id, name, permissions) values (${newId("role")}, ${id}, 'auditor', ARRAY['audit:read']::text[])`,
      );
      await t.db.owner.execute(sql`insert into grants (id, org_id, subject_type, subject_id, relation, object_type, object_id, kind)
        values (${newId("grant")}, ${id}, 'user', ${vera.id}, 'read', 'team', ${parent}, 'share')`);
      await t.deps.access.invalidate(id);
      for (const u of [alice, bob, vera]) assert.equal((await t.call("GET", `/v1/orgs/${id}`, undefined, u.access_token)).statusCode, 200);
      return { id, slug };
    }

    const del = (orgId: string, body: unknown, user: TestUser = alice) => t.call("DELETE", `/v1/orgs/${orgId}`, body, user.access_token);
    const restore = (orgId: string, user: TestUser = alice) => t.call("POST", `/v1/deleted-orgs/${orgId}/restore`, undefined, user.access_token);
    const listDeleted = async (user: TestUser) => {
      const res = await t.call("GET", "/v1/deleted-orgs", undefined, user.access_token);
      assert.equal(res.statusCode, 200, res.body);
      return res.json().items as { id: string; role: string; purge_after: string; deleted_at: string; deleted_by: string }[];
    };
    const myOrgIds = async (user: TestUser) =>
      ((await t.call("GET", "/v1/orgs", undefined, user.access_token)).json().items as { id: string }[]).map((o) => o.id);
    const events = async (orgId: string) => (await t.deps.audit.list(orgId, {}, 1000)).reverse();
    const orgRow = async (orgId: string) =>
      (
        (await t.db.owner.execute(sql`select deleted_at, deleted_by, purge_after from orgs where id = ${orgId}`)) as unknown as {
          rows: Record<string, unknown>[];
        }
      ).rows[0];
    const countOf = async (table: string, orgId: string) =>
      Number(
        (
          (await t.db.owner.execute(sql`select count(*)::int as n from ${sql.identifier(table)} where org_id = ${orgId}`)) as unknown as {
            rows: { n: number }[];
          }
        ).rows[0].n,
      );
    const usable = async (orgId: string, user: TestUser) => (await t.call("GET", `/v1/orgs/${orgId}`, undefined, user.access_token)).statusCode;

    it("DELETE /v1/orgs/{orgId} by an owner makes the org unusable at once for every member, lists it as deleted and audits it", async () => {
      const org = await newOrg();
      const now = clock.now();
      const res = await del(org.id, { confirm: org.slug });
      assert.equal(res.statusCode, 200, res.body);
      const body = res.json();
      assert.equal(body.id, org.id);
      assert.equal(body.slug, org.slug);
      assert.equal(body.deleted_at, now.toISOString());
      assert.equal(body.deleted_by, alice.id);
      assert.equal(body.purge_after, new Date(now.getTime() + 30 * DAY).toISOString());
      for (const u of [alice, bob, vera]) {
        assertProblem(await t.call("GET", `/v1/orgs/${org.id}`, undefined, u.access_token), 404, "NOT_FOUND");
        assertProblem(await t.call("GET", `/v1/orgs/${org.id}/audit`, undefined, u.access_token), 404, "NOT_FOUND");
        assertProblem(await t.call("PATCH", `/v1/orgs/${org.id}`, { name: "Back" }, u.access_token), 404, "NOT_FOUND");
        assert.ok(!(await myOrgIds(u)).includes(org.id), "GET /v1/orgs no longer lists it");
      }
      assertProblem(await del(org.id, { confirm: org.slug }), 404, "NOT_FOUND");
      const listed = (await listDeleted(alice)).find((o) => o.id === org.id);
      assert.deepEqual(listed, {
        id: org.id,
        name: "Doomed",
        slug: org.slug,
        role: "owner",
        deleted_at: body.deleted_at,
        deleted_by: alice.id,
        purge_after: body.purge_after,
      });
      assert.ok(!(await listDeleted(bob)).some((o) => o.id === org.id), "an admin cannot restore, so does not see it");
      assert.ok(!(await listDeleted(sam)).some((o) => o.id === org.id));
      const last = (await events(org.id)).at(-1);
      assert.equal(last?.action, "org.deleted");
      assert.equal(last?.actorId, alice.id);
      assert.deepEqual(last?.diff, { deleted_at: [null, body.deleted_at], purge_after: [null, body.purge_after] });
      const jobs = (await t.db.owner.execute(sql`select run_at from jobs where kind = 'orgs.purge' and payload->>'org_id' = ${org.id}`)) as unknown as {
        rows: { run_at: Date | string }[];
      };
      assert.equal(jobs.rows.length, 1);
      assert.equal(new Date(jobs.rows[0].run_at).toISOString(), body.purge_after, "the purge job waits for the end of the restore window");
      assert.deepEqual(await t.deps.audit.verify(org.id), { ok: true, events: 2 });
      assert.equal(await countOf("memberships", org.id), 3, "nothing is purged yet");
    });

    it("DELETE needs org:delete: an admin or viewer gets 403 naming it, a stranger 404, an anonymous caller 401; nothing changes", async () => {
      const org = await newOrg();
      for (const u of [bob, vera]) {
        const p = assertProblem(await del(org.id, { confirm: org.slug }, u), 403, "FORBIDDEN");
        assert.equal((p as { permission?: string }).permission, "org:delete");
      }
      assertProblem(await del(org.id, { confirm: org.slug }, sam), 404, "NOT_FOUND");
      assertProblem(await t.call("DELETE", `/v1/orgs/${org.id}`, { confirm: org.slug }), 401, "UNAUTHENTICATED");
      assert.equal((await orgRow(org.id)).deleted_at, null);
      assert.equal(await usable(org.id, bob), 200);
      assert.deepEqual(
        (await events(org.id)).map((e) => e.action),
        ["org.created"],
      );
    });

    it("DELETE of a personal org is refused with 409 PERSONAL_ORG", async () => {
      const personal = (await t.call("GET", "/v1/orgs", undefined, sam.access_token)).json().items.find((o: { personal: boolean }) => o.personal);
      assertProblem(await del(personal.id, { confirm: personal.slug }, sam), 409, "PERSONAL_ORG");
      assert.equal(await usable(personal.id, sam), 200);
    });

    const badBodies: [string, unknown, string, string][] = [
      ["a confirm that is not the slug", { confirm: "not-the-slug" }, "CONFIRMATION_MISMATCH", "confirm"],
      ["the slug in upper case", "UPPER", "CONFIRMATION_MISMATCH", "confirm"],
      ["an empty confirm", { confirm: "" }, "VALIDATION_FAILED", "confirm"],
      ["a 49-character confirm", { confirm: "s".repeat(49) }, "VALIDATION_FAILED", "confirm"],
      ["a numeric confirm", { confirm: 42 }, "VALIDATION_FAILED", "confirm"],
      ["no confirm", {}, "VALIDATION_FAILED", "confirm"],
      ["an unknown field", "EXTRA", "VALIDATION_FAILED", "force"],
    ];
    for (const [label, body, code, field] of badBodies) {
      it(`DELETE refuses ${label} with 400 ${code} naming ${field}; the org stays live`, async () => {
        const org = await newOrg();
        const payload = body === "UPPER" ? { confirm: org.slug.toUpperCase() } : body === "EXTRA" ? { confirm: org.slug, force: true } : body;
        assertProblem(await del(org.id, payload), 400, code, field);
        assert.equal((await orgRow(org.id)).deleted_at, null);
        assert.equal(await usable(org.id, bob), 200);
        assert.deepEqual(
          (await events(org.id)).map((e) => e.action),
          ["org.created"],
        );
      });
    }

    it("DELETE without a body is 400 naming body; a malformed org id is 404 naming orgId", async () => {
      const org = await newOrg();
      assertProblem(await t.call("DELETE", `/v1/orgs/${org.id}`, undefined, alice.access_token), 400, "VALIDATION_FAILED", "body");
      assertProblem(await del("org_nope", { confirm: "x" }), 404, "NOT_FOUND", "orgId");
      assert.equal((await orgRow(org.id)).deleted_at, null);
    });

    it("an owner restores within 30 days: usable again for every member at once, audited, and the pending purge job does nothing", async () => {
      await relogin();
      const org = await newOrg();
      assert.equal((await del(org.id, { confirm: org.slug })).statusCode, 200);
      assert.equal(await usable(org.id, bob), 404, "bob's cache now holds 'no membership'");
      clock.advance(29 * DAY);
      await relogin();
      const res = await restore(org.id);
      assert.equal(res.statusCode, 200, res.body);
      assert.deepEqual(res.json(), { id: org.id, name: "Doomed", slug: org.slug, deleted_at: null, deleted_by: null, purge_after: null });
      for (const u of [alice, bob, vera]) {
        assert.equal(await usable(org.id, u), 200);
        assert.ok((await myOrgIds(u)).includes(org.id));
      }
      assert.ok(!(await listDeleted(alice)).some((o) => o.id === org.id));
      const restored = (await events(org.id)).at(-1);
      assert.equal(restored?.action, "org.restored");
      assert.equal(restored?.actorId, alice.id);
      assert.deepEqual(Object.keys(restored?.diff as object).sort(), ["deleted_at", "purge_after"]);
      assertProblem(await restore(org.id), 404, "ORG_NOT_FOUND", "orgId");

      clock.advance(2 * DAY); // past the original purge date
      await t.deps.jobs.drain();
      assert.equal(await countOf("memberships", org.id), 3, "the restore made the purge job a no-op");
      await relogin();
      assert.equal(await usable(org.id, bob), 200);
      assert.deepEqual(await t.deps.audit.verify(org.id), { ok: true, events: 3 });
    });

    it("restore: an admin gets 403 naming org:delete, a stranger 404, a live org 404, a bad id 400, no token 401", async () => {
      await relogin();
      const org = await newOrg();
      const live = await newOrg();
      assert.equal((await del(org.id, { confirm: org.slug })).statusCode, 200);
      const p = assertProblem(await restore(org.id, bob), 403, "FORBIDDEN");
      assert.equal((p as { permission?: string }).permission, "org:delete");
      assertProblem(await restore(org.id, vera), 403, "FORBIDDEN");
      assertProblem(await restore(org.id, sam), 404, "ORG_NOT_FOUND");
      assertProblem(await restore(live.id), 404, "ORG_NOT_FOUND");
      assertProblem(await restore("not-an-org"), 400, "VALIDATION_FAILED", "orgId");
      assertProblem(await t.call("POST", `/v1/deleted-orgs/${org.id}/restore`), 401, "UNAUTHENTICATED");
      assertProblem(await t.call("GET", "/v1/deleted-orgs"), 401, "UNAUTHENTICATED");
      assert.notEqual((await orgRow(org.id)).deleted_at, null);
      assert.equal(await usable(org.id, alice), 404);
      assert.deepEqual(
        (await events(org.id)).map((e) => e.action),
        ["org.created", "org.deleted"],
      );
    });

    it("after 30 days restore answers 410, then the purge job removes the org and everything in it but keeps its audit log", async () => {
      await relogin();
      const org = await newOrg();
      assert.equal((await del(org.id, { confirm: org.slug })).statusCode, 200);
      clock.advance(RESTORE_WINDOW_MS + 60_000);
      await relogin();
      assertProblem(await restore(org.id), 410, "ORG_PURGE_PASSED");
      assert.ok(!(await listDeleted(alice)).some((o) => o.id === org.id), "no longer restorable, so no longer listed");
      assert.ok((await t.deps.jobs.drain()) >= 1);
      assert.equal(await orgRow(org.id), undefined, "the org row is gone");
      for (const table of ["memberships", "teams", "team_members", "custom_roles", "grants"]) assert.equal(await countOf(table, org.id), 0, table);
      assertProblem(await restore(org.id), 404, "ORG_NOT_FOUND");
      assertProblem(await t.call("GET", `/v1/orgs/${org.id}`, undefined, alice.access_token), 404, "NOT_FOUND");
      const log = await events(org.id);
      assert.deepEqual(
        log.map((e) => e.action),
        ["org.created", "org.deleted", "org.purged"],
      );
      assert.equal(log[2].actorType, "system");
      assert.deepEqual(log[2].diff, { memberships: 3, teams: 2 });
      assert.deepEqual(await t.deps.audit.verify(org.id), { ok: true, events: 3 });
      const again = await t.call("POST", "/v1/orgs", { name: "Reborn", slug: org.slug }, sam.access_token);
      assert.equal(again.statusCode, 201, "the purge frees the slug");
    });

    it("a custom role holding org:delete may delete, list and restore; the membership's custom role decides, not its name", async () => {
      await relogin();
      const org = await newOrg();
      await t.db.owner.execute(
        sql`insert into custom_roles (id, org_id, name, permissions) values (${newId("role")}, ${org.id}, 'caretaker', ARRAY['org:read', 'org:delete']::text[])`,
      );
      await t.db.owner.execute(sql`update memberships set role = 'caretaker' where org_id = ${org.id} and user_id = ${vera.id}`);
      await t.db.owner.execute(sql`update memberships set role = 'auditor' where org_id = ${org.id} and user_id = ${bob.id}`);
      await t.deps.access.invalidate(org.id);
      assert.equal((await del(org.id, { confirm: org.slug }, vera)).statusCode, 200);
      assert.equal((await listDeleted(vera)).find((o) => o.id === org.id)?.role, "caretaker");
      assert.ok(!(await listDeleted(bob)).some((o) => o.id === org.id), "the auditor role does not hold org:delete");
      assertProblem(await restore(org.id, bob), 403, "FORBIDDEN");
      assert.equal((await restore(org.id, vera)).statusCode, 200);
      assert.equal(await usable(org.id, alice), 200);
      const actors = (await events(org.id)).slice(-2).map((e) => [e.action, e.actorId]);
      assert.deepEqual(actors, [
        ["org.deleted", vera.id],
        ["org.restored", vera.id],
      ]);
    });

    it("a slug stays reserved while its org is deleted", async () => {
      await relogin();
      const org = await newOrg();
      assert.equal((await del(org.id, { confirm: org.slug })).statusCode, 200);
      assertProblem(await t.call("POST", "/v1/orgs", { name: "Squatter", slug: org.slug }, sam.access_token), 409, "SLUG_TAKEN", "slug");
    });

    it("deleted, restored and deleted again: the first job does nothing, the second purges at the new date", async () => {
      await relogin();
      const org = await newOrg();
      assert.equal((await del(org.id, { confirm: org.slug })).statusCode, 200);
      clock.advance(10 * DAY);
      await relogin();
      assert.equal((await restore(org.id)).statusCode, 200);
      assert.equal((await del(org.id, { confirm: org.slug })).statusCode, 200);
      clock.advance(21 * DAY); // past the first purge date, before the second
      await t.deps.jobs.drain();
      assert.notEqual(await orgRow(org.id), undefined);
      await relogin();
      assert.equal((await restore(org.id)).statusCode, 200, "still restorable");
      assert.equal((await del(org.id, { confirm: org.slug })).statusCode, 200);
      clock.advance(RESTORE_WINDOW_MS);
      await t.deps.jobs.drain();
      assert.equal(await orgRow(org.id), undefined);
      assert.deepEqual(
        (await events(org.id)).map((e) => e.action),
        ["org.created", "org.deleted", "org.restored", "org.deleted", "org.restored", "org.deleted", "org.purged"],
      );
      assert.deepEqual(await t.deps.audit.verify(org.id), { ok: true, events: 7 });
    });
  });
}
