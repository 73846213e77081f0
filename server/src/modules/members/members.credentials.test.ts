import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { sql } from "drizzle-orm";
import { BACKENDS, addMember, assertProblem, createTestApp, makeKey, makeOrg, signUp, uniqueSlug, type TestApp, type TestUser } from "../../../test/harness.ts";
import { createManualClock } from "../../lib/clock.ts";
import { BUILT_IN_ROLES } from "../access/permissions.ts";
import { keyPair, registration, serviceName, serviceToken } from "../service-keys/service-keys.test-kit.ts";

const FORM = { "content-type": "application/x-www-form-urlencoded" };

// Regression (issue 9): the credentials a removed member made for the org (service accounts' OAuth clients and keys,
// registered service keys) kept working and nothing said so. They still belong to the org and keep working by
// default, but the removal now lists them (answer and audit event), and ?revoke_credentials=true revokes them. The
// sessions the removal revokes reach the revocation set after the commit, so their access tokens stop at once.
for (const backend of BACKENDS) {
  describe(`removing a member: what they made (${backend})`, () => {
    let t: TestApp;
    const clock = createManualClock();
    let owner: TestUser;
    let orgId: string;
    before(async () => {
      t = await createTestApp({ backend, clock, worker: false });
      owner = await signUp(t, "Olivia Owner");
      orgId = await makeOrg(t, owner, "Makers Inc", uniqueSlug("mk"));
    });
    after(() => t.close());

    const url = (path: string) => `/v1/orgs/${orgId}${path}`;
    const name = (tag: string) => `${tag}-${randomBytes(4).toString("hex")}`;
    const events = async () => t.deps.audit.list(orgId, {}, 1000);
    const ok = async (method: string, path: string, body: unknown, token: string, status = 201) => {
      const res = await t.call(method, url(path), body, token);
      assert.equal(res.statusCode, status, res.body);
      return res.json();
    };
    const clientToken = (c: { client_id: string; client_secret: string }) =>
      t.inject({
        method: "POST",
        url: "/v1/oauth/token",
        headers: FORM,
        payload: new URLSearchParams({ grant_type: "client_credentials", client_id: c.client_id, client_secret: c.client_secret }).toString(),
      });
    const getOrg = (token: string) => t.call("GET", url(""), undefined, token);

    /**
     * A new admin who makes, for the org: a service account with an OAuth client, a key of that account and a service
     * key registration (with their session), and a second client through their own API key. The owner makes a client
     * of the same account too (not theirs to answer for).
     */
    async function adminWhoMadeThings() {
      const admin = await signUp(t, "Adam Admin");
      await addMember(t, orgId, admin, "admin");
      const sa = await ok("POST", "/service-accounts", { name: name("sa"), roles: ["viewer"] }, admin.access_token);
      const client = await ok("POST", `/service-accounts/${sa.id}/clients`, { name: "deploy" }, admin.access_token);
      const saKey = await ok("POST", `/service-accounts/${sa.id}/keys`, { name: name("sak"), roles: ["viewer"] }, admin.access_token);
      const pair = await keyPair("ES256");
      const service = serviceName();
      const svk = await ok("POST", "/service-keys", registration(service, pair, { roles: ["viewer"] }), admin.access_token);
      const ownKey = await makeKey(t, orgId, admin, { roles: ["admin"] });
      const viaKey = await ok("POST", `/service-accounts/${sa.id}/clients`, { name: "via-key" }, ownKey.secret);
      const ownersClient = await ok("POST", `/service-accounts/${sa.id}/clients`, { name: "owners" }, owner.access_token);
      const serviceJwt = () => serviceToken({ t, clock }, service, pair);
      return { admin, sa, client, viaKey, ownersClient, saKey, svk, ownKey, serviceJwt };
    }

    it("the removal answers and audits what the member made, which keeps working; their own keys are revoked", async () => {
      const m = await adminWhoMadeThings();
      const res = await t.call("DELETE", url(`/members/${m.admin.id}`), undefined, owner.access_token);
      assert.equal(res.statusCode, 200, res.body);
      const made = { oauth_clients: [m.client.client_id, m.viaKey.client_id].sort(), service_account_keys: [m.saKey.id], service_keys: [m.svk.id] };
      assert.deepEqual(res.json(), { user_id: m.admin.id, role: "admin", revoked_api_keys: [m.ownKey.id], created_credentials: { ...made, revoked: false } });

      // they belong to the org: still working
      for (const c of [m.client, m.viaKey, m.ownersClient]) {
        const tok = await clientToken(c);
        assert.equal(tok.statusCode, 200, tok.body);
        assert.equal((await getOrg(tok.json().access_token)).statusCode, 200);
      }
      assert.equal((await getOrg(m.saKey.secret)).statusCode, 200);
      assert.equal((await getOrg(await m.serviceJwt())).statusCode, 200);
      assertProblem(await getOrg(m.ownKey.secret), 401, "INVALID_API_KEY", { reason: "revoked" });

      const removed = (await events()).find((e) => e.action === "member.removed" && e.targetId === m.admin.id);
      assert.ok(removed, "member.removed audited");
      assert.equal(removed.actorId, owner.id);
      const diff = removed.diff as Record<string, unknown>;
      assert.deepEqual(diff.revoked_api_keys, [m.ownKey.id]);
      assert.deepEqual(diff.created_credentials, { ...made, revoked: false });
    });

    it("?revoke_credentials=true revokes them too, each audited by its module, and they stop at once", async () => {
      const m = await adminWhoMadeThings();
      const tok = await clientToken(m.client);
      assert.equal(tok.statusCode, 200, tok.body);
      const clientJwt = tok.json().access_token;
      assert.equal((await getOrg(clientJwt)).statusCode, 200);
      assert.equal((await getOrg(m.saKey.secret)).statusCode, 200, "warm in the key cache");
      const serviceJwt = await m.serviceJwt();
      assert.equal((await getOrg(serviceJwt)).statusCode, 200, "warm in the service key cache");

      const res = await t.call("DELETE", url(`/members/${m.admin.id}?revoke_credentials=true`), undefined, owner.access_token);
      assert.equal(res.statusCode, 200, res.body);
      const made = { oauth_clients: [m.client.client_id, m.viaKey.client_id].sort(), service_account_keys: [m.saKey.id], service_keys: [m.svk.id] };
      assert.deepEqual(res.json().created_credentials, { ...made, revoked: true });

      for (const c of [m.client, m.viaKey]) assert.equal((await clientToken(c)).statusCode, 401, "the client is revoked");
      assertProblem(await getOrg(clientJwt), 401, "INVALID_TOKEN", { reason: "client_revoked" });
      assertProblem(await getOrg(m.saKey.secret), 401, "INVALID_API_KEY", { reason: "revoked" });
      assert.equal((await getOrg(serviceJwt)).statusCode, 401);
      // the owner's client of the same account is not the member's: it stays
      assert.equal((await clientToken(m.ownersClient)).statusCode, 200);

      const ev = await events();
      const of = (action: string, id: string) => ev.filter((e) => e.action === action && e.targetId === id);
      for (const c of made.oauth_clients)
        assert.deepEqual(
          of("oauth_client.revoked", c).map((e) => [e.actorId, (e.diff as Record<string, unknown>).revoked_reason]),
          [[owner.id, [null, "maker_removed"]]],
        );
      assert.deepEqual(
        of("key.revoked", m.saKey.id).map((e) => (e.diff as Record<string, unknown>).revoked_reason),
        [[null, "maker_removed"]],
      );
      assert.deepEqual(
        of("key.revoked", m.ownKey.id).map((e) => (e.diff as Record<string, unknown>).revoked_reason),
        [[null, "owner_removed"]],
      );
      assert.equal(of("service_key.revoked", m.svk.id).length, 1);
      const removed = of("member.removed", m.admin.id)[0];
      assert.deepEqual((removed.diff as Record<string, unknown>).created_credentials, { ...made, revoked: true });
      const rows = (await t.db.owner.execute(sql`select revoked_at is not null as revoked from service_keys where id = ${m.svk.id}`)) as unknown as {
        rows: { revoked: boolean }[];
      };
      assert.deepEqual(rows.rows, [{ revoked: true }]);
    });

    it("revoke_credentials needs service-accounts:manage and service-keys:manage (403 naming them), and removes nothing without them", async () => {
      const perms = [...BUILT_IN_ROLES.viewer.permissions, "members:remove"];
      const role = await ok("POST", "/roles", { name: name("remover"), permissions: perms }, owner.access_token);
      const remover = await signUp(t, "Remy Remover");
      await addMember(t, orgId, remover, role.name);
      const target = await signUp(t, "Tina Target");
      await addMember(t, orgId, target, "viewer");
      const p = assertProblem(await t.call("DELETE", url(`/members/${target.id}?revoke_credentials=true`), undefined, remover.access_token), 403, "FORBIDDEN", {
        permission: "service-accounts:manage",
        missing: ["service-accounts:manage", "service-keys:manage"],
        field: "revoke_credentials",
      });
      assert.match(p.detail, /service-accounts:manage, service-keys:manage/);
      assert.equal((await t.call("GET", url(`/members/${target.id}`), undefined, owner.access_token)).statusCode, 200, "still a member");
      assertProblem(await t.call("DELETE", url(`/members/${target.id}?revoke_credentials=maybe`), undefined, owner.access_token), 400, "VALIDATION_FAILED");
      const res = await t.call("DELETE", url(`/members/${target.id}`), undefined, remover.access_token);
      assert.equal(res.statusCode, 200, res.body);
      assert.deepEqual(res.json().created_credentials, { oauth_clients: [], service_account_keys: [], service_keys: [], revoked: false });
    });

    it("a removed member's org-bound session stops at once on every route, not when its access token expires", async () => {
      const dev = await signUp(t, "Dana Dev");
      await addMember(t, orgId, dev, "developer");
      const login = await t.call("POST", "/v1/auth/login", { email: dev.email, password: dev.password, org_id: orgId });
      assert.equal(login.statusCode, 200, login.body);
      const bound = login.json().access_token as string;
      assert.equal((await t.call("GET", "/v1/me", undefined, bound)).statusCode, 200);
      assert.equal((await t.call("DELETE", url(`/members/${dev.id}`), undefined, owner.access_token)).statusCode, 200);
      assertProblem(await t.call("GET", "/v1/me", undefined, bound), 401, "INVALID_TOKEN");
      // the sign-up session was opened for no org: it lives on
      assert.equal((await t.call("GET", "/v1/me", undefined, dev.access_token)).statusCode, 200);
    });

    it("leaving lists what the member made in member.left as well (the answer stays 204)", async () => {
      const m = await adminWhoMadeThings();
      const res = await t.call("POST", url("/leave"), undefined, m.admin.access_token);
      assert.equal(res.statusCode, 204, res.body);
      const left = (await events()).find((e) => e.action === "member.left" && e.targetId === m.admin.id);
      assert.ok(left);
      assert.deepEqual((left.diff as Record<string, unknown>).created_credentials, {
        oauth_clients: [m.client.client_id, m.viaKey.client_id].sort(),
        service_account_keys: [m.saKey.id],
        service_keys: [m.svk.id],
        revoked: false,
      });
      assert.equal((await clientToken(m.client)).statusCode, 200, "still working");
    });
  });

  // Regression (issue 9): a service account's membership (sa_…) or a service's (svk_…) has no membership row, so
  // changing a role or removing a member through one answered 404 "No organization that you belong to".
  describe(`service principals manage members (${backend})`, () => {
    let t: TestApp;
    const clock = createManualClock();
    let owner: TestUser;
    let orgId: string;
    let saToken: string;
    let serviceJwt: () => Promise<string>;
    before(async () => {
      t = await createTestApp({ backend, clock, worker: false });
      owner = await signUp(t, "Olivia Owner");
      orgId = await makeOrg(t, owner, "Robots Inc", uniqueSlug("rb"));
      const sa = (await t.call("POST", `/v1/orgs/${orgId}/service-accounts`, { name: "hr-sync", roles: ["admin"] }, owner.access_token)).json();
      const client = (await t.call("POST", `/v1/orgs/${orgId}/service-accounts/${sa.id}/clients`, { name: "c" }, owner.access_token)).json();
      const tok = await t.inject({
        method: "POST",
        url: "/v1/oauth/token",
        headers: FORM,
        payload: new URLSearchParams({ grant_type: "client_credentials", client_id: client.client_id, client_secret: client.client_secret }).toString(),
      });
      assert.equal(tok.statusCode, 200, tok.body);
      saToken = tok.json().access_token;
      const pair = await keyPair("ES256");
      const service = serviceName();
      const reg = await t.call("POST", `/v1/orgs/${orgId}/service-keys`, registration(service, pair, { roles: ["admin"] }), owner.access_token);
      assert.equal(reg.statusCode, 201, reg.body);
      serviceJwt = () => serviceToken({ t, clock }, service, pair);
    });
    after(() => t.close());

    for (const kind of ["a service account's token", "a registered service's token"]) {
      it(`${kind} changes a member's role and removes a member within its permissions, never an owner`, async () => {
        const token = kind.includes("account") ? saToken : await serviceJwt();
        const u = await signUp(t, "Member");
        await addMember(t, orgId, u, "developer");
        const changed = await t.call("PATCH", `/v1/orgs/${orgId}/members/${u.id}`, { role: "viewer" }, token);
        assert.equal(changed.statusCode, 200, changed.body);
        assert.equal(changed.json().role, "viewer");
        assertProblem(await t.call("PATCH", `/v1/orgs/${orgId}/members/${owner.id}`, { role: "viewer" }, token), 403, "OWNER_ONLY");
        assertProblem(await t.call("PATCH", `/v1/orgs/${orgId}/members/${u.id}`, { role: "owner" }, token), 403, "OWNER_ONLY");
        assertProblem(await t.call("DELETE", `/v1/orgs/${orgId}/members/${owner.id}`, undefined, token), 403, "OWNER_ONLY");
        const removed = await t.call("DELETE", `/v1/orgs/${orgId}/members/${u.id}`, undefined, token);
        assert.equal(removed.statusCode, 200, removed.body);
        assertProblem(await t.call("GET", `/v1/orgs/${orgId}/members/${u.id}`, undefined, owner.access_token), 404, "MEMBER_NOT_FOUND");
      });
    }
  });
}
