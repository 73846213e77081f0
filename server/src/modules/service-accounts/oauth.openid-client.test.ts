/**
 * The token endpoint driven by `openid-client` (v6, the most used Node OAuth client) as a real client over a real
 * port on 127.0.0.1: discovery, client_credentials with client_secret_basic and client_secret_post, a wrong secret,
 * and the token exchange with the client authenticating, as standard clients always do (issue 9: every such
 * exchange used to be refused with "The token exchange takes no client credentials").
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createServer, type AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { decodeJwt } from "jose";
import * as oidc from "openid-client";
import { BACKENDS, createTestApp, signUp, type TestApp, type TestUser } from "../../../test/harness.ts";

const EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS = "urn:ietf:params:oauth:token-type:access_token";
const API_KEY = "urn:plinth:api-key";

/** A port free on 127.0.0.1 now: the issuer URL must name it before the app is built. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
      .once("error", reject)
      .listen(0, "127.0.0.1", () => {
        const { port } = s.address() as AddressInfo;
        s.close(() => resolve(port));
      });
  });
}

for (const backend of BACKENDS) {
  describe(`the token endpoint with openid-client as the client (${backend})`, () => {
    let t: TestApp;
    let issuer: URL;
    let owner: TestUser;
    let orgId: string;
    /** The client's service account, a viewer; the exchanges' subjects are the owner and their keys. */
    let saId: string;
    let client: { client_id: string; client_secret: string };
    before(async () => {
      const port = await freePort();
      issuer = new URL(`http://127.0.0.1:${port}`);
      t = await createTestApp({ backend, worker: false, env: { PLINTH_PUBLIC_URL: issuer.origin } });
      await t.app.listen({ port, host: "127.0.0.1" });
      owner = await signUp(t, "Owner");
      orgId = (await t.call("POST", "/v1/orgs", { name: "OIDC Co", slug: `oidc-${randomBytes(5).toString("hex")}` }, owner.access_token)).json().id;
      saId = (await t.call("POST", `/v1/orgs/${orgId}/service-accounts`, { name: "gateway", roles: ["viewer"] }, owner.access_token)).json().id;
      const res = await t.call("POST", `/v1/orgs/${orgId}/service-accounts/${saId}/clients`, { name: "gateway" }, owner.access_token);
      assert.equal(res.statusCode, 201, res.body);
      client = res.json();
    });
    after(() => t.close());

    /** openid-client refuses http:// issuers unless told otherwise; a real deployment is https. */
    const discover = (auth: oidc.ClientAuth, clientId = client.client_id) =>
      oidc.discovery(issuer, clientId, undefined, auth, { execute: [oidc.allowInsecureRequests] });
    const basic = (secret = client.client_secret) => discover(oidc.ClientSecretBasic(secret));
    const post = (secret = client.client_secret) => discover(oidc.ClientSecretPost(secret));
    const exchange = (config: oidc.Configuration, params: Record<string, string>) => oidc.genericGrantRequest(config, EXCHANGE, params);
    async function ownerKey(): Promise<{ id: string; secret: string }> {
      const res = await t.call("POST", `/v1/orgs/${orgId}/keys`, { name: `k-${randomBytes(4).toString("hex")}`, roles: ["developer"] }, owner.access_token);
      assert.equal(res.statusCode, 201, res.body);
      return res.json();
    }
    /** The OAuth error a request failed with, whichever way openid-client reports it. */
    async function oauthErrorOf(p: Promise<unknown>): Promise<{ status: number; error: string }> {
      try {
        await p;
      } catch (e) {
        if (e instanceof oidc.ResponseBodyError) return { status: e.status, error: e.error };
        // a 401 with WWW-Authenticate (client_secret_basic) surfaces as the challenge; the body still says why
        if (e instanceof oidc.WWWAuthenticateChallengeError) return { status: e.status, error: ((await e.response.json()) as { error: string }).error };
        throw e;
      }
      assert.fail("the request succeeded");
    }

    it("discovers the issuer's metadata, which advertises what the endpoint does", async () => {
      const m = (await basic()).serverMetadata();
      assert.equal(m.issuer, issuer.origin);
      assert.equal(m.token_endpoint, `${issuer.origin}/v1/oauth/token`);
      assert.equal(m.jwks_uri, `${issuer.origin}/.well-known/jwks.json`);
      assert.deepEqual(m.grant_types_supported, ["client_credentials", EXCHANGE]);
      // both methods work for both grants (the tests below); a bare client_id ("none") does not
      assert.deepEqual(m.token_endpoint_auth_methods_supported, ["client_secret_basic", "client_secret_post"]);
      await assert.rejects(oidc.discovery(issuer, client.client_id, client.client_secret), "http:// is refused unless allowed");
    });

    it("client_credentials with client_secret_basic and client_secret_post", async () => {
      for (const config of [await basic(), await post()]) {
        const tokens = await oidc.clientCredentialsGrant(config, { scope: "org:read" });
        assert.equal(tokens.token_type, "bearer");
        assert.equal(tokens.scope, "org:read");
        assert.equal(tokens.expires_in, 300); // as sent (expiresIn() counts down from when it arrived)
        const claims = decodeJwt(tokens.access_token);
        assert.equal(claims.sub, saId);
        assert.equal(claims.client_id, client.client_id);
        const res = await fetch(`${issuer.origin}/v1/orgs/${orgId}`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
        assert.equal(res.status, 200);
      }
    });

    it("a wrong secret is invalid_client (401), by either method and for either grant", async () => {
      const wrong = `plcs_${"A".repeat(43)}`;
      const key = await ownerKey();
      for (const config of [await basic(wrong), await post(wrong)]) {
        assert.deepEqual(await oauthErrorOf(oidc.clientCredentialsGrant(config)), { status: 401, error: "invalid_client" });
        assert.deepEqual(await oauthErrorOf(exchange(config, { subject_token: key.secret, subject_token_type: API_KEY })), {
          status: 401,
          error: "invalid_client",
        });
      }
      // a client_id alone ("none") authenticates nothing: every Plinth client is confidential
      const none = await discover(oidc.None());
      assert.deepEqual(await oauthErrorOf(exchange(none, { subject_token: key.secret, subject_token_type: API_KEY })), {
        status: 401,
        error: "invalid_client",
      });
    });

    it("issue 9: the token exchange with the client authenticating: an API key subject, by either method", async () => {
      const key = await ownerKey();
      for (const config of [await basic(), await post()]) {
        const out = await exchange(config, {
          subject_token: key.secret,
          subject_token_type: API_KEY,
          scope: "org:read teams:read",
          audience: "https://billing.example",
        });
        assert.equal(out.issued_token_type, ACCESS);
        assert.equal(out.scope, "org:read teams:read");
        const claims = decodeJwt(out.access_token);
        assert.equal(claims.sub, owner.id, "the key's owner, not the client's account");
        assert.equal(claims.key_id, key.id);
        assert.equal(claims.azp, client.client_id);
        assert.equal(claims.aud, "https://billing.example");
        assert.equal(claims.act, undefined);
      }
      // the client adds no authority: still the key's, narrowed
      assert.equal(
        (await oauthErrorOf(exchange(await basic(), { subject_token: key.secret, subject_token_type: API_KEY, scope: "org:delete" }))).error,
        "invalid_scope",
      );
    });

    it("issue 9: the token exchange with the client authenticating: an access-token subject (a user's, a service account's)", async () => {
      const config = await basic();
      const user = await exchange(config, {
        subject_token: owner.access_token,
        subject_token_type: ACCESS,
        org_id: orgId,
        scope: "members:read",
        claims: JSON.stringify({ run: "r-1" }),
      });
      const userClaims = decodeJwt(user.access_token);
      assert.equal(userClaims.sub, owner.id);
      assert.equal(userClaims.azp, client.client_id);
      assert.deepEqual(userClaims.ext, { run: "r-1" });
      const members = await fetch(`${issuer.origin}/v1/orgs/${orgId}/members`, { headers: { authorization: `Bearer ${user.access_token}` } });
      assert.equal(members.status, 200);

      // the client's own client_credentials token, narrowed further: it keeps its client_id
      const cc = await oidc.clientCredentialsGrant(config);
      const narrowed = await exchange(await post(), { subject_token: cc.access_token, subject_token_type: ACCESS, scope: "org:read" });
      const claims = decodeJwt(narrowed.access_token);
      assert.equal(claims.sub, saId);
      assert.equal(claims.client_id, client.client_id);
      assert.equal(claims.azp, client.client_id);
      assert.equal(narrowed.scope, "org:read");
      // a mislabelled subject is told what to send
      const mislabelled = exchange(config, { subject_token: (await ownerKey()).secret, subject_token_type: ACCESS });
      await assert.rejects(
        mislabelled,
        (e: unknown) => e instanceof oidc.ResponseBodyError && e.error === "invalid_request" && String(e.error_description).includes(API_KEY),
      );
    });
  });
}
