/**
 * Tokens exchanged from API keys (RFC 8693 at POST /v1/oauth/token): they name their key (key_id), never outlive it,
 * and stop working on Plinth's routes at the next request once the key is revoked, here or on another instance.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { decodeJwt } from "jose";
import { createManualClock } from "../../lib/clock.ts";
import {
  BACKENDS,
  addMember,
  assertProblem,
  createTestApp,
  makeKey,
  makeOrg,
  redisUrl,
  signUp,
  uniqueSlug,
  type TestApp,
  type TestUser,
} from "../../../test/harness.ts";

const EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS = "urn:ietf:params:oauth:token-type:access_token";
const API_KEY = "urn:plinth:api-key";

const exchange = (t: TestApp, subject: string, extra: Record<string, unknown> = {}, type = API_KEY) =>
  t.call("POST", "/v1/oauth/token", { grant_type: EXCHANGE, subject_token: subject, subject_token_type: type, ...extra });

async function exchanged(t: TestApp, secret: string, extra: Record<string, unknown> = {}): Promise<{ access_token: string; expires_in: number }> {
  const res = await exchange(t, secret, extra);
  assert.equal(res.statusCode, 200, res.body);
  return res.json();
}

for (const backend of BACKENDS) {
  describe(`tokens exchanged from API keys (${backend})`, () => {
    let t: TestApp;
    const clock = createManualClock(new Date("2031-05-01T09:00:00Z"));
    let owner: TestUser;
    let dev: TestUser;
    let orgId: string;
    before(async () => {
      t = await createTestApp({ backend, worker: false, clock });
      [owner, dev] = await Promise.all([signUp(t, "Owner"), signUp(t, "Dev")]);
      orgId = await makeOrg(t, owner, "Exchanges", uniqueSlug("xch"));
      await addMember(t, orgId, dev, "developer");
    });
    after(() => t.close());

    const getOrg = (token: string) => t.call("GET", `/v1/orgs/${orgId}`, undefined, token);

    it("the token names its key, not its secret; revoking the key stops it at the next request (401 key_revoked), and its re-exchange", async () => {
      const key = await makeKey(t, orgId, dev);
      const { access_token } = await exchanged(t, key.secret);
      const claims = decodeJwt(access_token);
      assert.equal(claims.key_id, key.id);
      assert.equal(claims.sub, dev.id);
      assert.ok(!access_token.includes(key.secret) && !JSON.stringify(claims).includes(key.secret.slice(9)));
      assert.equal((await getOrg(access_token)).statusCode, 200);
      // an exchange of the exchanged token keeps naming the key
      const again = await exchange(t, access_token, { scope: "org:read" }, ACCESS);
      assert.equal(again.statusCode, 200, again.body);
      assert.equal(decodeJwt(again.json().access_token).key_id, key.id);

      assert.equal((await t.call("DELETE", `/v1/orgs/${orgId}/keys/${key.id}`, undefined, dev.access_token)).statusCode, 200);
      assertProblem(await getOrg(access_token), 401, "INVALID_TOKEN", { reason: "key_revoked" });
      assertProblem(await getOrg(again.json().access_token), 401, "INVALID_TOKEN", { reason: "key_revoked" });
      const reExchange = await exchange(t, access_token, {}, ACCESS);
      assert.equal(reExchange.statusCode, 400, reExchange.body);
      assert.equal(reExchange.json().error, "invalid_grant");
    });

    it("claims cannot forge key_id", async () => {
      const key = await makeKey(t, orgId, dev);
      const res = await exchange(t, key.secret, { claims: JSON.stringify({ key_id: "key_x" }) });
      assert.equal(res.statusCode, 400, res.body);
      assert.equal(res.json().error, "invalid_request");
      assert.match(res.json().error_description, /key_id/);
    });

    it("a warm key's liveness is known without a database read; a revocation is seen at once", async () => {
      const key = await makeKey(t, orgId, dev);
      const { access_token } = await exchanged(t, key.secret);
      assert.equal((await getOrg(access_token)).statusCode, 200);
      // synchronous: answered from memory, no query
      assert.equal(t.deps.apiKeys.verifier.isLive(orgId, key.id), true);
      assert.equal(t.deps.apiKeys.verifier.isLive("org_00000000000000000000000000", key.id), false, "only in its own org");
      assert.equal((await t.call("DELETE", `/v1/orgs/${orgId}/keys/${key.id}`, undefined, owner.access_token)).statusCode, 200);
      assert.equal(await t.deps.apiKeys.verifier.isLive(orgId, key.id), false);
    });

    it("the token dies with its key when the key's owner is removed from the organization", async () => {
      const member = await signUp(t, "Leaving");
      await addMember(t, orgId, member, "developer");
      const key = await makeKey(t, orgId, member);
      const { access_token } = await exchanged(t, key.secret);
      assert.equal((await getOrg(access_token)).statusCode, 200);
      assert.equal((await t.call("DELETE", `/v1/orgs/${orgId}/members/${member.id}`, undefined, owner.access_token)).statusCode, 200);
      assertProblem(await getOrg(access_token), 401, "INVALID_TOKEN", { reason: "key_revoked" });
    });

    it("never outlives the key: a key expiring in 2 minutes caps the token at 120 s, a rotated-out secret at its grace", async () => {
      const expiresAt = new Date(clock.now().getTime() + 120_000);
      const key = await makeKey(t, orgId, dev, { expires_at: expiresAt.toISOString() });
      const out = await exchanged(t, key.secret);
      assert.equal(out.expires_in, 120);
      assert.equal(decodeJwt(out.access_token).exp, expiresAt.getTime() / 1000);
      const asked = await exchanged(t, key.secret, { expires_in: 3600 });
      assert.ok(asked.expires_in <= 120, `asked for an hour, got ${asked.expires_in}`);
      clock.advance(60_000);
      assert.equal((await getOrg(out.access_token)).statusCode, 200);
      clock.advance(61_000);
      assertProblem(await getOrg(out.access_token), 401, "INVALID_TOKEN", { reason: "expired" });

      const rotating = await makeKey(t, orgId, dev);
      const rotated = await t.call("POST", `/v1/orgs/${orgId}/keys/${rotating.id}/$rotate`, { grace_seconds: 45 }, dev.access_token);
      assert.equal(rotated.statusCode, 200, rotated.body);
      assert.equal((await exchanged(t, rotating.secret)).expires_in, 45, "the old secret's grace period");
      assert.equal((await exchanged(t, rotated.json().secret)).expires_in, 300, "the new secret: the default lifetime");
    });

    it("an exchanged (narrowed) token cannot create a key that inherits its owner's full permissions", async () => {
      const narrow = await exchange(t, owner.access_token, { org_id: orgId, scope: "org:read keys:read keys:create" }, ACCESS);
      assert.equal(narrow.statusCode, 200, narrow.body);
      const res = await t.call("POST", `/v1/orgs/${orgId}/keys`, { name: `inh-${randomBytes(4).toString("hex")}`, inherit: true }, narrow.json().access_token);
      assertProblem(res, 403, "INHERIT_NOT_ALLOWED", { field: "inherit" });
    });
  });
}

describe("a key revoked on one instance ends its exchanged tokens on another (postgres + redis)", () => {
  let a: TestApp;
  let b: TestApp;
  let owner: TestUser;
  let orgId: string;
  before(async () => {
    a = await createTestApp({ backend: "postgres", worker: false, env: { REDIS_URL: await redisUrl() } });
    b = await createTestApp({ backend: "postgres", worker: false, sameDatabaseAs: a, env: { REDIS_URL: await redisUrl() } });
    owner = await signUp(a, "Owner");
    orgId = await makeOrg(a, owner, "Two", uniqueSlug("xch2"));
  });
  after(async () => {
    await b.close();
    await a.close();
  });

  it("b caches the key's liveness, and honours a's revocation at the next request", async () => {
    const key = (await a.call("POST", `/v1/orgs/${orgId}/keys`, { name: "two", roles: ["viewer"] }, owner.access_token)).json();
    const { access_token } = await exchanged(a, key.secret);
    assert.equal((await b.call("GET", `/v1/orgs/${orgId}`, undefined, access_token)).statusCode, 200);
    assert.equal(b.deps.apiKeys.verifier.isLive(orgId, key.id), true, "warm on b");
    assert.equal((await a.call("DELETE", `/v1/orgs/${orgId}/keys/${key.id}`, undefined, owner.access_token)).statusCode, 200);
    assertProblem(await b.call("GET", `/v1/orgs/${orgId}`, undefined, access_token), 401, "INVALID_TOKEN", { reason: "key_revoked" });
  });
});
