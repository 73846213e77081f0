import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { sql } from "drizzle-orm";
import { decodeJwt } from "jose";
import { BACKENDS, addMember, assertProblem, createTestApp, makeKey, makeOrg, signUp, uniqueSlug, type TestApp, type TestUser } from "../../../test/harness.ts";

const EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";
const API_KEY = "urn:plinth:api-key";
const SECRET = /^plk_live_[0-9A-Za-z]{38}$/;

for (const backend of BACKENDS) {
  describe(`API keys owned by service accounts (${backend})`, () => {
    let t: TestApp;
    let owner: TestUser;
    let admin: TestUser;
    let dev: TestUser;
    /** Manages service accounts and reads keys, but may not create keys. */
    let manager: TestUser;
    let orgId: string;
    let otherOrgId: string;
    before(async () => {
      t = await createTestApp({ backend, worker: false });
      [owner, admin, dev, manager] = await Promise.all([signUp(t, "Owner"), signUp(t, "Admin"), signUp(t, "Dev"), signUp(t, "Manager")]);
      orgId = await makeOrg(t, owner, "Robots", uniqueSlug("sak"));
      otherOrgId = await makeOrg(t, owner, "Robots", uniqueSlug("sak"));
      const role = await t.call(
        "POST",
        `/v1/orgs/${orgId}/roles`,
        { name: "sa-manager", permissions: ["org:read", "members:read", "keys:read", "service-accounts:manage"] },
        owner.access_token,
      );
      assert.equal(role.statusCode, 201, role.body);
      for (const [u, r] of [
        [admin, "admin"],
        [dev, "developer"],
        [manager, "sa-manager"],
      ] as const)
        await addMember(t, orgId, u, r);
    });
    after(() => t.close());

    const base = (path = "") => `/v1/orgs/${orgId}/service-accounts${path}`;
    const uniqueName = (tag = "k") => `${tag}-${randomBytes(4).toString("hex")}`;
    const events = async () => await t.deps.audit.list(orgId, {}, 1000);
    const keyCount = async () =>
      ((await t.db.owner.execute(sql`select id from api_keys where org_id = ${orgId}`)) as unknown as { rows: unknown[] }).rows.length;
    async function makeAccount(roles: string[] = ["viewer"]) {
      const res = await t.call("POST", base(), { name: uniqueName("sa"), roles }, owner.access_token);
      assert.equal(res.statusCode, 201, res.body);
      return res.json() as { id: string };
    }
    async function accountKey(saId: string, body: Record<string, unknown> = { roles: ["viewer"] }, by = owner) {
      const res = await t.call("POST", base(`/${saId}/keys`), { name: uniqueName(), ...body }, by.access_token);
      assert.equal(res.statusCode, 201, res.body);
      return res.json() as { id: string; name: string; secret: string; owner: { type: string; id: string }; created_by: string };
    }
    async function clientToken(saId: string) {
      const c = (await t.call("POST", base(`/${saId}/clients`), { name: "c" }, owner.access_token)).json();
      const res = await t.call("POST", "/v1/oauth/token", { grant_type: "client_credentials", client_id: c.client_id, client_secret: c.client_secret });
      assert.equal(res.statusCode, 200, res.body);
      return res.json().access_token as string;
    }

    it("a member makes a key owned by an account: it acts as the account narrowed to the key, in its org only, audited", async () => {
      const sa = await makeAccount(["developer"]);
      const key = await accountKey(sa.id, { permissions: ["org:read", "teams:read"] }, admin);
      assert.match(key.secret, SECRET);
      assert.deepEqual(key.owner, { type: "service_account", id: sa.id });
      assert.equal(key.created_by, admin.id);
      assert.equal((await t.call("GET", `/v1/orgs/${orgId}`, undefined, key.secret)).statusCode, 200);
      assert.equal((await t.call("GET", `/v1/orgs/${orgId}/teams`, undefined, key.secret)).statusCode, 200);
      // the account may create teams, the key may not
      assertProblem(await t.call("POST", `/v1/orgs/${orgId}/teams`, { name: uniqueName("team") }, key.secret), 403, "FORBIDDEN", {
        permission: "teams:create",
      });
      assertProblem(await t.call("GET", `/v1/orgs/${otherOrgId}`, undefined, key.secret), 404, "NOT_FOUND");
      assertProblem(await t.call("GET", "/v1/me", undefined, key.secret), 401, "UNAUTHENTICATED");
      // listed and managed with the org's other keys, never with its secret
      const listed = await t.call("GET", `/v1/orgs/${orgId}/keys`, undefined, owner.access_token);
      const item = listed.json().items.find((k: { id: string }) => k.id === key.id);
      assert.deepEqual(item.owner, { type: "service_account", id: sa.id });
      assert.ok(!listed.body.includes(key.secret));
      const ev = (await events()).find((e) => e.action === "key.created" && e.targetId === key.id);
      assert.equal(ev?.actorId, admin.id);
      assert.deepEqual((ev!.diff as Record<string, unknown>).owner, [null, `service_account:${sa.id}`]);
      assert.ok(!JSON.stringify(await events()).includes(key.secret));
    });

    it("needs service-accounts:manage and keys:create, and holds no more than both the creator and the account (403 naming it)", async () => {
      const sa = await makeAccount(["viewer"]);
      const before = await keyCount();
      assertProblem(await t.call("POST", base(`/${sa.id}/keys`), { name: uniqueName(), roles: ["viewer"] }, dev.access_token), 403, "FORBIDDEN", {
        permission: "service-accounts:manage",
      });
      assertProblem(await t.call("POST", base(`/${sa.id}/keys`), { name: uniqueName(), roles: ["viewer"] }, manager.access_token), 403, "FORBIDDEN", {
        permission: "keys:create",
      });
      // more than the account holds
      assertProblem(
        await t.call("POST", base(`/${sa.id}/keys`), { name: uniqueName(), permissions: ["org:read", "teams:create"] }, owner.access_token),
        403,
        "FORBIDDEN",
        { permission: "teams:create" },
      );
      // more than the creator holds (an admin has no org:delete), though the account has it
      const strong = await makeAccount(["owner"]);
      assertProblem(await t.call("POST", base(`/${strong.id}/keys`), { name: uniqueName(), roles: ["owner"] }, admin.access_token), 403, "FORBIDDEN", {
        permission: "org:delete",
      });
      // inherit: the creator must hold all the account holds
      assertProblem(await t.call("POST", base(`/${strong.id}/keys`), { name: uniqueName(), inherit: true }, admin.access_token), 403, "FORBIDDEN", {
        permission: "org:delete",
      });
      assert.equal(await keyCount(), before, "nothing created");
    });

    it("answers 404 for an unknown or another org's account, 409 for a disabled one, 409 for a name the account already uses", async () => {
      const sa = await makeAccount();
      assertProblem(
        await t.call("POST", base(`/sa_${"0".repeat(26)}/keys`), { name: uniqueName(), roles: ["viewer"] }, owner.access_token),
        404,
        "SERVICE_ACCOUNT_NOT_FOUND",
      );
      const foreign = (
        await t.call("POST", `/v1/orgs/${otherOrgId}/service-accounts`, { name: uniqueName("sa"), roles: ["viewer"] }, owner.access_token)
      ).json();
      assertProblem(
        await t.call("POST", base(`/${foreign.id}/keys`), { name: uniqueName(), roles: ["viewer"] }, owner.access_token),
        404,
        "SERVICE_ACCOUNT_NOT_FOUND",
      );
      const key = await accountKey(sa.id);
      assertProblem(await t.call("POST", base(`/${sa.id}/keys`), { name: key.name, roles: ["viewer"] }, owner.access_token), 409, "API_KEY_NAME_TAKEN", {
        field: "name",
      });
      // the same name is free for another owner
      await accountKey((await makeAccount()).id, { name: key.name, roles: ["viewer"] });
      assert.equal((await t.call("POST", `/v1/orgs/${orgId}/keys`, { name: key.name, roles: ["viewer"] }, owner.access_token)).statusCode, 201);
      assert.equal((await t.call("POST", base(`/${sa.id}/$disable`), undefined, owner.access_token)).statusCode, 200);
      assertProblem(
        await t.call("POST", base(`/${sa.id}/keys`), { name: uniqueName(), roles: ["viewer"] }, owner.access_token),
        409,
        "SERVICE_ACCOUNT_DISABLED",
      );
    });

    it("a disabled account's keys stop at once (404, as its tokens) and work again when enabled; deleting it revokes them", async () => {
      const sa = await makeAccount(["viewer"]);
      const key = await accountKey(sa.id);
      assert.equal((await t.call("GET", `/v1/orgs/${orgId}`, undefined, key.secret)).statusCode, 200);
      assert.equal((await t.call("POST", base(`/${sa.id}/$disable`), undefined, owner.access_token)).statusCode, 200);
      assertProblem(await t.call("GET", `/v1/orgs/${orgId}`, undefined, key.secret), 404, "NOT_FOUND");
      assert.equal((await t.call("POST", base(`/${sa.id}/$enable`), undefined, owner.access_token)).statusCode, 200);
      assert.equal((await t.call("GET", `/v1/orgs/${orgId}`, undefined, key.secret)).statusCode, 200);
      assert.equal((await t.call("DELETE", base(`/${sa.id}`), undefined, owner.access_token)).statusCode, 204);
      assertProblem(await t.call("GET", `/v1/orgs/${orgId}`, undefined, key.secret), 401, "INVALID_API_KEY", { reason: "revoked" });
      const row = (await t.call("GET", `/v1/orgs/${orgId}/keys/${key.id}`, undefined, owner.access_token)).json();
      assert.equal(row.state, "revoked");
      assert.equal(row.revoked_reason, "owner_deleted");
      assert.ok((await events()).some((e) => e.action === "key.revoked" && e.targetId === key.id && e.actorId === owner.id));
    });

    it("an inheriting key follows the account's roles; a narrowed key never exceeds them", async () => {
      const sa = await makeAccount(["viewer"]);
      const inheriting = await accountKey(sa.id, { inherit: true });
      const narrowed = await accountKey(sa.id, { roles: ["viewer"] });
      assertProblem(await t.call("POST", `/v1/orgs/${orgId}/teams`, { name: uniqueName("t") }, inheriting.secret), 403, "FORBIDDEN", {
        permission: "teams:create",
      });
      assert.equal((await t.call("PATCH", base(`/${sa.id}`), { roles: ["developer"] }, owner.access_token)).statusCode, 200);
      assert.equal((await t.call("POST", `/v1/orgs/${orgId}/teams`, { name: uniqueName("t") }, inheriting.secret)).statusCode, 201);
      assertProblem(await t.call("POST", `/v1/orgs/${orgId}/teams`, { name: uniqueName("t") }, narrowed.secret), 403, "FORBIDDEN", {
        permission: "teams:create",
      });
      // narrowing the account narrows the key at once
      const wide = await accountKey(sa.id, { permissions: ["org:read", "teams:create"] });
      assert.equal((await t.call("POST", `/v1/orgs/${orgId}/teams`, { name: uniqueName("t") }, wide.secret)).statusCode, 201);
      assert.equal((await t.call("PATCH", base(`/${sa.id}`), { roles: ["viewer"] }, owner.access_token)).statusCode, 200);
      assertProblem(await t.call("POST", `/v1/orgs/${orgId}/teams`, { name: uniqueName("t") }, wide.secret), 403, "FORBIDDEN", { permission: "teams:create" });
    });

    it("an account makes its own keys with its token, within its token's authority, never inheriting", async () => {
      const sa = await makeAccount(["developer"]);
      const token = await clientToken(sa.id);
      const res = await t.call("POST", `/v1/orgs/${orgId}/keys`, { name: uniqueName(), roles: ["viewer"] }, token);
      assert.equal(res.statusCode, 201, res.body);
      assert.deepEqual(res.json().owner, { type: "service_account", id: sa.id });
      assert.equal((await t.call("GET", `/v1/orgs/${orgId}`, undefined, res.json().secret)).statusCode, 200);
      assertProblem(await t.call("POST", `/v1/orgs/${orgId}/keys`, { name: uniqueName(), roles: ["admin"] }, token), 403, "FORBIDDEN");
      assertProblem(await t.call("POST", `/v1/orgs/${orgId}/keys`, { name: uniqueName(), inherit: true }, token), 403, "INHERIT_NOT_ALLOWED", {
        field: "inherit",
      });
      // its own key (by name, the account's first) it renames and revokes itself
      const renamed = uniqueName("renamed");
      assert.equal((await t.call("PATCH", `/v1/orgs/${orgId}/keys/${res.json().name}`, { name: renamed }, token)).statusCode, 200);
      assert.equal((await t.call("DELETE", `/v1/orgs/${orgId}/keys/${renamed}`, undefined, token)).json().state, "revoked");
    });

    it("revoking an account's key needs keys:manage or service-accounts:manage; changing it needs keys:manage", async () => {
      const sa = await makeAccount(["viewer"]);
      const key = await accountKey(sa.id);
      const mine = await makeKey(t, orgId, dev);
      assertProblem(await t.call("DELETE", `/v1/orgs/${orgId}/keys/${key.id}`, undefined, dev.access_token), 403, "FORBIDDEN", { permission: "keys:manage" });
      assertProblem(await t.call("DELETE", `/v1/orgs/${orgId}/keys/${mine.id}`, undefined, manager.access_token), 403, "FORBIDDEN", {
        permission: "keys:manage",
      });
      const revoked = await t.call("DELETE", `/v1/orgs/${orgId}/keys/${key.id}`, undefined, manager.access_token);
      assert.equal(revoked.statusCode, 200, revoked.body);
      assertProblem(await t.call("GET", `/v1/orgs/${orgId}`, undefined, key.secret), 401, "INVALID_API_KEY", { reason: "revoked" });
      const other = await accountKey(sa.id);
      const rotated = await t.call("POST", `/v1/orgs/${orgId}/keys/${other.id}/$rotate`, {}, admin.access_token);
      assert.equal(rotated.statusCode, 200, rotated.body);
      assert.equal((await t.call("GET", `/v1/orgs/${orgId}`, undefined, rotated.json().secret)).statusCode, 200);
    });

    it("a token exchanged from an account's key acts as the account, and dies with the account's disable and the key's revocation", async () => {
      const sa = await makeAccount(["viewer"]);
      const key = await accountKey(sa.id, { roles: ["viewer"] });
      const res = await t.call("POST", "/v1/oauth/token", { grant_type: EXCHANGE, subject_token: key.secret, subject_token_type: API_KEY, scope: "org:read" });
      assert.equal(res.statusCode, 200, res.body);
      const jwt = res.json().access_token as string;
      const claims = decodeJwt(jwt);
      assert.equal(claims.sub, sa.id);
      assert.equal(claims.key_id, key.id);
      assert.equal((await t.call("GET", `/v1/orgs/${orgId}`, undefined, jwt)).statusCode, 200);
      assert.equal((await t.call("POST", base(`/${sa.id}/$disable`), undefined, owner.access_token)).statusCode, 200);
      assertProblem(await t.call("GET", `/v1/orgs/${orgId}`, undefined, jwt), 404, "NOT_FOUND");
      assert.equal((await t.call("POST", base(`/${sa.id}/$enable`), undefined, owner.access_token)).statusCode, 200);
      assert.equal((await t.call("GET", `/v1/orgs/${orgId}`, undefined, jwt)).statusCode, 200);
      assert.equal((await t.call("DELETE", base(`/${sa.id}`), undefined, owner.access_token)).statusCode, 204);
      assertProblem(await t.call("GET", `/v1/orgs/${orgId}`, undefined, jwt), 401, "INVALID_TOKEN", { reason: "key_revoked" });
    });
  });
}
