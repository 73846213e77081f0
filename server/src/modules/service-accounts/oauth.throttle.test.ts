/**
 * Throttling of POST /v1/oauth/token: failed client authentications lock the client_id and the IP out for growing
 * periods (the right secret included: no oracle), and each credential gets a bounded number of tokens a minute.
 * On PGlite with in-process limits, on PostgreSQL with Redis. Every test sends from its own random IP.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { BACKENDS, createTestApp, makeKey, makeOrg, redisUrl, signUp, uniqueSlug, type TestApp, type TestUser } from "../../../test/harness.ts";
import { DEFAULT_TOKEN_RULES } from "./oauth.throttle.ts";

const EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";
const API_KEY = "urn:plinth:api-key";
const WRONG = `plcs_${"A".repeat(43)}`;

function newIp(): string {
  const b = randomBytes(3);
  return `10.${b[0]}.${b[1]}.${b[2]}`;
}

/** Asserts 429 slow_down in the OAuth format with a whole, positive Retry-After, and returns it. */
function slowedDown(res: LightMyRequestResponse): number {
  assert.equal(res.statusCode, 429, res.body);
  assert.equal(res.json().error, "slow_down");
  assert.equal(typeof res.json().error_description, "string");
  assert.equal(res.headers["cache-control"], "no-store");
  const header = String(res.headers["retry-after"]);
  assert.match(header, /^[1-9]\d*$/, `Retry-After: ${header}`);
  return Number(header);
}

for (const backend of BACKENDS) {
  const store = backend === "postgres" ? "redis" : "memory";
  describe(`token endpoint throttling (${backend}, ${store} limits)`, () => {
    let t: TestApp;
    let owner: TestUser;
    let orgId: string;
    before(async () => {
      t = await createTestApp({ backend, worker: false, env: store === "redis" ? { REDIS_URL: await redisUrl() } : {} });
      owner = await signUp(t, "Owner");
      orgId = await makeOrg(t, owner, "Throttled", uniqueSlug("thr"));
    });
    after(() => t.close());

    const token = (body: Record<string, unknown>, ip: string) => t.inject({ method: "POST", url: "/v1/oauth/token", payload: body, remoteAddress: ip });
    const credentials = (c: { client_id: string }, secret: string) => ({ grant_type: "client_credentials", client_id: c.client_id, client_secret: secret });
    async function makeClient(): Promise<{ client_id: string; client_secret: string }> {
      const sa = (
        await t.call("POST", `/v1/orgs/${orgId}/service-accounts`, { name: `sa-${randomBytes(4).toString("hex")}`, roles: ["viewer"] }, owner.access_token)
      ).json();
      const res = await t.call("POST", `/v1/orgs/${orgId}/service-accounts/${sa.id}/clients`, { name: "c" }, owner.access_token);
      assert.equal(res.statusCode, 201, res.body);
      return res.json();
    }

    it("wrong secrets lock the client_id out: then even the right secret gets 429 slow_down; other clients are unaffected", async () => {
      const c = await makeClient();
      const other = await makeClient();
      const ip = newIp();
      for (let i = 0; i < DEFAULT_TOKEN_RULES.failuresPerClient.points; i++) {
        const res = await token(credentials(c, WRONG), ip);
        assert.equal(res.statusCode, 401, `failure ${i + 1}: ${res.body}`);
        assert.equal(res.json().error, "invalid_client");
      }
      const wait = slowedDown(await token(credentials(c, c.client_secret), ip));
      assert.ok(wait <= DEFAULT_TOKEN_RULES.failuresPerClient.baseBlockSeconds, `first lockout is the base period: ${wait}`);
      slowedDown(await token(credentials(c, c.client_secret), newIp()));
      slowedDown(await token(credentials(c, WRONG), ip));
      const fine = await token(credentials(other, other.client_secret), ip);
      assert.equal(fine.statusCode, 200, fine.body);
    });

    it("failures from one IP across many client ids lock that IP out, not others", async () => {
      const c = await makeClient();
      const ip = newIp();
      for (let i = 0; i < DEFAULT_TOKEN_RULES.failuresPerIp.points; i++) {
        const res = await token(credentials({ client_id: `cli_unknown${i}` }, WRONG), ip);
        assert.equal(res.statusCode, 401, `failure ${i + 1}: ${res.body}`);
      }
      slowedDown(await token(credentials(c, c.client_secret), ip));
      assert.equal((await token(credentials(c, c.client_secret), newIp())).statusCode, 200);
    });

    it("unusable subject tokens count against the IP too", async () => {
      const key = await makeKey(t, orgId, owner);
      const ip = newIp();
      for (let i = 0; i < DEFAULT_TOKEN_RULES.failuresPerIp.points; i++) {
        const res = await token({ grant_type: EXCHANGE, subject_token: `plk_live_nope${i}`, subject_token_type: API_KEY }, ip);
        assert.equal(res.statusCode, 400, res.body);
        assert.equal(res.json().error, "invalid_grant");
      }
      slowedDown(await token({ grant_type: EXCHANGE, subject_token: key.secret, subject_token_type: API_KEY }, ip));
      assert.equal((await token({ grant_type: EXCHANGE, subject_token: key.secret, subject_token_type: API_KEY }, newIp())).statusCode, 200);
    });

    it("caps the tokens a client, and an API key, gets a minute; others keep theirs", async () => {
      const cap = DEFAULT_TOKEN_RULES.issuedPerCredential.points;
      const c = await makeClient();
      const other = await makeClient();
      const ip = newIp();
      for (let i = 0; i < cap; i++) assert.equal((await token(credentials(c, c.client_secret), ip)).statusCode, 200, `token ${i + 1}`);
      assert.ok(slowedDown(await token(credentials(c, c.client_secret), ip)) <= 60);
      assert.equal((await token(credentials(other, other.client_secret), ip)).statusCode, 200);

      const key = await makeKey(t, orgId, owner);
      const exchange = { grant_type: EXCHANGE, subject_token: key.secret, subject_token_type: API_KEY };
      for (let i = 0; i < cap; i++) assert.equal((await token(exchange, newIp())).statusCode, 200, `exchange ${i + 1}`);
      slowedDown(await token(exchange, newIp()));
      // the key itself still works on Plinth's routes: only its token issuance is capped
      assert.equal((await t.call("GET", `/v1/orgs/${orgId}`, undefined, key.secret)).statusCode, 200);
    });

    it("a client that authenticates to token exchanges spends its own allowance: its cap holds across many subjects", async () => {
      const cap = DEFAULT_TOKEN_RULES.issuedPerCredential.points;
      const c = await makeClient();
      const exchangeBy = (secret: string) => ({
        grant_type: EXCHANGE,
        subject_token: secret,
        subject_token_type: API_KEY,
        client_id: c.client_id,
        client_secret: c.client_secret,
      });
      // each exchange names another key (its own allowance untouched), the same client
      const keys = [await makeKey(t, orgId, owner), await makeKey(t, orgId, owner)];
      for (let i = 0; i < cap; i++) assert.equal((await token(exchangeBy(keys[i % 2].secret), newIp())).statusCode, 200, `exchange ${i + 1}`);
      slowedDown(await token(exchangeBy(keys[0].secret), newIp()));
      // the keys themselves are not spent: exchanged without the client, they still get tokens
      assert.equal((await token({ grant_type: EXCHANGE, subject_token: keys[1].secret, subject_token_type: API_KEY }, newIp())).statusCode, 200);
    });
  });
}
