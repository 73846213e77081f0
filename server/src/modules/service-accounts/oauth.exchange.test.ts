/**
 * The token exchange's claims and its clients (issue 9): caller claims only under `ext`, never at the top level, and
 * no prototype-polluting names; a mislabelled subject token is told which subject_token_type to use; a client may
 * authenticate to the exchange (then named in `azp`), and a token exchanged from a client_credentials token keeps
 * that client's `client_id`, so revoking the client stops it too.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { decodeJwt } from "jose";
import { BACKENDS, createTestApp, problemOf, signUp, type TestApp, type TestUser } from "../../../test/harness.ts";

const FORM = { "content-type": "application/x-www-form-urlencoded" };
const EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS = "urn:ietf:params:oauth:token-type:access_token";
const API_KEY = "urn:plinth:api-key";

function assertOAuthError(res: LightMyRequestResponse, status: number, error: string, mentions?: RegExp): void {
  assert.equal(res.statusCode, status, res.body);
  assert.equal(res.json().error, error, res.body);
  if (mentions) assert.match(res.json().error_description, mentions);
}

for (const backend of BACKENDS) {
  describe(`token exchange: claims and clients (${backend})`, () => {
    let t: TestApp;
    let owner: TestUser;
    let orgId: string;
    let otherOrgId: string;
    before(async () => {
      t = await createTestApp({ backend, worker: false });
      owner = await signUp(t, "Owner");
      const mk = async () =>
        (await t.call("POST", "/v1/orgs", { name: "Exchange Co", slug: `oxc-${randomBytes(5).toString("hex")}` }, owner.access_token)).json().id as string;
      orgId = await mk();
      otherOrgId = await mk();
    });
    after(() => t.close());

    const form = (body: Record<string, string>, headers: Record<string, string> = {}) =>
      t.inject({ method: "POST", url: "/v1/oauth/token", payload: new URLSearchParams(body).toString(), headers: { ...FORM, ...headers } });
    const ownerExchange = (extra: Record<string, string> = {}) => ({
      grant_type: EXCHANGE,
      subject_token: owner.access_token,
      subject_token_type: ACCESS,
      org_id: orgId,
      ...extra,
    });
    async function makeClient(org = orgId) {
      const sa = await t.call(
        "POST",
        `/v1/orgs/${org}/service-accounts`,
        { name: `sa-${randomBytes(4).toString("hex")}`, roles: ["viewer"] },
        owner.access_token,
      );
      assert.equal(sa.statusCode, 201, sa.body);
      const res = await t.call("POST", `/v1/orgs/${org}/service-accounts/${sa.json().id}/clients`, { name: "c" }, owner.access_token);
      assert.equal(res.statusCode, 201, res.body);
      return { ...(res.json() as { client_id: string; client_secret: string }), serviceAccountId: sa.json().id as string };
    }
    const basic = (c: { client_id: string; client_secret: string }, secret = c.client_secret) => ({
      authorization: `Basic ${Buffer.from(`${c.client_id}:${secret}`).toString("base64")}`,
    });

    it("issue 9: caller claims land under ext only; none reaches the top level, whatever its name", async () => {
      const asked = {
        email: "ceo@victim.example",
        email_verified: true,
        amr: ["hwk"],
        acr: "phr",
        admin: true,
        groups: ["root"],
        tenant_id: "t-1",
        run: { id: "r-42", steps: [1, 2] },
      };
      const res = await form(ownerExchange({ claims: JSON.stringify(asked), audience: "https://billing.example" }));
      assert.equal(res.statusCode, 200, res.body);
      const claims = decodeJwt(res.json().access_token);
      assert.deepEqual(claims.ext, asked);
      for (const name of Object.keys(asked)) assert.equal(claims[name], undefined, `${name} is not a top-level claim`);
      // without claims, no ext at all
      const plain = await form(ownerExchange());
      assert.equal(decodeJwt(plain.json().access_token).ext, undefined);
    });

    it("issue 9: __proto__, constructor and prototype are refused as claim names at any depth (400 naming them)", async () => {
      for (const [claims, name] of [
        ['{"__proto__":{"admin":true}}', "__proto__"],
        ['{"constructor":{"prototype":{"admin":true}}}', "constructor"],
        ['{"run":{"prototype":1}}', "prototype"],
        ['{"run":[{"__proto__":{"admin":true}}]}', "__proto__"],
      ] as const) {
        assertOAuthError(await form(ownerExchange({ claims })), 400, "invalid_request", new RegExp(name));
      }
      // in a JSON body too
      assertOAuthError(await t.call("POST", "/v1/oauth/token", { ...ownerExchange(), claims: { constructor: "x" } }), 400, "invalid_request", /constructor/);
      const proto = await t.inject({
        method: "POST",
        url: "/v1/oauth/token",
        headers: { "content-type": "application/json" },
        payload: `{"grant_type":"${EXCHANGE}","subject_token":"${owner.access_token}","subject_token_type":"${ACCESS}","org_id":"${orgId}","claims":{"__proto__":{"admin":true}}}`,
      });
      assertOAuthError(proto, 400, "invalid_request", /__proto__/);
      // the size limits stay
      assertOAuthError(await form(ownerExchange({ claims: JSON.stringify({ blob: "x".repeat(2100) }) })), 400, "invalid_request", /2048/);
      assertOAuthError(
        await form(ownerExchange({ claims: JSON.stringify(Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`c${i}`, i]))) })),
        400,
        "invalid_request",
        /20/,
      );
    });

    it("issue 9: a mislabelled subject token is told which subject_token_type to use", async () => {
      const key = await t.call("POST", `/v1/orgs/${orgId}/keys`, { name: `k-${randomBytes(4).toString("hex")}`, roles: ["viewer"] }, owner.access_token);
      assert.equal(key.statusCode, 201, key.body);
      const asAccess = await form({ grant_type: EXCHANGE, subject_token: key.json().secret, subject_token_type: ACCESS });
      assertOAuthError(asAccess, 400, "invalid_request", new RegExp(`API key.*subject_token_type=${API_KEY}`));
      const asKey = await form({ grant_type: EXCHANGE, subject_token: owner.access_token, subject_token_type: API_KEY, org_id: orgId });
      assertOAuthError(asKey, 400, "invalid_request", new RegExp(`JWT.*subject_token_type=${ACCESS}`));
      // labelled right, both work
      assert.equal((await form({ grant_type: EXCHANGE, subject_token: key.json().secret, subject_token_type: API_KEY })).statusCode, 200);
      assert.equal((await form(ownerExchange())).statusCode, 200);
    });

    it("issue 9: a client authenticates to the exchange (Basic or body) and is named in azp, never in act; a wrong secret is invalid_client", async () => {
      const c = await makeClient();
      for (const [body, headers] of [
        [ownerExchange(), basic(c)],
        [ownerExchange({ client_id: c.client_id, client_secret: c.client_secret }), {}],
      ] as const) {
        const res = await form(body, headers);
        assert.equal(res.statusCode, 200, res.body);
        const claims = decodeJwt(res.json().access_token);
        assert.equal(claims.sub, owner.id, "the subject stays the subject");
        assert.equal(claims.azp, c.client_id);
        assert.equal(claims.act, undefined, "act would read as an impersonation");
        assert.equal(claims.client_id, undefined, "a user's token was issued to no client");
        assert.equal(
          (await t.call("GET", `/v1/orgs/${orgId}/members`, undefined, res.json().access_token)).statusCode,
          200,
          "the owner's authority, not the viewer client's",
        );
      }
      const wrong = `plcs_${"A".repeat(43)}`;
      assertOAuthError(await form(ownerExchange(), basic(c, wrong)), 401, "invalid_client");
      assertOAuthError(await form(ownerExchange({ client_id: c.client_id, client_secret: wrong })), 401, "invalid_client");
      // a client_id alone authenticates nothing (every Plinth client is confidential), nor does a secret alone
      assertOAuthError(await form(ownerExchange({ client_id: c.client_id })), 401, "invalid_client", /client_secret/);
      assertOAuthError(await form(ownerExchange({ client_id: "cli_" + "0".repeat(26) })), 401, "invalid_client");
      assertOAuthError(await form(ownerExchange({ client_secret: c.client_secret })), 401, "invalid_client");
      assertOAuthError(await form(ownerExchange({ client_id: c.client_id, client_secret: c.client_secret }), basic(c)), 400, "invalid_request", /once/);
      // a client exchanges for its own organization only
      const foreign = await makeClient(otherOrgId);
      assertOAuthError(await form(ownerExchange(), basic(foreign)), 400, "unauthorized_client");
      // a revoked client cannot exchange either
      assert.equal(
        (await t.call("DELETE", `/v1/orgs/${orgId}/service-accounts/${c.serviceAccountId}/clients/${c.client_id}`, undefined, owner.access_token)).statusCode,
        200,
      );
      assertOAuthError(await form(ownerExchange(), basic(c)), 401, "invalid_client");
    });

    it("issue 9: a token a client obtained by exchange (azp) stops when that client is revoked, and cannot be exchanged again", async () => {
      const c = await makeClient();
      const res = await form(ownerExchange({ scope: "org:read members:read" }), basic(c));
      assert.equal(res.statusCode, 200, res.body);
      const token = res.json().access_token as string;
      assert.equal(decodeJwt(token).azp, c.client_id);
      assert.equal((await t.call("GET", `/v1/orgs/${orgId}/members`, undefined, token)).statusCode, 200);
      // the owner's own session token is not the client's: it keeps working after the revocation
      assert.equal(
        (await t.call("DELETE", `/v1/orgs/${orgId}/service-accounts/${c.serviceAccountId}/clients/${c.client_id}`, undefined, owner.access_token)).statusCode,
        200,
      );
      const refused = await t.call("GET", `/v1/orgs/${orgId}/members`, undefined, token);
      assert.equal(refused.statusCode, 401, refused.body);
      assert.equal(problemOf(refused).code, "INVALID_TOKEN");
      assert.equal((problemOf(refused) as { reason?: string }).reason, "client_revoked");
      assert.equal((await t.call("GET", `/v1/orgs/${orgId}/members`, undefined, owner.access_token)).statusCode, 200);
      assertOAuthError(await form({ grant_type: EXCHANGE, subject_token: token, subject_token_type: ACCESS }), 400, "invalid_grant");
    });

    it("issue 9: a token exchanged from a client_credentials token keeps its client_id (the exchanging client goes in azp), so revoking the client stops it", async () => {
      const c = await makeClient();
      const other = await makeClient();
      const cc = await form({ grant_type: "client_credentials", scope: "org:read members:read" }, basic(c));
      assert.equal(cc.statusCode, 200, cc.body);
      assert.equal(decodeJwt(cc.json().access_token).client_id, c.client_id, "every client_credentials token names its client");

      const once = await form(
        { grant_type: EXCHANGE, subject_token: cc.json().access_token, subject_token_type: ACCESS, scope: "org:read members:read" },
        basic(other),
      );
      assert.equal(once.statusCode, 200, once.body);
      const onceClaims = decodeJwt(once.json().access_token);
      assert.equal(onceClaims.sub, c.serviceAccountId);
      assert.equal(onceClaims.client_id, c.client_id);
      assert.equal(onceClaims.azp, other.client_id);
      // and through a second exchange, with no client
      const twice = await form({ grant_type: EXCHANGE, subject_token: once.json().access_token, subject_token_type: ACCESS, scope: "org:read" });
      assert.equal(twice.statusCode, 200, twice.body);
      assert.equal(decodeJwt(twice.json().access_token).client_id, c.client_id);
      assert.equal(decodeJwt(twice.json().access_token).azp, undefined);
      for (const token of [cc, once, twice].map((r) => r.json().access_token as string)) {
        assert.equal((await t.call("GET", `/v1/orgs/${orgId}`, undefined, token)).statusCode, 200);
      }

      assert.equal(
        (await t.call("DELETE", `/v1/orgs/${orgId}/service-accounts/${c.serviceAccountId}/clients/${c.client_id}`, undefined, owner.access_token)).statusCode,
        200,
      );
      for (const token of [cc, once, twice].map((r) => r.json().access_token as string)) {
        const res = await t.call("GET", `/v1/orgs/${orgId}`, undefined, token);
        assert.equal(res.statusCode, 401, res.body);
        assert.equal(problemOf(res).code, "INVALID_TOKEN");
      }
      assertOAuthError(await form({ grant_type: EXCHANGE, subject_token: twice.json().access_token, subject_token_type: ACCESS }), 400, "invalid_grant");
    });
  });
}
