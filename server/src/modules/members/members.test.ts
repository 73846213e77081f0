import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { sql, type SQL } from "drizzle-orm";
import type { LightMyRequestResponse } from "fastify";
import { newId } from "../../lib/ids.ts";
import { ALL_PERMISSIONS, BUILT_IN_ROLES } from "../access/permissions.ts";
import {
  BACKENDS,
  addMember,
  assertFieldError,
  assertProblem,
  createTestApp,
  makeOrg,
  problemOf,
  signUp,
  uniqueSlug,
  type TestApp,
  type TestUser,
} from "../../../test/harness.ts";

for (const backend of BACKENDS) {
  describe(`members (${backend})`, () => {
    let t: TestApp;
    let owner: TestUser;
    let pool: TestUser[];
    let next = 0;
    before(async () => {
      t = await createTestApp({ backend, worker: false });
      owner = await signUp(t, "Olivia Owner");
      pool = [];
      for (let i = 0; i < 14; i++) pool.push(await signUp(t, `Member ${i}`));
    });
    after(() => t.close());

    /** A user not yet in the org under test (each org takes fresh ones so tests stay independent). */
    const fresh = () => pool[next++ % pool.length];
    const rows = async <T>(q: SQL) => ((await t.db.owner.execute(q)) as unknown as { rows: T[] }).rows;
    const events = (orgId: string) => t.deps.audit.list(orgId, {}, 1000);
    const newOrg = (by: TestUser = owner) => makeOrg(t, by, "Members Inc", uniqueSlug("mem"));
    /** An org with its owner and one fresh member of each given role. */
    const orgWith = async (...roles: string[]) => {
      const orgId = await newOrg();
      const users: TestUser[] = [];
      for (const r of roles) {
        const u = fresh();
        await addMember(t, orgId, u, r);
        users.push(u);
      }
      return { orgId, users };
    };
    const roleOf = async (orgId: string, userId: string) =>
      (await rows<{ role: string }>(sql`select role from memberships where org_id = ${orgId} and user_id = ${userId}`))[0]?.role;
    const state = async (orgId: string) => ({
      members: await rows(sql`select user_id, role from memberships where org_id = ${orgId} order by user_id`),
      events: (await events(orgId)).length,
    });

    describe("listing", () => {
      it("GET /members lists user id, name, email, role, joined_at and teams, in joining order, for any role with members:read", async () => {
        const { orgId, users } = await orgWith("admin", "viewer");
        const teamId = newId("team");
        await t.db.owner.execute(sql`insert into teams (id, org_id, name, path) values (${teamId}, ${orgId}, 'Platform', ARRAY[${teamId}]::text[])`);
        await t.db.owner.execute(sql`insert into team_members (team_id, org_id, user_id, role) values (${teamId}, ${orgId}, ${users[1].id}, 'maintainer')`);
        const res = await t.call("GET", `/v1/orgs/${orgId}/members`, undefined, users[1].access_token);
        assert.equal(res.statusCode, 200, res.body);
        const { items, next_cursor } = res.json();
        assert.equal(next_cursor, null);
        assert.deepEqual(
          items.map((m: { user_id: string }) => m.user_id),
          [owner.id, users[0].id, users[1].id],
        );
        assert.deepEqual(
          items.map((m: { role: string }) => m.role),
          ["owner", "admin", "viewer"],
        );
        const v = items[2];
        assert.equal(v.name, `Member ${pool.indexOf(users[1])}`);
        assert.equal(v.email, users[1].email);
        assert.match(v.joined_at, /^\d{4}-\d\d-\d\dT/);
        assert.deepEqual(v.teams, [{ id: teamId, name: "Platform", role: "maintainer" }]);
        assert.deepEqual(items[0].teams, []);
        const one = await t.call("GET", `/v1/orgs/${orgId}/members/${users[1].id}`, undefined, users[0].access_token);
        assert.equal(one.statusCode, 200, one.body);
        assert.deepEqual(one.json(), v);
      });

      it("pages with limit and cursor without gaps or repeats, and filters by role and by q (name or email, case-insensitive)", async () => {
        const { orgId, users } = await orgWith("viewer", "developer", "viewer", "viewer", "admin");
        const seen: string[] = [];
        let cursor: string | null = null;
        let pages = 0;
        do {
          const res: LightMyRequestResponse = await t.call(
            "GET",
            `/v1/orgs/${orgId}/members?limit=2${cursor ? `&cursor=${cursor}` : ""}`,
            undefined,
            owner.access_token,
          );
          assert.equal(res.statusCode, 200, res.body);
          const body = res.json();
          assert.ok(body.items.length <= 2);
          seen.push(...body.items.map((m: { user_id: string }) => m.user_id));
          cursor = body.next_cursor;
          pages++;
        } while (cursor);
        assert.equal(pages, 3);
        assert.deepEqual(seen, [owner.id, ...users.map((u) => u.id)]);
        const viewers = (await t.call("GET", `/v1/orgs/${orgId}/members?role=viewer`, undefined, owner.access_token)).json().items;
        assert.deepEqual(
          viewers.map((m: { user_id: string }) => m.user_id),
          [users[0].id, users[2].id, users[3].id],
        );
        const byEmail = (
          await t.call("GET", `/v1/orgs/${orgId}/members?q=${encodeURIComponent(users[3].email.toUpperCase())}`, undefined, owner.access_token)
        ).json().items;
        assert.deepEqual(
          byEmail.map((m: { user_id: string }) => m.user_id),
          [users[3].id],
        );
        const byName = (await t.call("GET", `/v1/orgs/${orgId}/members?q=olivia`, undefined, owner.access_token)).json().items;
        assert.deepEqual(
          byName.map((m: { user_id: string }) => m.user_id),
          [owner.id],
        );
        const wildcard = (await t.call("GET", `/v1/orgs/${orgId}/members?q=${encodeURIComponent("%")}`, undefined, owner.access_token)).json().items;
        assert.deepEqual(wildcard, [], "% is a literal, not a wildcard");
      });

      const badQueries: [string, string][] = [
        ["limit=0", "limit"],
        ["limit=201", "limit"],
        ["limit=ten", "limit"],
        ["cursor=!!", "cursor"],
        [`cursor=${Buffer.from("2024-01-01T00:00:00Z|x").toString("base64url")}`, "cursor"],
        ["role=Bad%20Role", "role"],
        ["q=", "q"],
        [`q=${"x".repeat(101)}`, "q"],
        ["sort=name", "sort"],
      ];
      for (const [query, field] of badQueries) {
        it(`GET /members?${query.slice(0, 30)} answers 400 naming ${field}`, async () => {
          const orgId = await newOrg();
          assertFieldError(await t.call("GET", `/v1/orgs/${orgId}/members?${query}`, undefined, owner.access_token), field);
        });
      }

      it("GET /members/:userId: another org's member or a made-up id is 404 MEMBER_NOT_FOUND; a malformed id 400", async () => {
        const { orgId } = await orgWith();
        const other = await orgWith("viewer");
        for (const id of [other.users[0].id, newId("user")]) {
          const res = await t.call("GET", `/v1/orgs/${orgId}/members/${id}`, undefined, owner.access_token);
          assertProblem(res, 404, "MEMBER_NOT_FOUND", { field: "userId" });
        }
        assertFieldError(await t.call("GET", `/v1/orgs/${orgId}/members/org_123`, undefined, owner.access_token), "userId");
      });
    });

    describe("changing roles", () => {
      const patch = (orgId: string, target: TestUser | string, body: unknown, by: TestUser) =>
        t.call("PATCH", `/v1/orgs/${orgId}/members/${typeof target === "string" ? target : target.id}`, body, by.access_token);

      it("an owner changes a member's role: the member view comes back, member.role_changed is audited, access follows at once", async () => {
        const {
          orgId,
          users: [dev],
        } = await orgWith("developer");
        // warm the member's cached access: the change must still be seen on the next request
        assert.equal((await t.call("PATCH", `/v1/orgs/${orgId}`, { display_name: "Nope" }, dev.access_token)).statusCode, 403);
        const res = await patch(orgId, dev, { role: "admin" }, owner);
        assert.equal(res.statusCode, 200, res.body);
        assert.equal(res.json().role, "admin");
        assert.equal(res.json().user_id, dev.id);
        const [e] = await events(orgId);
        assert.equal(e.action, "member.role_changed");
        assert.deepEqual([e.actorId, e.targetType, e.targetId], [owner.id, "user", dev.id]);
        assert.deepEqual(e.diff, { role: ["developer", "admin"] });
        assert.equal((await t.call("PATCH", `/v1/orgs/${orgId}`, { display_name: "Now yes" }, dev.access_token)).statusCode, 200);
      });

      it("setting the role a member already has answers 200 and audits nothing", async () => {
        const {
          orgId,
          users: [v],
        } = await orgWith("viewer");
        const n = (await events(orgId)).length;
        const res = await patch(orgId, v, { role: "viewer" }, owner);
        assert.equal(res.statusCode, 200, res.body);
        assert.equal((await events(orgId)).length, n);
      });

      it("nobody changes their own role: 403 CANNOT_CHANGE_OWN_ROLE, for owners and admins alike", async () => {
        const {
          orgId,
          users: [admin],
        } = await orgWith("admin", "owner");
        const before = await state(orgId);
        assertProblem(await patch(orgId, owner, { role: "admin" }, owner), 403, "CANNOT_CHANGE_OWN_ROLE");
        assertProblem(await patch(orgId, admin, { role: "viewer" }, admin), 403, "CANNOT_CHANGE_OWN_ROLE");
        assertProblem(await patch(orgId, admin, { role: "owner" }, admin), 403, "CANNOT_CHANGE_OWN_ROLE");
        assert.deepEqual(await state(orgId), before);
      });

      it("admins cannot change an owner's role nor make anyone owner: 403 OWNER_ONLY; an owner can", async () => {
        const {
          orgId,
          users: [admin, dev, owner2],
        } = await orgWith("admin", "developer", "owner");
        const before = await state(orgId);
        assertProblem(await patch(orgId, owner, { role: "viewer" }, admin), 403, "OWNER_ONLY");
        assertProblem(await patch(orgId, owner2, { role: "admin" }, admin), 403, "OWNER_ONLY");
        assertProblem(await patch(orgId, dev, { role: "owner" }, admin), 403, "OWNER_ONLY");
        assert.deepEqual(await state(orgId), before);
        // an owner makes an owner, and (there being another owner) demotes one
        assert.equal((await patch(orgId, dev, { role: "owner" }, owner)).statusCode, 200);
        assert.equal((await patch(orgId, owner2, { role: "admin" }, dev)).statusCode, 200);
        assert.equal(await roleOf(orgId, owner2.id), "admin");
        // an admin may still change another admin
        assert.equal((await patch(orgId, owner2, { role: "developer" }, admin)).statusCode, 200);
      });

      it("nobody assigns a role above their own, nor touches a member whose role is above theirs: 403 ROLE_ABOVE_OWN naming every missing permission", async () => {
        const {
          orgId,
          users: [admin, manager, v1, v2],
        } = await orgWith("admin", "viewer", "viewer", "viewer");
        // a custom role that may change roles, with little else
        const mk = async (name: string, permissions: string[]) => {
          const r = await t.call("POST", `/v1/orgs/${orgId}/roles`, { name, permissions }, owner.access_token);
          assert.equal(r.statusCode, 201, r.body);
        };
        const PEOPLE_MANAGER: string[] = ["org:read", "members:read", "members:update"];
        await mk("people-manager", PEOPLE_MANAGER);
        await mk("reader", ["org:read"]);
        await mk("destroyer", ["org:read", "org:delete"]);
        assert.equal((await patch(orgId, manager, { role: "people-manager" }, owner)).statusCode, 200);
        assert.equal((await patch(orgId, v1, { role: "reader" }, owner)).statusCode, 200);
        const before = await state(orgId);
        // every missing permission in catalog order (access/authority.ts), the first as `permission`
        const developerGap = await patch(orgId, v1, { role: "developer" }, manager);
        assertProblem(developerGap, 403, "ROLE_ABOVE_OWN", { permission: "teams:read", field: "role" });
        // what a developer holds that the people manager does not, in catalog order (the catalog grows: derived from it)
        const gapOf = (role: "developer" | "admin") =>
          ALL_PERMISSIONS.filter((p) => (BUILT_IN_ROLES[role].permissions as readonly string[]).includes(p) && !PEOPLE_MANAGER.includes(p));
        assert.deepEqual((problemOf(developerGap) as { missing?: string[] }).missing, gapOf("developer"));
        assert.ok(gapOf("developer").includes("secrets:write") && gapOf("developer").length > 5);
        assertProblem(await patch(orgId, v1, { role: "destroyer" }, admin), 403, "ROLE_ABOVE_OWN", { permission: "org:delete", missing: ["org:delete"] });
        // the member's own role is checked first: an admin's is above a people manager's
        const adminGap = await patch(orgId, admin, { role: "reader" }, manager);
        assertProblem(adminGap, 403, "ROLE_ABOVE_OWN", { permission: "org:update" });
        assert.deepEqual((problemOf(adminGap) as { missing?: string[] }).missing, gapOf("admin"));
        assert.deepEqual(await state(orgId), before);
        // within their own permissions they may
        assert.equal((await patch(orgId, v1, { role: "people-manager" }, manager)).statusCode, 200);
        assert.equal((await patch(orgId, v2, { role: "destroyer" }, owner)).statusCode, 200);
        // and an admin cannot touch the holder of a role above theirs
        assertProblem(await patch(orgId, v2, { role: "viewer" }, admin), 403, "ROLE_ABOVE_OWN", { permission: "org:delete", missing: ["org:delete"] });
        assertProblem(await t.call("DELETE", `/v1/orgs/${orgId}/members/${v2.id}`, undefined, admin.access_token), 403, "ROLE_ABOVE_OWN", {
          permission: "org:delete",
          missing: ["org:delete"],
        });
        assert.equal(await roleOf(orgId, v2.id), "destroyer");
      });

      it("roles without members:update get 403 naming it", async () => {
        const {
          orgId,
          users: [dev, v],
        } = await orgWith("developer", "viewer");
        assertProblem(await patch(orgId, v, { role: "developer" }, dev), 403, "FORBIDDEN", { permission: "members:update" });
      });

      const badBodies: [string, unknown, string][] = [
        ["an unknown role", { role: "wizard" }, "role"],
        ["a malformed role", { role: "Admin!" }, "role"],
        ["a one-letter role", { role: "a" }, "role"],
        ["a number for role", { role: 3 }, "role"],
        ["no role", {}, "role"],
        ["an unknown field", { role: "viewer", teams: [] }, "teams"],
      ];
      for (const [label, body, field] of badBodies) {
        it(`PATCH /members/:userId refuses ${label} with 400 naming ${field}, changing nothing`, async () => {
          const {
            orgId,
            users: [v],
          } = await orgWith("viewer");
          const before = await state(orgId);
          assertFieldError(await patch(orgId, v, body, owner), field);
          assert.deepEqual(await state(orgId), before);
        });
      }

      it("another org's member, a made-up user and a malformed id: 404, 404, 400; nothing changes", async () => {
        const { orgId } = await orgWith();
        const other = await orgWith("viewer");
        const before = await state(other.orgId);
        assertProblem(await patch(orgId, other.users[0], { role: "admin" }, owner), 404, "MEMBER_NOT_FOUND");
        assertProblem(await patch(orgId, newId("user"), { role: "admin" }, owner), 404, "MEMBER_NOT_FOUND");
        assertFieldError(await patch(orgId, "usr_nope", { role: "admin" }, owner), "userId");
        assert.deepEqual(await state(other.orgId), before);
        assert.equal(await roleOf(other.orgId, other.users[0].id), "viewer");
      });

      it("two owners demoting each other at once leave exactly one owner", async () => {
        const {
          orgId,
          users: [o2],
        } = await orgWith("owner");
        const [a, b] = await Promise.all([patch(orgId, o2, { role: "admin" }, owner), patch(orgId, owner, { role: "admin" }, o2)]);
        const codes = [a.statusCode, b.statusCode].sort();
        assert.equal(codes[0], 200, `${a.body} ${b.body}`);
        assert.ok([403, 409].includes(codes[1]), `${a.body} ${b.body}`);
        const owners = await rows(sql`select user_id from memberships where org_id = ${orgId} and role = 'owner'`);
        assert.equal(owners.length, 1);
      });
    });

    describe("removing and leaving", () => {
      const remove = (orgId: string, target: TestUser | string, by: TestUser) =>
        t.call("DELETE", `/v1/orgs/${orgId}/members/${typeof target === "string" ? target : target.id}`, undefined, by.access_token);

      it("removal ends access at once: membership, teams, grants and org-scoped sessions go; the next request is 404", async () => {
        const {
          orgId,
          users: [admin],
        } = await orgWith("admin");
        // a user of its own: this test ends its sign-in session
        const dev = await signUp(t, "Doomed Dev");
        await addMember(t, orgId, dev, "developer");
        const other = await newOrg();
        await addMember(t, other, dev, "viewer");
        const teamId = newId("team");
        await t.db.owner.execute(sql`insert into teams (id, org_id, name, path) values (${teamId}, ${orgId}, 'Core', ARRAY[${teamId}]::text[])`);
        await t.db.owner.execute(sql`insert into team_members (team_id, org_id, user_id, role) values (${teamId}, ${orgId}, ${dev.id}, 'member')`);
        await t.db.owner.execute(sql`insert into grants (id, org_id, subject_type, subject_id, relation, object_type, object_id, kind, granted_by)
          values (${newId("grant")}, ${orgId}, 'user', ${dev.id}, 'audit:read', 'org', ${orgId}, 'peer', ${owner.id}),
                 (${newId("grant")}, ${orgId}, 'user', ${dev.id}, 'read', 'team', ${teamId}, 'share', ${owner.id}),
                 (${newId("grant")}, ${orgId}, 'user', ${admin.id}, 'read', 'team', ${teamId}, 'share', ${owner.id})`);
        // the member's sign-in session opened for this org (SSO-style), and one for the other org
        const orgSession = newId("session");
        const otherSession = newId("session");
        await t.db.owner.execute(sql`insert into sessions (id, user_id, method, org_id, expires_at)
          values (${orgSession}, ${dev.id}, 'sso', ${orgId}, now() + interval '1 day'), (${otherSession}, ${dev.id}, 'sso', ${other}, now() + interval '1 day')`);
        // the login session from sign-up, scoped to the org: its refresh token must die with the membership
        await t.db.owner.execute(
          sql`update sessions set org_id = ${orgId} where user_id = ${dev.id} and revoked_at is null and id not in (${orgSession}, ${otherSession})`,
        );
        await t.deps.access.invalidate(orgId);
        // warm the cache: the member is in
        assert.equal((await t.call("GET", `/v1/orgs/${orgId}`, undefined, dev.access_token)).statusCode, 200);
        const res = await remove(orgId, dev, admin);
        assert.equal(res.statusCode, 200, res.body);
        // the sign-up session was bound to the org: its access token stops at once, on every route
        assertProblem(await t.call("GET", `/v1/orgs/${other}`, undefined, dev.access_token), 401, "INVALID_TOKEN", { reason: "session_revoked" });
        const again = await t.call("POST", "/v1/auth/login", { email: dev.email, password: dev.password });
        assert.equal(again.statusCode, 200, again.body);
        const unbound = again.json().access_token as string;
        assertProblem(await t.call("GET", `/v1/orgs/${orgId}`, undefined, unbound), 404, "NOT_FOUND");
        assert.equal((await t.call("GET", `/v1/orgs/${other}`, undefined, unbound)).statusCode, 200, "other orgs unaffected");
        assert.equal(await roleOf(orgId, dev.id), undefined);
        assert.equal((await rows(sql`select 1 from team_members where org_id = ${orgId} and user_id = ${dev.id}`)).length, 0);
        assert.equal((await rows(sql`select 1 from grants where org_id = ${orgId} and subject_id = ${dev.id}`)).length, 0);
        assert.equal((await rows(sql`select 1 from grants where org_id = ${orgId} and subject_id = ${admin.id}`)).length, 1, "others' grants stay");
        const sessions = await rows<{ id: string; revoked_reason: string | null }>(sql`select id, revoked_reason from sessions where user_id = ${dev.id}`);
        const reasons = Object.fromEntries(sessions.map((s) => [s.id, s.revoked_reason]));
        assert.equal(reasons[orgSession], "removed_from_org");
        assert.equal(reasons[otherSession], null);
        const refresh = await t.call("POST", "/v1/auth/refresh", { refresh_token: dev.refresh_token });
        assert.equal(refresh.statusCode, 401, refresh.body);
        const [e] = await events(orgId);
        assert.equal(e.action, "member.removed");
        assert.deepEqual([e.actorId, e.targetType, e.targetId], [admin.id, "user", dev.id]);
        const nothingMade = { oauth_clients: [], service_account_keys: [], service_keys: [], revoked: false };
        assert.deepEqual(e.diff, { role: ["developer", null], removed_grants: 2, revoked_sessions: 2, revoked_api_keys: [], created_credentials: nothingMade });
        assertProblem(await remove(orgId, dev, admin), 404, "MEMBER_NOT_FOUND");
      });

      it("admins cannot remove owners (403 OWNER_ONLY); owners can, but never the last one (409 LAST_OWNER)", async () => {
        const {
          orgId,
          users: [admin, o2],
        } = await orgWith("admin", "owner");
        assertProblem(await remove(orgId, o2, admin), 403, "OWNER_ONLY");
        assertProblem(await remove(orgId, owner, admin), 403, "OWNER_ONLY");
        assert.equal((await remove(orgId, o2, owner)).statusCode, 200);
        // the sole owner removing themselves is leaving, and the last owner cannot leave
        const before = await state(orgId);
        assertProblem(await remove(orgId, owner, owner), 409, "LAST_OWNER");
        assert.deepEqual(await state(orgId), before);
      });

      it("roles without members:remove get 403 naming it; bad and foreign ids 400 / 404, nothing removed", async () => {
        const {
          orgId,
          users: [dev, v],
        } = await orgWith("developer", "viewer");
        const other = await orgWith("viewer");
        const before = await state(orgId);
        const otherBefore = await state(other.orgId);
        assertProblem(await remove(orgId, v, dev), 403, "FORBIDDEN", { permission: "members:remove" });
        assertProblem(await remove(orgId, other.users[0], owner), 404, "MEMBER_NOT_FOUND");
        assertProblem(await remove(orgId, newId("user"), owner), 404, "MEMBER_NOT_FOUND");
        assertFieldError(await remove(orgId, "me", owner), "userId");
        assert.deepEqual(await state(orgId), before);
        assert.deepEqual(await state(other.orgId), otherBefore);
      });

      it("POST /leave: any member leaves (member.left), and their next request is 404", async () => {
        const {
          orgId,
          users: [v],
        } = await orgWith("viewer");
        assert.equal((await t.call("GET", `/v1/orgs/${orgId}/members`, undefined, v.access_token)).statusCode, 200);
        const res = await t.call("POST", `/v1/orgs/${orgId}/leave`, undefined, v.access_token);
        assert.equal(res.statusCode, 204, res.body);
        assertProblem(await t.call("GET", `/v1/orgs/${orgId}/members`, undefined, v.access_token), 404, "NOT_FOUND");
        const [e] = await events(orgId);
        assert.equal(e.action, "member.left");
        assert.deepEqual([e.actorId, e.targetId], [v.id, v.id]);
        assert.deepEqual(e.diff, {
          role: ["viewer", null],
          removed_grants: 0,
          revoked_sessions: 0,
          revoked_api_keys: [],
          created_credentials: { oauth_clients: [], service_account_keys: [], service_keys: [], revoked: false },
        });
        assertProblem(await t.call("POST", `/v1/orgs/${orgId}/leave`, undefined, v.access_token), 404, "NOT_FOUND");
      });

      it("DELETE /members/<own id> is leaving: audited as member.left", async () => {
        const {
          orgId,
          users: [admin],
        } = await orgWith("admin");
        assert.equal((await remove(orgId, admin, admin)).statusCode, 200);
        const [e] = await events(orgId);
        assert.deepEqual([e.action, e.actorId, e.targetId], ["member.left", admin.id, admin.id]);
        assertProblem(await t.call("GET", `/v1/orgs/${orgId}`, undefined, admin.access_token), 404, "NOT_FOUND");
      });

      it("a member whose custom role lacks even org:read can still leave", async () => {
        const {
          orgId,
          users: [u],
        } = await orgWith("viewer");
        const r = await t.call("POST", `/v1/orgs/${orgId}/roles`, { name: "badge-only", permissions: ["usage:read"] }, owner.access_token);
        assert.equal(r.statusCode, 201, r.body);
        assert.equal((await t.call("PATCH", `/v1/orgs/${orgId}/members/${u.id}`, { role: "badge-only" }, owner.access_token)).statusCode, 200);
        assertProblem(await t.call("GET", `/v1/orgs/${orgId}`, undefined, u.access_token), 403, "FORBIDDEN", { permission: "org:read" });
        assert.equal((await t.call("POST", `/v1/orgs/${orgId}/leave`, undefined, u.access_token)).statusCode, 204);
      });

      it("the last owner cannot leave (409 LAST_OWNER, nothing changes); with a second owner, they can", async () => {
        const {
          orgId,
          users: [o2],
        } = await orgWith("owner");
        const solo = await newOrg();
        const before = await state(solo);
        assertProblem(await t.call("POST", `/v1/orgs/${solo}/leave`, undefined, owner.access_token), 409, "LAST_OWNER");
        assert.deepEqual(await state(solo), before);
        assert.equal((await t.call("POST", `/v1/orgs/${orgId}/leave`, undefined, o2.access_token)).statusCode, 204);
        assertProblem(await t.call("POST", `/v1/orgs/${orgId}/leave`, undefined, owner.access_token), 409, "LAST_OWNER");
        assert.equal(await roleOf(orgId, owner.id), "owner");
      });

      it("two owners leaving at once: one leaves, the other stays as the last owner", async () => {
        const {
          orgId,
          users: [o2],
        } = await orgWith("owner");
        const res = await Promise.all([owner, o2].map((u) => t.call("POST", `/v1/orgs/${orgId}/leave`, undefined, u.access_token)));
        assert.deepEqual(res.map((r) => r.statusCode).sort(), [204, 409]);
        assert.equal((await rows(sql`select 1 from memberships where org_id = ${orgId} and role = 'owner'`)).length, 1);
      });

      it("strangers get 404 from every members route", async () => {
        const {
          orgId,
          users: [v],
        } = await orgWith("viewer");
        const stranger = fresh();
        for (const [m, p, b] of [
          ["GET", "/members", undefined],
          ["GET", `/members/${v.id}`, undefined],
          ["PATCH", `/members/${v.id}`, { role: "admin" }],
          ["DELETE", `/members/${v.id}`, undefined],
          ["POST", "/leave", undefined],
        ] as const) {
          assertProblem(await t.call(m, `/v1/orgs/${orgId}${p}`, b, stranger.access_token), 404, "NOT_FOUND");
        }
        assert.equal(await roleOf(orgId, v.id), "viewer");
      });
    });
  });
}
