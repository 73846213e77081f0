/**
 * Services verify Plinth's tokens offline against /.well-known/jwks.json with whatever their stack is (issue 9):
 * `jose`, and `jsonwebtoken` + `jwks-rsa` (the most used Node stack), which refuses EdDSA ("invalid algorithm"). New
 * signing keys are therefore ES256 by default; a deployment upgrading from the EdDSA default keeps its EdDSA key
 * (and its tokens keep verifying) until it rotates. Over a real port on 127.0.0.1, as a service would.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from "jose";
import jwt, { type JwtHeader, type JwtPayload, type SigningKeyCallback } from "jsonwebtoken";
import jwksRsa from "jwks-rsa";
import { BACKENDS, createTestApp, signUp, type TestApp } from "../../../test/harness.ts";

const ISSUER = "http://plinth.test";
const AUDIENCE = "plinth";

/** Listens on a free port of 127.0.0.1; the JWKS URL a service would be configured with. */
async function jwksUrlOf(t: TestApp): Promise<string> {
  await t.app.listen({ port: 0, host: "127.0.0.1" });
  return `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}/.well-known/jwks.json`;
}

/** What jose's documentation shows: a remote JWKS, issuer and audience checked. */
async function verifyWithJose(token: string, jwksUrl: string): Promise<JwtPayload> {
  const { payload } = await jwtVerify(token, createRemoteJWKSet(new URL(jwksUrl)), { issuer: ISSUER, audience: AUDIENCE });
  return payload;
}

/** What jwks-rsa's README shows for jsonwebtoken: a key lookup by kid, the public key handed to jwt.verify. */
function verifyWithJsonwebtoken(token: string, jwksUrl: string): Promise<JwtPayload> {
  const client = jwksRsa({ jwksUri: jwksUrl, cache: false });
  const getKey = (header: JwtHeader, callback: SigningKeyCallback) => {
    client.getSigningKey(header.kid, (err, key) => callback(err, key?.getPublicKey()));
  };
  return new Promise((resolve, reject) => {
    jwt.verify(token, getKey, { issuer: ISSUER, audience: AUDIENCE }, (err, payload) => (err ? reject(err) : resolve(payload as JwtPayload)));
  });
}

for (const backend of BACKENDS) {
  describe(`offline verification of Plinth's tokens (${backend})`, () => {
    let t: TestApp;
    before(async () => {
      t = await createTestApp({ backend, worker: false });
    });
    after(() => t.close());

    it("issue 9: an access token and a client_credentials token verify offline with jose and with jsonwebtoken + jwks-rsa (ES256 by default)", async () => {
      const jwksUrl = await jwksUrlOf(t);
      const user = await signUp(t, "Verifier");
      const orgId = (await t.call("POST", "/v1/orgs", { name: "Verified", slug: `ver-${randomBytes(5).toString("hex")}` }, user.access_token)).json()
        .id as string;
      const sa = (await t.call("POST", `/v1/orgs/${orgId}/service-accounts`, { name: "svc", roles: ["viewer"] }, user.access_token)).json();
      const client = (await t.call("POST", `/v1/orgs/${orgId}/service-accounts/${sa.id}/clients`, { name: "c" }, user.access_token)).json();
      const issued = await t.call("POST", "/v1/oauth/token", {
        grant_type: "client_credentials",
        client_id: client.client_id,
        client_secret: client.client_secret,
      });
      assert.equal(issued.statusCode, 200, issued.body);

      for (const [token, sub] of [
        [user.access_token, user.id],
        [issued.json().access_token as string, sa.id as string],
      ]) {
        assert.equal(decodeProtectedHeader(token).alg, "ES256");
        assert.equal((await verifyWithJose(token, jwksUrl)).sub, sub);
        assert.equal((await verifyWithJsonwebtoken(token, jwksUrl)).sub, sub);
      }
      // and the verifiers do check: another audience is refused by both
      const other = await t.call("POST", "/v1/oauth/token", {
        grant_type: "client_credentials",
        client_id: client.client_id,
        client_secret: client.client_secret,
        audience: "https://billing.example",
      });
      await assert.rejects(verifyWithJose(other.json().access_token, jwksUrl));
      await assert.rejects(verifyWithJsonwebtoken(other.json().access_token, jwksUrl), /audience invalid/);
    });

    it("issue 9: upgrading from EdDSA keeps the EdDSA key signing until rotation; the next key is ES256 and EdDSA tokens keep verifying", async () => {
      const old = await createTestApp({ backend, worker: false, env: { PLINTH_JWT_ALG: "EdDSA" } });
      let upgraded: TestApp | undefined;
      try {
        const user = await signUp(old, "Early Adopter");
        const edToken = user.access_token;
        assert.equal(decodeProtectedHeader(edToken).alg, "EdDSA");

        // the same database, now with the default alg: no new key at boot, so nothing changes for verifiers yet
        upgraded = await createTestApp({ backend, worker: false, sameDatabaseAs: old });
        const me = (token: string) => upgraded!.call("GET", "/v1/me", undefined, token);
        assert.equal((await me(edToken)).statusCode, 200);
        const login = async () =>
          (await upgraded!.call("POST", "/v1/auth/login", { email: user.email, password: user.password })).json().access_token as string;
        assert.equal(decodeProtectedHeader(await login()).alg, "EdDSA", "still the EdDSA key until rotation");

        const { kid } = await upgraded.deps.keys.rotate();
        const esToken = await login();
        assert.deepEqual(decodeProtectedHeader(esToken), { alg: "ES256", kid, typ: "at+jwt" });
        const jwksUrl = await jwksUrlOf(upgraded);
        const published = ((await (await fetch(jwksUrl)).json()) as { keys: { kty: string; alg: string }[] }).keys.map((k) => `${k.kty}/${k.alg}`).sort();
        assert.deepEqual(published, ["EC/ES256", "OKP/EdDSA"], "the EdDSA key stays published while its tokens live");
        for (const token of [edToken, esToken]) {
          assert.equal((await me(token)).statusCode, 200);
          assert.equal((await verifyWithJose(token, jwksUrl)).sub, user.id);
        }
        assert.equal((await verifyWithJsonwebtoken(esToken, jwksUrl)).sub, user.id);
      } finally {
        // on PGlite the second instance shares the first one's database: close it first
        await upgraded?.close();
        await old.close();
      }
    });
  });
}
