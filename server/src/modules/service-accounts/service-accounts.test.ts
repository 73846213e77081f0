import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { sql } from "drizzle-orm";
import type { LightMyRequestResponse } from "fastify";
import { createLocalJWKSet, decodeJwt, jwtVerify, type JSONWebKeySet } from "jose";
import { ALL_PERMISSIONS, BUILT_IN_ROLES } from "../access/permissions.ts";
import {
  BACKENDS,
  addMember,
  assertProblem,
  createTestApp,
  makeOrg,
  problemOf,
  signUp,
  uniqueSlug,
  type TestApp,
  type TestUser,
} from "../../../test/harness.ts";

const FORM = { "content-type": "application/x-www-form-urlencoded" };
const EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS = "urn:ietf:params:oauth:token-type:access_token";
const API_KEY = "urn:plinth:api-key";

function assertOAuthError(res: LightMyRequestResponse, status: number, error: string, mentions?: RegExp): void {
  assert.equal(res.statusCode, status, res.body);
  const body = res.json();
  assert.equal(body.error, error, res.body);
  assert.equal(typeof body.error_description, "string");
  assert.match(String(res.headers["content-type"]), /^application\/json/);
  assert.equal(res.headers["cache-control"], "no-store");
  if (mentions) assert.match(body.error_description, mentions);
}

function assertFieldError(res: LightMyRequestResponse, field: string): void {
  assert.equal(res.statusCode, 400, res.body);
  const p = problemOf(res);
  const fields = [...(p.errors ?? []).map((e) => e.field), p.field];
  assert.ok(fields.includes(field), `expected an error naming ${field}: ${res.body}`);
}

