/**
 * How access flows through the team hierarchy (docs/teams.md), through the API: maintainers administer their team and
 * every team below it, not their siblings; members read their own team; org roles with teams:* act on every team; a
 * grant to a team reaches the members of the teams below it; and every change is in force on the very next request.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { sql } from "drizzle-orm";
import type { LightMyRequestResponse } from "fastify";
import { newId } from "../../lib/ids.ts";
import { BACKENDS, addMember, assertProblem, createTestApp, makeOrg, signUp, uniqueSlug, type TestApp, type TestUser } from "../../../test/harness.ts";

for (const backend of BACKENDS) {
  describe(`team hierarchy and access (${backend})`, () => {
    let t: TestApp;
    let org: string;
    /** alice: owner; pm: developer, maintainer of R; sib: developer, maintainer of S; plain: viewer, member of G; reader: no permissions, member of G; admin: admin, in no team. */
    let alice: TestUser, pm: TestUser, sib: TestUser, plain: TestUser, reader: TestUser, admin: TestUser;
    /** R ⊃ C ⊃ G, and S beside R. */
    let R: string, C: string, G: string, S: string;

    const url = (path = "") => `/v1/orgs/${org}/teams${path}`;
    const call = (user: TestUser, method: string, path: string, body?: unknown) => t.call(method, url(path), body, user.access_token);
    const ok = async (res: Promise<LightMyRequestResponse>, status = 200) => {
      const r = await res;
      assert.equal(r.statusCode, status, r.body);
      return r;
    };
    const snapshot = async () => ({
      teams: ((await t.db.owner.execute(sql`select id, name, parent_id, path from teams where org_id = ${org} order by id`)) as unknown as { rows: unknown[] })
        .rows,
      members: (
        (await t.db.owner.execute(sql`select team_id, user_id, role from team_members where org_id = ${org} order by team_id, user_id`)) as unknown as {
          rows: unknown[];
        }
      ).rows,
    });
    const canRead = async (user: TestUser, objectId: string) => {
      const m = await t.deps.access.membership(org, user.id);
      assert.ok(m);
      return (await t.deps.access.check(m, "read", { type: "document", id: objectId })).allowed;
    };

    before(async () => {
      t = await createTestApp({ backend, worker: false });
      [alice, pm, sib, plain, reader, admin] = await Promise.all(["Alice", "Pat", "Sibyl", "Plain", "Reader", "Admin"].map((n) => signUp(t, n)));
      org = await makeOrg(t, alice, "Hier", uniqueSlug("hier"));
      await t.db.owner.execute(sql`insert into custom_roles (id, org_id, name, permissions) values (${newId("role")}, ${org}, 'nobody', '{}')`);
      for (const [u, role] of [
        [pm, "developer"],
        [sib, "developer"],
        [plain, "viewer"],
        [reader, "nobody"],
        [admin, "admin"],
      ] as const)
        await addMember(t, org, u, role);
      const mk = async (name: string, parent_id?: string) => (await ok(call(alice, "POST", "", { name, parent_id }), 201)).json().id as string;
      R = await mk("R");
      C = await mk("C", R);
      G = await mk("G", C);
      S = await mk("S");
      for (const [team, user, role] of [
        [R, pm, "maintainer"],
        [S, sib, "maintainer"],
        [G, plain, "member"],
        [G, reader, "member"],
      ] as const) {
        await ok(call(alice, "PUT", `/${team}/members/${user.id}`, { role }), 201);
      }
    });
    after(() => t.close());

    it("a maintainer of a team renames, moves and manages members of the teams below it, and creates and deletes under it", async () => {
      assert.equal((await ok(call(pm, "PATCH", `/${G}`, { name: "G renamed" }))).json().name, "G renamed");
      await ok(call(pm, "PATCH", `/${G}`, { name: "G" }));
      await ok(call(pm, "PUT", `/${G}/members/${sib.id}`, { role: "member" }), 201);
      await ok(call(pm, "PUT", `/${G}/members/${sib.id}`, { role: "maintainer" }));
      await ok(call(pm, "DELETE", `/${G}/members/${sib.id}`), 204);
      assert.deepEqual((await ok(call(pm, "POST", `/${G}/move`, { parent_id: R }))).json().path, [R, G]);
      assert.deepEqual((await ok(call(pm, "POST", `/${G}/move`, { parent_id: C }))).json().path, [R, C, G]);
      const made = (await ok(call(pm, "POST", "", { name: "Under C", parent_id: C }), 201)).json();
      assert.deepEqual(made.path, [R, C, made.id]);
      const members = (await ok(call(pm, "GET", `/${made.id}/members`))).json().items;
      assert.deepEqual(
        members.map((m: { user_id: string; role: string }) => [m.user_id, m.role]),
        [[pm.id, "maintainer"]],
      );
      await ok(call(pm, "DELETE", `/${made.id}`));
      const [ev] = await t.deps.audit.list(org, { actorId: pm.id }, 1);
      assert.deepEqual([ev.action, ev.targetId], ["team.deleted", made.id], "audited as the maintainer");
    });

    it("a maintainer of a sibling team gets 403 naming the permission on every change, and nothing changes", async () => {
      const before = await snapshot();
      assertProblem(await call(sib, "PATCH", `/${G}`, { name: "Mine now" }), 403, "FORBIDDEN", { permission: "teams:update" });
      assertProblem(await call(sib, "PUT", `/${G}/members/${sib.id}`, { role: "maintainer" }), 403, "FORBIDDEN", { permission: "teams:update" });
      assertProblem(await call(sib, "DELETE", `/${G}/members/${plain.id}`), 403, "FORBIDDEN", { permission: "teams:update" });
      assertProblem(await call(sib, "POST", `/${G}/move`, { parent_id: S }), 403, "FORBIDDEN", { permission: "teams:update" });
      assertProblem(await call(sib, "DELETE", `/${G}`), 403, "FORBIDDEN", { permission: "teams:delete" });
      assertProblem(await call(sib, "DELETE", `/${R}?cascade=true`), 403, "FORBIDDEN", { permission: "teams:delete" });
      // hanging a team under one is administering that one: its grants would reach the newcomers
      assertProblem(await call(sib, "POST", "", { name: "Spy", parent_id: C }), 403, "FORBIDDEN", { permission: "teams:update" });
      assertProblem(await call(sib, "POST", `/${S}/move`, { parent_id: R }), 403, "FORBIDDEN", { permission: "teams:update" });
      // a maintainer of a child does not administer its parent
      await ok(call(alice, "PUT", `/${G}/members/${sib.id}`, { role: "maintainer" }), 201);
      assertProblem(await call(sib, "PATCH", `/${C}`, { name: "Up" }), 403, "FORBIDDEN", { permission: "teams:update" });
      await ok(call(alice, "DELETE", `/${G}/members/${sib.id}`), 204);
      assert.deepEqual(await snapshot(), before);
    });

    it("a plain member of a team reads it but changes nothing", async () => {
      const before = await snapshot();
      assert.equal((await ok(call(plain, "GET", `/${G}`))).json().id, G);
      assertProblem(await call(plain, "PATCH", `/${G}`, { name: "Plainly" }), 403, "FORBIDDEN", { permission: "teams:update" });
      assertProblem(await call(plain, "PUT", `/${G}/members/${plain.id}`, { role: "maintainer" }), 403, "FORBIDDEN", { permission: "teams:update" });
      assertProblem(await call(plain, "POST", `/${G}/move`, { parent_id: S }), 403, "FORBIDDEN", { permission: "teams:update" });
      assertProblem(await call(plain, "DELETE", `/${G}`), 403, "FORBIDDEN", { permission: "teams:delete" });
      assertProblem(await call(plain, "POST", "", { name: "New" }), 403, "FORBIDDEN", { permission: "teams:create" });
      assert.deepEqual(await snapshot(), before);
    });

    it("without teams:read a member of a team reads that team and its members, and nothing else", async () => {
      assertProblem(await call(reader, "GET", ""), 403, "FORBIDDEN", { permission: "teams:read" });
      assertProblem(await call(reader, "GET", "/tree"), 403, "FORBIDDEN", { permission: "teams:read" });
      assert.equal((await ok(call(reader, "GET", `/${G}`))).json().member_count, 3);
      assert.equal((await ok(call(reader, "GET", `/${G}/members`))).json().items.length, 3);
      for (const other of [C, R, S, newId("team")]) {
        assertProblem(await call(reader, "GET", `/${other}`), 403, "FORBIDDEN", { permission: "teams:read" });
        assertProblem(await call(reader, "GET", `/${other}/members`), 403, "FORBIDDEN", { permission: "teams:read" });
      }
    });

    it("org roles with teams:update and teams:delete act on every team; the top level is theirs alone", async () => {
      await ok(call(admin, "PATCH", `/${S}`, { description: "by the admin" }));
      await ok(call(admin, "PUT", `/${G}/members/${admin.id}`, { role: "member" }), 201);
      await ok(call(admin, "DELETE", `/${G}/members/${admin.id}`), 204);
      // pm administers C (through R) but may not lift it out of R to the top level
      assertProblem(await call(pm, "POST", `/${C}/move`, { parent_id: null }), 403, "FORBIDDEN", { permission: "teams:update" });
      assert.deepEqual((await ok(call(admin, "POST", `/${C}/move`, { parent_id: null }))).json().path, [C]);
      // now outside R: pm's maintainership no longer reaches C or G
      assertProblem(await call(pm, "PATCH", `/${G}`, { name: "Nope" }), 403, "FORBIDDEN", { permission: "teams:update" });
      await ok(call(admin, "POST", `/${C}/move`, { parent_id: R }));
      await ok(call(pm, "PATCH", `/${G}`, { name: "G" }));
    });

    it("access changes are in force on the very next request: membership, role, moves", async () => {
      // removing a maintainer: their next change is refused
      await ok(call(pm, "PATCH", `/${G}`, { description: "still mine" }));
      await ok(call(alice, "DELETE", `/${R}/members/${pm.id}`), 204);
      assertProblem(await call(pm, "PATCH", `/${G}`, { description: "not any more" }), 403, "FORBIDDEN", { permission: "teams:update" });
      // adding one: their next change goes through
      assertProblem(await call(sib, "PATCH", `/${G}`, { description: "sib" }), 403, "FORBIDDEN", { permission: "teams:update" });
      await ok(call(alice, "PUT", `/${R}/members/${sib.id}`, { role: "maintainer" }), 201);
      await ok(call(sib, "PATCH", `/${G}`, { description: "sib" }));
      // demoting to member: administering ends, reading R stays
      await ok(call(alice, "PUT", `/${R}/members/${sib.id}`, { role: "member" }));
      assertProblem(await call(sib, "PATCH", `/${G}`, { description: "sib again" }), 403, "FORBIDDEN", { permission: "teams:update" });
      await ok(call(alice, "DELETE", `/${R}/members/${sib.id}`), 204);
      // moving a team under S puts it in the reach of S's maintainer, and moving it back takes it away
      assertProblem(await call(sib, "PATCH", `/${G}`, { description: "via S" }), 403, "FORBIDDEN", { permission: "teams:update" });
      await ok(call(alice, "POST", `/${G}/move`, { parent_id: S }));
      await ok(call(sib, "PATCH", `/${G}`, { description: "via S" }));
      await ok(call(alice, "POST", `/${G}/move`, { parent_id: C }));
      assertProblem(await call(sib, "PATCH", `/${G}`, { description: "via S again" }), 403, "FORBIDDEN", { permission: "teams:update" });
      await ok(call(alice, "PUT", `/${R}/members/${pm.id}`, { role: "maintainer" }), 201);
    });

    it("a grant to a team reaches the members of the teams below it; a move or a delete takes it away at once", async () => {
      const doc = `doc_${randomBytes(8).toString("hex")}`;
      await t.db.owner.execute(sql`insert into grants (id, org_id, subject_type, subject_id, relation, object_type, object_id, kind)
        values (${newId("grant")}, ${org}, 'team', ${R}, 'read', 'document', ${doc}, 'share')`);
      await t.deps.access.invalidate(org);
      assert.equal(await canRead(plain, doc), true, "plain is in G, below R");
      assert.equal(await canRead(sib, doc), false, "sib is in S, beside R");
      await ok(call(alice, "POST", `/${G}/move`, { parent_id: S }));
      assert.equal(await canRead(plain, doc), false, "G left R");
      await ok(call(alice, "POST", `/${S}/move`, { parent_id: R }));
      assert.equal(await canRead(plain, doc), true, "G is below R again, through S");
      assert.equal(await canRead(sib, doc), true, "and so is S");
      await ok(call(alice, "DELETE", `/${G}/members/${plain.id}`), 204);
      assert.equal(await canRead(plain, doc), false, "plain left G");
      const gone = await ok(call(alice, "DELETE", `/${R}?cascade=true`));
      assert.equal(gone.json().grants_deleted, 1);
      assert.equal(await canRead(sib, doc), false, "the team and its grant are gone");
    });
  });
}
