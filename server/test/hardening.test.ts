/**
 * Regression tests for the spine-hardening review (issue 9): each `it` names the defect it pins. Every one of them
 * failed on the code before the fix.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { sql } from "drizzle-orm";
import type { LightMyRequestResponse } from "fastify";
import { BACKENDS, createTestApp, GOOD_PASSWORD, problemOf, signUp, TEST_ABUSE_RULES, type TestApp, type TestUser } from "./harness.ts";

function expectProblem(res: LightMyRequestResponse, status: number, code: string, extra: Record<string, unknown> = {}): void {
  assert.equal(res.statusCode, status, res.body);
  const p = problemOf(res) as Record<string, unknown>;
  assert.equal(p.code, code, res.body);
  for (const [k, v] of Object.entries(extra)) assert.deepEqual(p[k], v, `${k} in ${res.body}`);
}

const FORM = { "content-type": "application/x-www-form-urlencoded" };

for (const backend of BACKENDS) {
  describe(`spine hardening (${backend})`, () => {
    let t: TestApp;
    let owner: TestUser;
    let admin: TestUser;
    let dev: TestUser;
    let root: TestUser;
    let orgId: string;
    let otherOrgId: string;
    before(async () => {
      t = await createTestApp({ backend, worker: false });
      [owner, admin, dev, root] = [await signUp(t, "Owner"), await signUp(t, "Admin"), await signUp(t, "Dev"), await signUp(t, "Root")];
      orgId = (await t.call("POST", "/v1/orgs", { name: "Hard Inc", slug: `hard-${randomBytes(5).toString("hex")}` }, owner.access_token)).json().id;
      otherOrgId = (await t.call("POST", "/v1/orgs", { name: "Other Inc", slug: `other-${randomBytes(5).toString("hex")}` }, owner.access_token)).json().id;
      for (const [u, role] of [
        [admin, "admin"],
        [dev, "developer"],
      ] as const) {
        await t.db.owner.execute(sql`insert into memberships (org_id, user_id, role) values (${orgId}, ${u.id}, ${role})`);
      }
      await t.db.owner.execute(sql`update users set is_platform_admin = true where id = ${root.id}`);
      await t.deps.access.invalidate(orgId);
    });
    after(() => t.close());

    const org = (path = "") => `/v1/orgs/${orgId}${path}`;
    const name = (tag = "k") => `${tag}-${randomBytes(4).toString("hex")}`;
    async function makeKey(by: TestUser, body: Record<string, unknown>) {
      const res = await t.call("POST", org("/keys"), { name: name(), ...body }, by.access_token);
      assert.equal(res.statusCode, 201, res.body);
      return res.json() as { id: string; name: string; secret: string };
    }
    async function login(user: TestUser, extra: Record<string, unknown> = {}) {
      const res = await t.call("POST", "/v1/auth/login", { email: user.email, password: user.password, ...extra });
      assert.equal(res.statusCode, 200, res.body);
      return res.json() as { access_token: string; refresh_token: string };
    }

    it("key rotation hands over no wider secret: an admin rotating an owner's key gets 403 naming org:delete", async () => {
      const ownerKey = await makeKey(owner, { roles: ["owner"] });
      expectProblem(await t.call("POST", org(`/keys/${ownerKey.id}/$rotate`), {}, admin.access_token), 403, "FORBIDDEN", {
        permission: "org:delete",
        missing: ["org:delete"],
      });
      // the owner's own key is theirs to rotate
      const ok = await t.call("POST", org(`/keys/${ownerKey.id}/$rotate`), {}, owner.access_token);
      assert.equal(ok.statusCode, 200, ok.body);
    });

    it("key rotation: a key narrowed to keys:create and keys:manage cannot rotate its owner's wider key", async () => {
      const wide = await makeKey(owner, { roles: ["admin"] });
      const narrow = await makeKey(owner, { permissions: ["keys:create", "keys:manage"] });
      const res = await t.call("POST", org(`/keys/${wide.id}/$rotate`), {}, narrow.secret);
      expectProblem(res, 403, "FORBIDDEN", { permission: "org:read" });
      assert.ok((problemOf(res) as { missing?: string[] }).missing!.includes("members:read"));
    });

    it("key rotation: an inheriting key's rotation needs everything its owner holds", async () => {
      const inherit = await makeKey(owner, { inherit: true });
      expectProblem(await t.call("POST", org(`/keys/${inherit.id}/$rotate`), {}, admin.access_token), 403, "FORBIDDEN", { permission: "org:delete" });
    });

    it("revoked OAuth clients stop: a client_credentials token is refused once its client is revoked", async () => {
      const sa = (await t.call("POST", org("/service-accounts"), { name: name("sa"), roles: ["viewer"] }, owner.access_token)).json();
      const c = (await t.call("POST", org(`/service-accounts/${sa.id}/clients`), { name: "deploy" }, owner.access_token)).json();
      const tok = await t.inject({
        method: "POST",
        url: "/v1/oauth/token",
        headers: FORM,
        payload: new URLSearchParams({ grant_type: "client_credentials", client_id: c.client_id, client_secret: c.client_secret }).toString(),
      });
      assert.equal(tok.statusCode, 200, tok.body);
      const access = tok.json().access_token as string;
      assert.equal((await t.call("GET", org(), undefined, access)).statusCode, 200);
      assert.equal((await t.call("DELETE", org(`/service-accounts/${sa.id}/clients/${c.client_id}`), undefined, owner.access_token)).statusCode, 200);
      expectProblem(await t.call("GET", org(), undefined, access), 401, "INVALID_TOKEN", { reason: "client_revoked" });
      expectProblem(await t.call("POST", org("/keys"), { name: name(), roles: ["viewer"] }, access), 401, "INVALID_TOKEN", { reason: "client_revoked" });
    });

    it("revoked sessions lose their access tokens: logout, logout-all, password change and refresh-token reuse", async () => {
      const a = await login(dev);
      assert.equal((await t.call("GET", "/v1/me", undefined, a.access_token)).statusCode, 200);
      assert.equal((await t.call("POST", "/v1/auth/logout", { refresh_token: a.refresh_token })).statusCode, 204);
      expectProblem(await t.call("GET", "/v1/me", undefined, a.access_token), 401, "INVALID_TOKEN", { reason: "session_revoked" });
      expectProblem(await t.call("POST", org("/keys"), { name: name(), roles: ["viewer"] }, a.access_token), 401, "INVALID_TOKEN", {
        reason: "session_revoked",
      });

      const b = await login(dev);
      const c = await login(dev);
      assert.equal((await t.call("POST", "/v1/auth/logout-all", undefined, c.access_token)).statusCode, 200);
      for (const s of [b, c]) expectProblem(await t.call("GET", org(), undefined, s.access_token), 401, "INVALID_TOKEN", { reason: "session_revoked" });

      const d = await login(dev);
      const e = await login(dev);
      const changed = await t.call("POST", "/v1/me/password", { current_password: dev.password, new_password: `${GOOD_PASSWORD} renewed` }, d.access_token);
      assert.equal(changed.statusCode, 200, changed.body);
      dev.password = `${GOOD_PASSWORD} renewed`;
      assert.equal((await t.call("GET", "/v1/me", undefined, d.access_token)).statusCode, 200, "the session that changed it stays");
      expectProblem(await t.call("GET", "/v1/me", undefined, e.access_token), 401, "INVALID_TOKEN", { reason: "session_revoked" });

      const f = await login(dev);
      assert.equal((await t.call("POST", "/v1/auth/refresh", { refresh_token: f.refresh_token })).statusCode, 200);
      assert.equal((await t.call("POST", "/v1/auth/refresh", { refresh_token: f.refresh_token })).statusCode, 401, "reuse");
      expectProblem(await t.call("GET", "/v1/me", undefined, f.access_token), 401, "INVALID_TOKEN", { reason: "session_revoked" });
      dev.access_token = (await login(dev)).access_token;
    });

    it("a narrowed key cannot remove its owner from the org through leave (person-only route)", async () => {
      const k = await makeKey(dev, { roles: ["viewer"] });
      expectProblem(await t.call("POST", org("/leave"), undefined, k.secret), 403, "FORBIDDEN", { reason: "person_only" });
      const members = await t.call("GET", org("/members"), undefined, owner.access_token);
      assert.ok(
        members.json().items.some((m: { user_id?: string; id?: string }) => (m.user_id ?? m.id) === dev.id),
        "still a member",
      );
    });

    it("a narrowed credential does not act as its owner's role: an owner's key without all permissions cannot flip owner_impersonation", async () => {
      const k = await makeKey(owner, { permissions: ["org:read", "org:update"] });
      expectProblem(await t.call("PATCH", org(), { owner_impersonation: true }, k.secret), 403, "FORBIDDEN", { reason: "owner_only" });
    });

    it("impersonation leaves no lasting access: an impersonator cannot invite, create keys, service accounts or grants", async () => {
      const imp = await t.call(
        "POST",
        "/v1/impersonations",
        { user_id: owner.id, org_id: orgId, reason: "support ticket 9", expires_in: 600 },
        root.access_token,
      );
      assert.equal(imp.statusCode, 201, imp.body);
      const token = imp.json().access_token as string;
      assert.equal((await t.call("GET", org(), undefined, token)).statusCode, 200, "reads work");
      for (const [method, path, body] of [
        ["POST", "/invitations", { email: root.email, role: "owner" }],
        ["POST", "/keys", { name: name(), roles: ["viewer"] }],
        ["POST", "/service-accounts", { name: name("sa"), roles: ["viewer"] }],
        ["POST", "/roles", { name: name("role"), permissions: ["org:read"] }],
        ["PATCH", `/members/${dev.id}`, { role: "admin" }],
        ["POST", "/peer-grants", { user_id: dev.id, permissions: ["org:delete"] }],
      ] as const) {
        expectProblem(await t.call(method, org(path), body, token), 403, "FORBIDDEN", { reason: "impersonation" });
      }
    });

    it("an org-scoped sign-in is bound to its org: refused (404) on another org's routes, fine on its own and on /v1/me", async () => {
      const s = await login(owner, { org_id: orgId });
      assert.equal((await t.call("GET", org(), undefined, s.access_token)).statusCode, 200);
      expectProblem(await t.call("GET", `/v1/orgs/${otherOrgId}`, undefined, s.access_token), 404, "NOT_FOUND");
      assert.equal((await t.call("GET", "/v1/me", undefined, s.access_token)).statusCode, 200);
      // the refreshed token keeps the binding
      const r = await t.call("POST", "/v1/auth/refresh", { refresh_token: s.refresh_token });
      expectProblem(await t.call("GET", `/v1/orgs/${otherOrgId}`, undefined, r.json().access_token), 404, "NOT_FOUND");
    });

    it("a disabled user's tokens and keys stop on org routes", async () => {
      const u = await signUp(t, "Soon Disabled");
      await t.db.owner.execute(sql`insert into memberships (org_id, user_id, role) values (${orgId}, ${u.id}, 'developer')`);
      await t.deps.access.invalidate(orgId);
      const k = await makeKey(u, { roles: ["viewer"] });
      assert.equal((await t.call("GET", org(), undefined, k.secret)).statusCode, 200);
      // disabled behind the platform's back (a database edit): the membership stops counting once the org's facts reload
      await t.db.owner.execute(sql`update users set disabled_at = now() where id = ${u.id}`);
      await t.deps.access.invalidate(orgId);
      expectProblem(await t.call("GET", org(), undefined, k.secret), 404, "NOT_FOUND");
      expectProblem(await t.call("GET", org(), undefined, u.access_token), 404, "NOT_FOUND");
    });

    it("disabling an account (platform admins, POST /v1/users/{id}/$disable) revokes its sessions and stops its keys at once; enabling restores the keys", async () => {
      const u = await signUp(t, "To Disable");
      await t.db.owner.execute(sql`insert into memberships (org_id, user_id, role) values (${orgId}, ${u.id}, 'developer')`);
      await t.deps.access.invalidate(orgId);
      const k = await makeKey(u, { roles: ["viewer"] });
      assert.equal((await t.call("GET", org(), undefined, k.secret)).statusCode, 200);
      // bad input and the wrong callers change nothing
      expectProblem(await t.call("POST", "/v1/users/usr_nope/$disable", {}, root.access_token), 400, "VALIDATION_FAILED");
      expectProblem(await t.call("POST", `/v1/users/${u.id.slice(0, -1)}0/$disable`, {}, root.access_token), 404, "USER_NOT_FOUND");
      expectProblem(await t.call("POST", `/v1/users/${u.id}/$disable`, {}, owner.access_token), 403, "PLATFORM_ADMIN_REQUIRED");
      expectProblem(await t.call("POST", `/v1/users/${root.id}/$disable`, {}, root.access_token), 409, "CANNOT_DISABLE_SELF");
      const rootKey = await t.call("POST", `/v1/orgs/${otherOrgId}/keys`, { name: name() }, owner.access_token);
      expectProblem(await t.call("POST", `/v1/users/${u.id}/$disable`, {}, rootKey.json().secret), 401, "UNAUTHENTICATED");
      assert.equal((await t.call("GET", org(), undefined, k.secret)).statusCode, 200);

      const res = await t.call("POST", `/v1/users/${u.id}/$disable`, {}, root.access_token);
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(res.json().disabled, true);
      assert.equal(res.json().revoked_sessions, 1);
      expectProblem(await t.call("GET", "/v1/me", undefined, u.access_token), 401, "INVALID_TOKEN", { reason: "session_revoked" });
      expectProblem(await t.call("GET", org(), undefined, k.secret), 404, "NOT_FOUND");
      expectProblem(await t.call("POST", "/v1/auth/login", { email: u.email, password: u.password }), 403, "ACCOUNT_DISABLED");
      // again: nothing changes, nothing more is recorded
      assert.equal((await t.call("POST", `/v1/users/${u.id}/$disable`, {}, root.access_token)).json().revoked_sessions, 0);
      const events = (await t.db.owner.execute(
        sql`select action, actor_id from audit_events where org_id = 'platform' and target_id = ${u.id} order by seq`,
      )) as unknown as { rows: unknown[] };
      assert.deepEqual(events.rows, [{ action: "user.disabled", actor_id: root.id }]);

      const back = await t.call("POST", `/v1/users/${u.id}/$enable`, {}, root.access_token);
      assert.equal(back.statusCode, 200, back.body);
      assert.equal(back.json().disabled, false);
      assert.equal((await t.call("GET", org(), undefined, k.secret)).statusCode, 200);
      assert.equal((await t.call("POST", "/v1/auth/login", { email: u.email, password: u.password })).statusCode, 200);
    });

    it("actions through a token exchanged from an API key are audited with the key (actor.via_key_id)", async () => {
      const k = await makeKey(owner, { roles: ["owner"] });
      const x = await t.call("POST", "/v1/oauth/token", {
        grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
        subject_token: k.secret,
        subject_token_type: "urn:plinth:api-key",
      });
      assert.equal(x.statusCode, 200, x.body);
      const display_name = `Via key ${randomBytes(3).toString("hex")}`;
      assert.equal((await t.call("PATCH", org(), { display_name }, x.json().access_token)).statusCode, 200);
      assert.equal((await t.call("PATCH", org(), { display_name: `${display_name}!` }, owner.access_token)).statusCode, 200);
      const list = await t.call("GET", org("/audit?action=org.updated&limit=2"), undefined, owner.access_token);
      assert.equal(list.statusCode, 200, list.body);
      const [direct, viaKey] = list.json().items;
      assert.deepEqual(viaKey.actor, { type: "user", id: owner.id, impersonator_id: null, via_key_id: k.id });
      assert.equal(direct.actor.via_key_id, null);
      // the chain still verifies with the new field hashed
      const verify = await t.deps.audit.verify(orgId);
      assert.equal(verify.ok, true, JSON.stringify(verify));
    });
  });
}

describe("failed credentials are throttled per IP on authenticated routes", () => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp({
      backend: "pglite",
      worker: false,
      abuseRules: { ...TEST_ABUSE_RULES, credentialFailuresPerIp: { points: 5, windowSeconds: 60, baseBlockSeconds: 60, maxBlockSeconds: 3600 } },
    });
  });
  after(() => t.close());

  it("random checksum-less keys and bad JWTs from one IP get 401 five times, then 429 with Retry-After; another IP is unaffected", async () => {
    const ip = "203.0.113.7";
    const codes: number[] = [];
    for (let i = 0; i < 8; i++) {
      const res = await t.inject({
        method: "GET",
        url: "/v1/me",
        remoteAddress: ip,
        headers: { authorization: `Bearer eyJ${randomBytes(12).toString("base64url")}.e30.sig` },
      });
      codes.push(res.statusCode);
      if (res.statusCode === 429) {
        assert.ok(Number(res.headers["retry-after"]) > 0, "Retry-After");
        assert.equal(problemOf(res).code, "RATE_LIMITED");
      }
    }
    assert.deepEqual(codes.slice(0, 5), [401, 401, 401, 401, 401]);
    assert.ok(
      codes.slice(5).every((c) => c === 429),
      codes.join(","),
    );
    const other = await t.inject({
      method: "GET",
      url: "/v1/me",
      remoteAddress: "203.0.113.8",
      headers: { authorization: "Bearer eyJhbGciOiJub25lIn0.e30.x" },
    });
    assert.equal(other.statusCode, 401);
  });
});