for (const backend of BACKENDS) {
  describe(`service accounts and the token endpoint (${backend})`, () => {
    let t: TestApp;
    let owner: TestUser;
    let admin: TestUser;
    let dev: TestUser;
    let viewer: TestUser;
    let orgId: string;
    let otherOrgId: string;
    before(async () => {
      t = await createTestApp({ backend, worker: false });
      owner = await signUp(t, "Olivia Owner");
      admin = await signUp(t, "Adam Admin");
      dev = await signUp(t, "Dana Dev");
      viewer = await signUp(t, "Vic Viewer");
      orgId = await makeOrg(t, owner, "Machines Inc", uniqueSlug("sa"));
      otherOrgId = await makeOrg(t, owner, "Other Inc", uniqueSlug("sa"));
      for (const [u, role] of [
        [admin, "admin"],
        [dev, "developer"],
        [viewer, "viewer"],
      ] as const)
        await addMember(t, orgId, u, role);
    });
    after(() => t.close());

    const base = (path = "") => `/v1/orgs/${orgId}/service-accounts${path}`;
    const uniqueName = (tag = "sa") => `${tag}-${randomBytes(4).toString("hex")}`;
    const events = async () => await t.deps.audit.list(orgId, {}, 1000);
    const rows = async () =>
      ((await t.db.owner.execute(sql`select * from service_accounts where org_id = ${orgId} order by id`)) as unknown as { rows: unknown[] }).rows;
    const token = (body: Record<string, unknown>, headers: Record<string, string> = {}) =>
      t.inject({
        method: "POST",
        url: "/v1/oauth/token",
        payload: new URLSearchParams(body as Record<string, string>).toString(),
        headers: { ...FORM, ...headers },
      });
    const tokenJson = (body: Record<string, unknown>) => t.call("POST", "/v1/oauth/token", body);

    async function makeAccount(roles: string[] = ["viewer"], by = owner) {
      const res = await t.call("POST", base(), { name: uniqueName(), description: "CI runner", roles }, by.access_token);
      assert.equal(res.statusCode, 201, res.body);
      return res.json() as { id: string; name: string; roles: string[]; state: string };
    }
    async function makeClient(saId: string) {
      const res = await t.call("POST", base(`/${saId}/clients`), { name: "deploy" }, owner.access_token);
      assert.equal(res.statusCode, 201, res.body);
      return res.json() as { client_id: string; client_secret: string };
    }
    async function clientToken(c: { client_id: string; client_secret: string }, extra: Record<string, unknown> = {}) {
      const res = await token({ grant_type: "client_credentials", client_id: c.client_id, client_secret: c.client_secret, ...extra });
      assert.equal(res.statusCode, 200, res.body);
      return res.json() as { access_token: string; token_type: string; expires_in: number; scope: string; issued_token_type?: string };
    }

    it("creates, lists, gets, updates, disables, enables and deletes a service account, each audited", async () => {
      const sa = await makeAccount(["viewer"]);
      assert.match(sa.id, /^sa_[0-9a-z]{26}$/);
      assert.equal(sa.state, "active");
      const listed = await t.call("GET", base(), undefined, viewer.access_token);
      assert.equal(listed.statusCode, 200, "members:read lists them");
      assert.ok(listed.json().items.some((x: { id: string }) => x.id === sa.id));
      assert.equal((await t.call("GET", base(`/${sa.id}`), undefined, viewer.access_token)).json().name, sa.name);

      const renamed = uniqueName("renamed");
      const up = await t.call("PATCH", base(`/${sa.id}`), { name: renamed, roles: ["developer"] }, owner.access_token);
      assert.equal(up.statusCode, 200, up.body);
      assert.deepEqual(up.json().roles, ["developer"]);
      assert.equal((await t.call("POST", base(`/${sa.id}/$disable`), undefined, owner.access_token)).json().state, "disabled");
      assert.equal((await t.call("POST", base(`/${sa.id}/$enable`), undefined, owner.access_token)).json().state, "active");
      assert.equal((await t.call("DELETE", base(`/${sa.id}`), undefined, owner.access_token)).statusCode, 204);
      assertProblem(await t.call("GET", base(`/${sa.id}`), undefined, owner.access_token), 404, "SERVICE_ACCOUNT_NOT_FOUND");

      const ev = (await events()).filter((e) => e.targetId === sa.id);
      assert.deepEqual(ev.map((e) => e.action).sort(), [
        "service_account.created",
        "service_account.deleted",
        "service_account.disabled",
        "service_account.enabled",
        "service_account.updated",
      ]);
      const created = ev.find((e) => e.action === "service_account.created");
      assert.deepEqual((created!.diff as Record<string, unknown>).roles, [null, ["viewer"]]);
      assert.equal(created?.actorId, owner.id);
      const updated = ev.find((e) => e.action === "service_account.updated");
      assert.deepEqual(updated?.diff, { name: [sa.name, renamed], roles: [["viewer"], ["developer"]] });
    });

    it("refuses bad input with 400 naming the field, changing nothing", async () => {
      const before = await rows();
      const audit = (await events()).length;
      assertFieldError(await t.call("POST", base(), { roles: ["viewer"] }, owner.access_token), "name");
      assertFieldError(await t.call("POST", base(), { name: " bad name", roles: ["viewer"] }, owner.access_token), "name");
      assertFieldError(await t.call("POST", base(), { name: uniqueName(), roles: [] }, owner.access_token), "roles");
      assertFieldError(await t.call("POST", base(), { name: uniqueName(), roles: ["no-such-role"] }, owner.access_token), "roles.0");
      assertFieldError(await t.call("POST", base(), { name: uniqueName(), roles: ["viewer"], is_admin: true }, owner.access_token), "is_admin");
      const sa = await makeAccount();
      const afterCreate = await rows();
      assertFieldError(await t.call("PATCH", base(`/${sa.id}`), {}, owner.access_token), "body");
      assertFieldError(await t.call("PATCH", base(`/${sa.id}`), { roles: ["nope"] }, owner.access_token), "roles.0");
      assertFieldError(await t.call("GET", base("/sa_nope"), undefined, owner.access_token), "serviceAccountId");
      assertProblem(await t.call("POST", base(), { name: sa.name, roles: ["viewer"] }, owner.access_token), 409, "SERVICE_ACCOUNT_NAME_TAKEN", {
        field: "name",
      });
      assert.deepEqual(await rows(), afterCreate, "nothing changed");
      assert.equal(afterCreate.length, before.length + 1);
      assert.equal((await events()).length, audit + 1, "only the one creation was audited");
    });

    it("gives an account only roles its creator could grant (403 naming the permission), and needs service-accounts:manage", async () => {
      assertProblem(await t.call("POST", base(), { name: uniqueName(), roles: ["viewer"] }, dev.access_token), 403, "FORBIDDEN", {
        permission: "service-accounts:manage",
      });
      assertProblem(await t.call("POST", base(), { name: uniqueName(), roles: ["owner"] }, admin.access_token), 403, "FORBIDDEN", { permission: "org:delete" });
      const sa = await makeAccount(["viewer"], admin);
      assertProblem(await t.call("PATCH", base(`/${sa.id}`), { roles: ["owner"] }, admin.access_token), 403, "FORBIDDEN", { permission: "org:delete" });
      const strong = await makeAccount(["owner"]);
      assertProblem(await t.call("POST", base(`/${strong.id}/clients`), { name: "x" }, admin.access_token), 403, "FORBIDDEN", { permission: "org:delete" });
      assert.deepEqual((await t.call("GET", base(`/${sa.id}`), undefined, owner.access_token)).json().roles, ["viewer"], "unchanged");
    });

    it("client credentials: a JWT for the account that verifies offline against the JWKS; the secret is shown once", async () => {
      const sa = await makeAccount(["viewer"]);
      const c = await makeClient(sa.id);
      assert.match(c.client_id, /^cli_[0-9a-z]{26}$/);
      assert.match(c.client_secret, /^plcs_[A-Za-z0-9_-]{43}$/);
      const listed = await t.call("GET", base(`/${sa.id}/clients`), undefined, owner.access_token);
      assert.equal(listed.statusCode, 200);
      assert.ok(!listed.body.includes(c.client_secret));
      assert.ok(!JSON.stringify(await events()).includes(c.client_secret));
      assert.ok((await events()).some((e) => e.action === "oauth_client.created" && e.targetId === c.client_id));

      const res = await token({ grant_type: "client_credentials", client_id: c.client_id, client_secret: c.client_secret });
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(res.headers["cache-control"], "no-store");
      const out = res.json();
      assert.equal(out.token_type, "Bearer");
      assert.equal(out.expires_in, 300);
      const jwks = (await t.inject({ method: "GET", url: "/.well-known/jwks.json" })).json() as JSONWebKeySet;
      const { payload, protectedHeader } = await jwtVerify(out.access_token, createLocalJWKSet(jwks), {
        issuer: t.deps.config.jwt.issuer,
        audience: t.deps.config.jwt.audience,
      });
      assert.equal(protectedHeader.typ, "at+jwt");
      assert.equal(payload.sub, sa.id);
      assert.equal(payload.org, orgId);
      assert.equal(payload.client_id, c.client_id);
      // the viewer role's permissions, in catalog order
      assert.equal(payload.scope, ALL_PERMISSIONS.filter((p) => (BUILT_IN_ROLES.viewer.permissions as readonly string[]).includes(p)).join(" "));
      assert.match(String(payload.scope), /^org:read members:read teams:read /);
      assert.equal((payload.exp ?? 0) - (payload.iat ?? 0), 300);

      // HTTP Basic and a JSON body work too
      const basic = Buffer.from(`${c.client_id}:${c.client_secret}`).toString("base64");
      assert.equal((await token({ grant_type: "client_credentials" }, { authorization: `Basic ${basic}` })).statusCode, 200);
      const json = await tokenJson({
        grant_type: "client_credentials",
        client_id: c.client_id,
        client_secret: c.client_secret,
        scope: "org:read",
        expires_in: 60,
      });
      assert.equal(json.statusCode, 200, json.body);
      assert.equal(json.json().scope, "org:read");
      assert.equal(json.json().expires_in, 60);
      const used = (await t.call("GET", base(`/${sa.id}/clients`), undefined, owner.access_token)).json().items[0];
      assert.ok(used.last_used_at);
    });

    it("a service account's token acts in its org within its roles: 403 outside them, 404 in another org, 401 on account routes", async () => {
      const sa = await makeAccount(["viewer"]);
      const { access_token } = await clientToken(await makeClient(sa.id));
      assert.equal((await t.call("GET", `/v1/orgs/${orgId}`, undefined, access_token)).statusCode, 200);
      assertProblem(await t.call("POST", `/v1/orgs/${orgId}/teams`, { name: "Nope" }, access_token), 403, "FORBIDDEN", { permission: "teams:create" });
      assertProblem(await t.call("GET", `/v1/orgs/${otherOrgId}`, undefined, access_token), 404, "NOT_FOUND");
      assertProblem(await t.call("GET", "/v1/me", undefined, access_token), 401, "UNAUTHENTICATED");
      // a narrower token stays narrower on Plinth's routes
      const narrow = await clientToken(await makeClient(sa.id), { scope: "teams:read" });
      assertProblem(await t.call("GET", `/v1/orgs/${orgId}`, undefined, narrow.access_token), 403, "FORBIDDEN", { permission: "org:read" });
      assert.equal((await t.call("GET", `/v1/orgs/${orgId}/teams`, undefined, narrow.access_token)).statusCode, 200);
      // acting as the account is audited as the account
      const admin2 = await makeAccount(["admin"]);
      const adminToken = await clientToken(await makeClient(admin2.id));
      const made = await t.call("POST", base(), { name: uniqueName("made-by-sa"), roles: ["viewer"] }, adminToken.access_token);
      assert.equal(made.statusCode, 201, made.body);
      assert.equal(made.json().created_by, admin2.id);
      const ev = (await events()).find((e) => e.action === "service_account.created" && e.targetId === made.json().id);
      assert.equal(ev?.actorType, "service_account");
      assert.equal(ev?.actorId, admin2.id);
      // an account makes a team without becoming its maintainer (maintainers are people), and owns the API keys it makes
      const team = await t.call("POST", `/v1/orgs/${orgId}/teams`, { name: uniqueName("sa-team") }, adminToken.access_token);
      assert.equal(team.statusCode, 201, team.body);
      const teamMembers = await t.call("GET", `/v1/orgs/${orgId}/teams/${team.json().id}/members`, undefined, owner.access_token);
      assert.deepEqual(teamMembers.json().items, []);
      const own = await t.call("POST", `/v1/orgs/${orgId}/keys`, { name: "sa-key", roles: ["viewer"] }, adminToken.access_token);
      assert.equal(own.statusCode, 201, own.body);
      assert.deepEqual(own.json().owner, { type: "service_account", id: admin2.id });
      assert.equal(own.json().created_by, admin2.id);
    });

    it("refuses a wrong secret, an unknown or revoked client with 401 invalid_client", async () => {
      const sa = await makeAccount();
      const c = await makeClient(sa.id);
      const wrong = "plcs_" + "A".repeat(43);
      assertOAuthError(await token({ grant_type: "client_credentials", client_id: c.client_id, client_secret: wrong }), 401, "invalid_client");
      assertOAuthError(
        await token({ grant_type: "client_credentials", client_id: "cli_" + "0".repeat(26), client_secret: c.client_secret }),
        401,
        "invalid_client",
      );
      assertOAuthError(await token({ grant_type: "client_credentials", client_id: c.client_id }), 401, "invalid_client");
      const basic = Buffer.from(`${c.client_id}:${wrong}`).toString("base64");
      const viaBasic = await token({ grant_type: "client_credentials" }, { authorization: `Basic ${basic}` });
      assertOAuthError(viaBasic, 401, "invalid_client");
      assert.match(String(viaBasic.headers["www-authenticate"]), /^Basic /);
      const revoked = await t.call("DELETE", base(`/${sa.id}/clients/${c.client_id}`), undefined, owner.access_token);
      assert.equal(revoked.statusCode, 200, revoked.body);
      assert.equal(revoked.json().state, "revoked");
      assert.ok((await events()).some((e) => e.action === "oauth_client.revoked" && e.targetId === c.client_id));
      assertOAuthError(await token({ grant_type: "client_credentials", client_id: c.client_id, client_secret: c.client_secret }), 401, "invalid_client");
    });

    it("disabling an account stops its tokens and clients at once; enabling restores them", async () => {
      const sa = await makeAccount(["viewer"]);
      const c = await makeClient(sa.id);
      const { access_token } = await clientToken(c);
      assert.equal((await t.call("GET", `/v1/orgs/${orgId}`, undefined, access_token)).statusCode, 200);
      assert.equal((await t.call("POST", base(`/${sa.id}/$disable`), undefined, owner.access_token)).statusCode, 200);
      assertProblem(await t.call("GET", `/v1/orgs/${orgId}`, undefined, access_token), 404, "NOT_FOUND");
      assertOAuthError(await token({ grant_type: "client_credentials", client_id: c.client_id, client_secret: c.client_secret }), 401, "invalid_client");
      assertOAuthError(await token({ grant_type: EXCHANGE, subject_token: access_token, subject_token_type: ACCESS }), 400, "invalid_grant");
      assertProblem(await t.call("POST", base(`/${sa.id}/clients`), { name: "x" }, owner.access_token), 409, "SERVICE_ACCOUNT_DISABLED");
      assert.equal((await t.call("POST", base(`/${sa.id}/$enable`), undefined, owner.access_token)).statusCode, 200);
      assert.equal((await t.call("GET", `/v1/orgs/${orgId}`, undefined, access_token)).statusCode, 200);
      await clientToken(c);
    });

    it("token exchange from an API key: narrowed scope works on org routes within it and 403 outside; widening is invalid_scope", async () => {
      const key = await t.call("POST", `/v1/orgs/${orgId}/keys`, { name: uniqueName("key"), roles: ["viewer"] }, dev.access_token);
      assert.equal(key.statusCode, 201, key.body);
      const secret = key.json().secret as string;
      const res = await token({ grant_type: EXCHANGE, subject_token: secret, subject_token_type: API_KEY, scope: "org:read teams:read" });
      assert.equal(res.statusCode, 200, res.body);
      const out = res.json();
      assert.equal(out.issued_token_type, ACCESS);
      assert.equal(out.scope, "org:read teams:read");
      const claims = decodeJwt(out.access_token);
      assert.equal(claims.sub, dev.id);
      assert.equal(claims.org, orgId);
      assert.equal((await t.call("GET", `/v1/orgs/${orgId}`, undefined, out.access_token)).statusCode, 200);
      assert.equal((await t.call("GET", `/v1/orgs/${orgId}/teams`, undefined, out.access_token)).statusCode, 200);
      assertProblem(await t.call("GET", `/v1/orgs/${orgId}/members`, undefined, out.access_token), 403, "FORBIDDEN", { permission: "members:read" });
      assertProblem(await t.call("GET", `/v1/orgs/${otherOrgId}`, undefined, out.access_token), 404, "NOT_FOUND");
      assertProblem(await t.call("GET", "/v1/me", undefined, out.access_token), 401, "UNAUTHENTICATED");

      assertOAuthError(
        await token({ grant_type: EXCHANGE, subject_token: secret, subject_token_type: API_KEY, scope: "org:read teams:create" }),
        400,
        "invalid_scope",
        /teams:create/,
      );
      // the developer holds keys:create, the key (viewer) does not: still too wide
      assertOAuthError(
        await token({ grant_type: EXCHANGE, subject_token: secret, subject_token_type: API_KEY, scope: "keys:create" }),
        400,
        "invalid_scope",
        /keys:create/,
      );
      assertOAuthError(
        await token({ grant_type: EXCHANGE, subject_token: secret, subject_token_type: API_KEY, scope: "not:a-permission" }),
        400,
        "invalid_scope",
      );
      // re-exchanging the narrowed token cannot widen it back
      assertOAuthError(
        await token({ grant_type: EXCHANGE, subject_token: out.access_token, subject_token_type: ACCESS, scope: "members:read" }),
        400,
        "invalid_scope",
        /members:read/,
      );
      assertOAuthError(await token({ grant_type: EXCHANGE, subject_token: "plk_live_nope", subject_token_type: API_KEY }), 400, "invalid_grant");
    });

    it("token exchange from an access token: one org's permissions, audience, extra claims, lifetime; reserved claims refused", async () => {
      const jwks = createLocalJWKSet((await t.inject({ method: "GET", url: "/.well-known/jwks.json" })).json() as JSONWebKeySet);
      assertOAuthError(await token({ grant_type: EXCHANGE, subject_token: viewer.access_token, subject_token_type: ACCESS }), 400, "invalid_request", /org_id/);
      const res = await tokenJson({
        grant_type: EXCHANGE,
        subject_token: viewer.access_token,
        subject_token_type: ACCESS,
        org_id: orgId,
        scope: "org:read",
        expires_in: 120,
        claims: { run_id: "r-42" },
      });
      assert.equal(res.statusCode, 200, res.body);
      const { payload } = await jwtVerify(res.json().access_token, jwks, { issuer: t.deps.config.jwt.issuer, audience: t.deps.config.jwt.audience });
      assert.equal(payload.sub, viewer.id);
      assert.equal(payload.scope, "org:read");
      assert.deepEqual(payload.ext, { run_id: "r-42" }, "caller claims sit under ext");
      assert.equal(payload.run_id, undefined);
      assert.equal((payload.exp ?? 0) - (payload.iat ?? 0), 120);
      assert.equal((await t.call("GET", `/v1/orgs/${orgId}`, undefined, res.json().access_token)).statusCode, 200);
      assertProblem(await t.call("GET", `/v1/orgs/${orgId}/teams`, undefined, res.json().access_token), 403, "FORBIDDEN", { permission: "teams:read" });
      assertOAuthError(
        await token({ grant_type: EXCHANGE, subject_token: viewer.access_token, subject_token_type: ACCESS, org_id: orgId, scope: "teams:create" }),
        400,
        "invalid_scope",
      );
      assertOAuthError(
        await token({ grant_type: EXCHANGE, subject_token: viewer.access_token, subject_token_type: ACCESS, org_id: otherOrgId }),
        400,
        "invalid_grant",
      );

      // a token for another service verifies offline with its aud, and Plinth refuses it
      const svc = await token({
        grant_type: EXCHANGE,
        subject_token: viewer.access_token,
        subject_token_type: ACCESS,
        org_id: orgId,
        audience: "https://billing.example",
      });
      assert.equal(svc.statusCode, 200, svc.body);
      const verified = await jwtVerify(svc.json().access_token, jwks, { issuer: t.deps.config.jwt.issuer, audience: "https://billing.example" });
      assert.equal(verified.payload.org, orgId);
      assertProblem(await t.call("GET", `/v1/orgs/${orgId}`, undefined, svc.json().access_token), 401, "INVALID_TOKEN");

      for (const name of ["sub", "iss", "aud", "exp", "nbf", "iat", "jti", "scope", "permissions", "org", "act", "cnf"]) {
        const r = await tokenJson({
          grant_type: EXCHANGE,
          subject_token: viewer.access_token,
          subject_token_type: ACCESS,
          org_id: orgId,
          claims: { [name]: "x" },
        });
        assertOAuthError(r, 400, "invalid_request", new RegExp(name));
      }
      // in a form, claims is JSON text
      assertOAuthError(
        await token({ grant_type: EXCHANGE, subject_token: viewer.access_token, subject_token_type: ACCESS, org_id: orgId, claims: '{"act":{"sub":"x"}}' }),
        400,
        "invalid_request",
        /act/,
      );
      assertOAuthError(
        await token({ grant_type: EXCHANGE, subject_token: viewer.access_token, subject_token_type: ACCESS, org_id: orgId, expires_in: "3601" }),
        400,
        "invalid_request",
        /expires_in/,
      );
      assertOAuthError(await token({ grant_type: EXCHANGE, subject_token: viewer.access_token, subject_token_type: "urn:other" }), 400, "invalid_request");
      assertOAuthError(
        await token({ grant_type: EXCHANGE, subject_token: "eyJ.not.a-token", subject_token_type: ACCESS, org_id: orgId }),
        400,
        "invalid_grant",
      );
    });

    it("answers malformed token requests in RFC 6749 format", async () => {
      assertOAuthError(await token({ grant_type: "password", username: "a", password: "b" }), 400, "invalid_request", /username|password/);
      assertOAuthError(await token({ grant_type: "password" }), 400, "unsupported_grant_type");
      assertOAuthError(await token({}), 400, "invalid_request", /grant_type/);
      assertOAuthError(
        await t.inject({ method: "POST", url: "/v1/oauth/token", payload: "grant_type=client_credentials&grant_type=x", headers: FORM }),
        400,
        "invalid_request",
      );
      assertOAuthError(
        await t.inject({ method: "POST", url: "/v1/oauth/token", payload: "{oops", headers: { "content-type": "application/json" } }),
        400,
        "invalid_request",
      );
      assertOAuthError(
        await t.inject({ method: "POST", url: "/v1/oauth/token", payload: "x", headers: { "content-type": "text/plain" } }),
        400,
        "invalid_request",
      );
    });

    it("publishes issuer metadata", async () => {
      const res = await t.inject({ method: "GET", url: "/.well-known/openid-configuration" });
      assert.equal(res.statusCode, 200);
      const doc = res.json();
      assert.equal(doc.issuer, t.deps.config.jwt.issuer);
      assert.equal(doc.jwks_uri, `${t.deps.config.publicUrl}/.well-known/jwks.json`);
      assert.equal(doc.token_endpoint, `${t.deps.config.publicUrl}/v1/oauth/token`);
      assert.deepEqual(doc.grant_types_supported, ["client_credentials", EXCHANGE]);
      assert.deepEqual(doc.token_endpoint_auth_methods_supported, ["client_secret_basic", "client_secret_post"]);
    });
  });
}
