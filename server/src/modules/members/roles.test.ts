import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { sql, type SQL } from "drizzle-orm";
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

interface Role {
  id: string | null;
  name: string;
  built_in: boolean;
  description: string;
  permissions: string[];
  member_count: number;
  created_at: string | null;
  updated_at: string | null;
}

for (const backend of BACKENDS) {
  describe(`custom roles (${backend})`, () => {
    let t: TestApp;
    let owner: TestUser;
    let pool: TestUser[];
    let next = 0;
    before(async () => {
      t = await createTestApp({ backend, worker: false });
      owner = await signUp(t, "Owner");
      pool = [];
      for (let i = 0; i < 6; i++) pool.push(await signUp(t, `Member ${i}`));
    });
    after(() => t.close());

    const fresh = () => pool[next++ % pool.length];
    const rows = async <T>(q: SQL) => ((await t.db.owner.execute(q)) as unknown as { rows: T[] }).rows;
    const events = (orgId: string) => t.deps.audit.list(orgId, {}, 1000);
    const orgWith = async (...roles: string[]) => {
      const orgId = await makeOrg(t, owner, "Roles Inc", uniqueSlug("roles"));
      const users: TestUser[] = [];
      for (const r of roles) {
        const u = fresh();
        await addMember(t, orgId, u, r);
        users.push(u);
      }
      return { orgId, users };
    };
    const create = (orgId: string, body: unknown, by: TestUser = owner) => t.call("POST", `/v1/orgs/${orgId}/roles`, body, by.access_token);
    const created = async (orgId: string, body: Record<string, unknown>, by: TestUser = owner): Promise<Role> => {
      const res = await create(orgId, body, by);
      assert.equal(res.statusCode, 201, res.body);
      return res.json();
    };
    const list = async (orgId: string, by: TestUser = owner): Promise<Role[]> => {
      const res = await t.call("GET", `/v1/orgs/${orgId}/roles`, undefined, by.access_token);
      assert.equal(res.statusCode, 200, res.body);
      return res.json().items;
    };
    const assign = (orgId: string, user: TestUser, role: string) => t.call("PATCH", `/v1/orgs/${orgId}/members/${user.id}`, { role }, owner.access_token);
    const state = async (orgId: string) => ({
      roles: await rows(sql`select id, name, description, permissions from custom_roles where org_id = ${orgId} order by name`),
      members: await rows(sql`select user_id, role from memberships where org_id = ${orgId} order by user_id`),
      events: (await events(orgId)).length,
    });

    it("GET /roles lists the built-in roles with their permissions and holders, then the custom ones", async () => {
      const { orgId, users } = await orgWith("viewer", "viewer", "developer");
      const roles = await list(orgId, users[0]);
      assert.deepEqual(
        roles.map((r) => r.name),
        ["owner", "admin", "developer", "viewer"],
      );
      for (const r of roles) {
        assert.equal(r.built_in, true);
        assert.equal(r.id, null);
        assert.deepEqual(r.permissions, BUILT_IN_ROLES[r.name as keyof typeof BUILT_IN_ROLES].permissions);
        assert.equal(r.created_at, null);
      }
      assert.deepEqual(
        roles.map((r) => r.member_count),
        [1, 0, 1, 2],
      );
      const role = await created(orgId, { name: "auditor", permissions: ["audit:read"] });
      await assign(orgId, users[1], "auditor");
      const after = await list(orgId);
      assert.equal(after.length, 5);
      assert.deepEqual(after[4], { ...role, member_count: 1 });
      assert.equal(after[3].member_count, 1, "one viewer left");
    });

    it("POST /roles creates a role (permissions in catalog order), readable by GET /roles/:roleId, audited as role.created", async () => {
      const { orgId } = await orgWith();
      const res = await create(orgId, { name: "release_mgr-2", description: "  Ships releases ", permissions: ["keys:create", "org:read", "audit:read"] });
      assert.equal(res.statusCode, 201, res.body);
      const role: Role = res.json();
      assert.match(role.id ?? "", /^rol_[0-9a-z]{26}$/);
      assert.deepEqual(
        { ...role, id: null, created_at: null, updated_at: null },
        {
          id: null,
          name: "release_mgr-2",
          built_in: false,
          description: "Ships releases",
          permissions: ["org:read", "audit:read", "keys:create"],
          member_count: 0,
          created_at: null,
          updated_at: null,
        },
      );
      assert.equal(role.created_at, role.updated_at);
      const got = await t.call("GET", `/v1/orgs/${orgId}/roles/${role.id}`, undefined, owner.access_token);
      assert.equal(got.statusCode, 200, got.body);
      assert.deepEqual(got.json(), role);
      const [e] = await events(orgId);
      assert.equal(e.action, "role.created");
      assert.deepEqual([e.actorId, e.targetType, e.targetId], [owner.id, "role", role.id]);
      assert.deepEqual(e.diff, {
        name: [null, "release_mgr-2"],
        description: [null, "Ships releases"],
        permissions: [null, ["org:read", "audit:read", "keys:create"]],
      });
      // every permission of the catalog at once is fine for an owner
      assert.equal((await create(orgId, { name: "everything", permissions: ALL_PERMISSIONS })).statusCode, 201);
    });

    it("a built-in or existing name answers 409 ROLE_NAME_TAKEN naming name; nothing is created", async () => {
      const { orgId } = await orgWith();
      await created(orgId, { name: "auditor", permissions: ["audit:read"] });
      const before = await state(orgId);
      for (const name of ["owner", "admin", "developer", "viewer", "auditor"]) {
        assertProblem(await create(orgId, { name, permissions: ["org:read"] }), 409, "ROLE_NAME_TAKEN", { field: "name" });
      }
      assert.deepEqual(await state(orgId), before);
      // names are per org
      const other = await orgWith();
      assert.equal((await create(other.orgId, { name: "auditor", permissions: ["audit:read"] })).statusCode, 201);
    });

    const badCreates: [string, Record<string, unknown>, string][] = [
      ["an upper-case name", { name: "Auditor" }, "name"],
      ["a one-letter name", { name: "a" }, "name"],
      ["a name starting with a digit", { name: "1st" }, "name"],
      ["a name with a space", { name: "release mgr" }, "name"],
      ["a 41-character name", { name: `a${"b".repeat(40)}` }, "name"],
      ["no name", { name: undefined }, "name"],
      ["an unknown permission", { permissions: ["org:read", "org:fly"] }, "permissions.1"],
      ["a permission that is no string", { permissions: [42] }, "permissions.0"],
      ["a duplicate permission", { permissions: ["org:read", "org:read"] }, "permissions"],
      ["no permissions", { permissions: [] }, "permissions"],
      ["permissions missing", { permissions: undefined }, "permissions"],
      ["permissions as a string", { permissions: "org:read" }, "permissions"],
      ["a 501-character description", { description: "d".repeat(501) }, "description"],
      ["an unknown field", { built_in: true }, "built_in"],
    ];
    for (const [label, patch, field] of badCreates) {
      it(`POST /roles refuses ${label} with 400 naming ${field}, creating nothing`, async () => {
        const { orgId } = await orgWith();
        const before = await state(orgId);
        const body: Record<string, unknown> = { name: "valid-role", permissions: ["org:read"], ...patch };
        for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
        assertFieldError(await create(orgId, body), field);
        assert.deepEqual(await state(orgId), before);
      });
    }

    it("nobody puts into a role a permission they do not hold: 403 PERMISSION_NOT_HELD naming every one, the first as permission", async () => {
      const {
        orgId,
        users: [admin, mgr, dev],
      } = await orgWith("admin", "viewer", "developer");
      await created(orgId, { name: "role-manager", permissions: ["org:read", "roles:read", "roles:manage", "audit:read"] });
      assert.equal((await assign(orgId, mgr, "role-manager")).statusCode, 200);
      const before = await state(orgId);
      assertProblem(await create(orgId, { name: "deleter", permissions: ["org:read", "org:delete"] }, admin), 403, "PERMISSION_NOT_HELD", {
        permission: "org:delete",
        missing: ["org:delete"],
        field: "permissions",
      });
      // in catalog order, whatever the order asked
      assertProblem(await create(orgId, { name: "peeker", permissions: ["secrets:read", "audit:read", "members:read"] }, mgr), 403, "PERMISSION_NOT_HELD", {
        permission: "members:read",
        missing: ["members:read", "secrets:read"],
      });
      assertProblem(await create(orgId, { name: "peeker", permissions: ["audit:read"] }, dev), 403, "FORBIDDEN", { permission: "roles:manage" });
      assert.deepEqual(await state(orgId), before);
      const mine = await created(orgId, { name: "auditor", permissions: ["audit:read"] }, mgr);
      // adding what they lack is refused too; what they hold they may add
      const patch = (body: unknown) => t.call("PATCH", `/v1/orgs/${orgId}/roles/${mine.id}`, body, mgr.access_token);
      assertProblem(await patch({ permissions: ["audit:read", "secrets:read"] }), 403, "PERMISSION_NOT_HELD", {
        permission: "secrets:read",
        missing: ["secrets:read"],
      });
      assert.equal((await patch({ permissions: ["org:read", "audit:read"] })).statusCode, 200);
      // a role holding what the manager lacks may still lose permissions they hold, and keep the ones they do not
      const big = await created(orgId, { name: "big", permissions: ["org:read", "secrets:read", "audit:read"] });
      const slim = await t.call("PATCH", `/v1/orgs/${orgId}/roles/${big.id}`, { permissions: ["secrets:read"] }, mgr.access_token);
      assert.equal(slim.statusCode, 200, slim.body);
      assert.deepEqual(slim.json().permissions, ["secrets:read"]);
    });

    it("a member with a custom role gets exactly its permissions on real routes, and a change of the role reaches them at once", async () => {
      const {
        orgId,
        users: [u],
      } = await orgWith("viewer");
      const role = await created(orgId, { name: "auditor", permissions: ["audit:read"] });
      assert.equal((await assign(orgId, u, "auditor")).statusCode, 200);
      const audit = () => t.call("GET", `/v1/orgs/${orgId}/audit`, undefined, u.access_token);
      const rename = () => t.call("PATCH", `/v1/orgs/${orgId}`, { display_name: `Renamed ${randomBytes(2).toString("hex")}` }, u.access_token);
      assert.equal((await audit()).statusCode, 200);
      assertProblem(await rename(), 403, "FORBIDDEN", { permission: "org:update" });
      assertProblem(await t.call("GET", `/v1/orgs/${orgId}`, undefined, u.access_token), 403, "FORBIDDEN", { permission: "org:read" });
      assertProblem(await t.call("GET", `/v1/orgs/${orgId}/members`, undefined, u.access_token), 403, "FORBIDDEN", { permission: "members:read" });
      const res = await t.call("PATCH", `/v1/orgs/${orgId}/roles/${role.id}`, { permissions: ["org:read", "org:update"] }, owner.access_token);
      assert.equal(res.statusCode, 200, res.body);
      assert.deepEqual(res.json().permissions, ["org:read", "org:update"]);
      assert.equal(res.json().member_count, 1);
      assert.ok(res.json().updated_at >= role.updated_at!);
      assert.equal((await rename()).statusCode, 200, "granted on the next request");
      assertProblem(await audit(), 403, "FORBIDDEN", { permission: "audit:read" });
      const [e] = (await events(orgId)).filter((x) => x.action === "role.updated");
      assert.deepEqual([e.actorId, e.targetType, e.targetId], [owner.id, "role", role.id]);
      assert.deepEqual(e.diff, { permissions: [["audit:read"], ["org:read", "org:update"]] });
    });

    it("PATCH /roles/:roleId changes the description alone, and a PATCH that changes nothing audits nothing", async () => {
      const { orgId } = await orgWith();
      const role = await created(orgId, { name: "support", permissions: ["members:read"] });
      const res = await t.call("PATCH", `/v1/orgs/${orgId}/roles/${role.id}`, { description: "Helps customers" }, owner.access_token);
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(res.json().description, "Helps customers");
      assert.deepEqual(res.json().permissions, ["members:read"]);
      const n = (await events(orgId)).length;
      assert.deepEqual((await events(orgId))[0].diff, { description: ["", "Helps customers"] });
      const same = await t.call(
        "PATCH",
        `/v1/orgs/${orgId}/roles/${role.id}`,
        { description: "Helps customers", permissions: ["members:read"] },
        owner.access_token,
      );
      assert.equal(same.statusCode, 200, same.body);
      assert.equal((await events(orgId)).length, n);
    });

    const badPatches: [string, unknown, string][] = [
      ["a new name (names are fixed)", { name: "renamed" }, "name"],
      ["an unknown permission", { permissions: ["org:fly"] }, "permissions.0"],
      ["a duplicate permission", { permissions: ["org:read", "org:read"] }, "permissions"],
      ["no permissions", { permissions: [] }, "permissions"],
      ["a 501-character description", { description: "d".repeat(501) }, "description"],
    ];
    for (const [label, body, field] of badPatches) {
      it(`PATCH /roles/:roleId refuses ${label} with 400 naming ${field}, changing nothing`, async () => {
        const { orgId } = await orgWith();
        const role = await created(orgId, { name: "stable", permissions: ["org:read"] });
        const before = await state(orgId);
        assertFieldError(await t.call("PATCH", `/v1/orgs/${orgId}/roles/${role.id}`, body, owner.access_token), field);
        assert.deepEqual(await state(orgId), before);
      });
    }

    it("PATCH {} answers 400; made-up, foreign and malformed role ids answer 404, 404, 400 on every role route", async () => {
      const { orgId } = await orgWith();
      const role = await created(orgId, { name: "stable", permissions: ["org:read"] });
      const other = await orgWith();
      const foreign = await created(other.orgId, { name: "theirs", permissions: ["org:read"] });
      const before = await state(orgId);
      const otherBefore = await state(other.orgId);
      const r = await t.call("PATCH", `/v1/orgs/${orgId}/roles/${role.id}`, {}, owner.access_token);
      assert.equal(r.statusCode, 400, r.body);
      for (const [m, body] of [
        ["GET", undefined],
        ["PATCH", { description: "x" }],
        ["DELETE", undefined],
      ] as const) {
        for (const id of [newId("role"), foreign.id]) {
          assertProblem(await t.call(m, `/v1/orgs/${orgId}/roles/${id}`, body, owner.access_token), 404, "ROLE_NOT_FOUND", { field: "roleId" });
        }
        assertFieldError(await t.call(m, `/v1/orgs/${orgId}/roles/owner`, body, owner.access_token), "roleId");
      }
      assert.deepEqual(await state(orgId), before);
      assert.deepEqual(await state(other.orgId), otherBefore);
    });

    it("DELETE refuses a role in use (409 ROLE_IN_USE saying by how many), then deletes it once free, audited as role.deleted", async () => {
      const {
        orgId,
        users: [a, b],
      } = await orgWith("viewer", "viewer");
      const role = await created(orgId, { name: "auditor", description: "Reads the log", permissions: ["audit:read"] });
      await assign(orgId, a, "auditor");
      await assign(orgId, b, "auditor");
      const del = () => t.call("DELETE", `/v1/orgs/${orgId}/roles/${role.id}`, undefined, owner.access_token);
      const before = await state(orgId);
      const busy = await del();
      assertProblem(busy, 409, "ROLE_IN_USE");
      assert.match(problemOf(busy).detail, /2 members/);
      assert.deepEqual(await state(orgId), before);
      await assign(orgId, a, "viewer");
      await assign(orgId, b, "viewer");
      // a pending invitation offering the role holds it too
      const inv = newId("invitation");
      await t.db.owner.execute(sql`insert into invitations (id, org_id, email, email_key, role, expires_at)
        values (${inv}, ${orgId}, 'x@example.com', 'x@example.com', 'auditor', now() + interval '7 days')`);
      const pending = await del();
      assertProblem(pending, 409, "ROLE_IN_USE");
      assert.match(problemOf(pending).detail, /1 pending invitation/);
      await t.db.owner.execute(sql`update invitations set revoked_at = now() where id = ${inv}`);
      assert.equal((await del()).statusCode, 204);
      assertProblem(await t.call("GET", `/v1/orgs/${orgId}/roles/${role.id}`, undefined, owner.access_token), 404, "ROLE_NOT_FOUND");
      assert.equal((await list(orgId)).length, 4);
      const [e] = await events(orgId);
      assert.equal(e.action, "role.deleted");
      assert.deepEqual([e.actorId, e.targetType, e.targetId], [owner.id, "role", role.id]);
      assert.deepEqual(e.diff, { name: ["auditor", null], description: ["Reads the log", null], permissions: [["audit:read"], null] });
      // the name is free again, and assigning the deleted role is an unknown role
      assertFieldError(await assign(orgId, a, "auditor"), "role");
      assert.equal((await create(orgId, { name: "auditor", permissions: ["audit:read"] })).statusCode, 201);
    });

    it("deleting a role while it is being assigned: never both", async () => {
      const {
        orgId,
        users: [u],
      } = await orgWith("viewer");
      const role = await created(orgId, { name: "racer", permissions: ["org:read"] });
      const [del, put] = await Promise.all([t.call("DELETE", `/v1/orgs/${orgId}/roles/${role.id}`, undefined, owner.access_token), assign(orgId, u, "racer")]);
      const outcome = `${del.statusCode}/${put.statusCode}`;
      assert.ok(["204/400", "409/200"].includes(outcome), `${outcome}: ${del.body} ${put.body}`);
      const left = await rows<{ role: string }>(sql`select m.role from memberships m where m.org_id = ${orgId} and m.user_id = ${u.id}`);
      const exists = (await rows(sql`select 1 from custom_roles where org_id = ${orgId} and name = 'racer'`)).length === 1;
      assert.ok(left[0].role !== "racer" || exists, "no member holds a role that does not exist");
    });

    it("roles:read is every built-in role's; roles:manage only admins' and owners'", async () => {
      const {
        orgId,
        users: [admin, dev, viewer],
      } = await orgWith("admin", "developer", "viewer");
      for (const u of [admin, dev, viewer]) assert.equal((await t.call("GET", `/v1/orgs/${orgId}/roles`, undefined, u.access_token)).statusCode, 200);
      const role = await created(orgId, { name: "by-admin", permissions: ["org:read"] }, admin);
      for (const u of [dev, viewer]) {
        assertProblem(await t.call("PATCH", `/v1/orgs/${orgId}/roles/${role.id}`, { description: "x" }, u.access_token), 403, "FORBIDDEN", {
          permission: "roles:manage",
        });
        assertProblem(await t.call("DELETE", `/v1/orgs/${orgId}/roles/${role.id}`, undefined, u.access_token), 403, "FORBIDDEN", {
          permission: "roles:manage",
        });
      }
      assert.equal((await t.call("GET", `/v1/orgs/${orgId}/roles/${role.id}`, undefined, viewer.access_token)).statusCode, 200);
      // a stranger sees nothing
      const stranger = await signUp(t, "Stranger");
      assertProblem(await t.call("GET", `/v1/orgs/${orgId}/roles/${role.id}`, undefined, stranger.access_token), 404, "NOT_FOUND");
    });
  });
}
