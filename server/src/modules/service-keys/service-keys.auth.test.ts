/**
 * Services calling Plinth with tokens they sign themselves: what such a token may do (its key's roles, in its key's
 * org, or for a platform key in the org its token names), every way one is refused (401 INVALID_TOKEN naming the
 * reason), rotation and revocation, on one instance and (PostgreSQL + Redis) across two.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { sql } from "drizzle-orm";
import { importJWK, type CryptoKey } from "jose";
import { BACKENDS, assertProblem, createTestApp, problemOf, redisUrl, type TestApp } from "../../../test/harness.ts";
import { keyPair, registration, serviceName, serviceToken, startKit, type Kit, type ServiceKeyPair } from "./service-keys.test-kit.ts";

for (const backend of BACKENDS) {
  describe(`service tokens (${backend})`, () => {
    let kit: Kit;
    before(async () => {
      kit = await startKit(backend);
    });
    after(() => kit.close());

    const org = (path = "") => `/v1/orgs/${kit.orgId}${path}`;
    /** Registers a fresh key of `service` in the org (or platform-wide) and returns it with its registration id. */
    async function registered(
      service: string,
      roles: string[] = ["viewer"],
      o: { alg?: Parameters<typeof keyPair>[0]; platform?: boolean; extra?: Record<string, unknown> } = {},
    ) {
      const k = await keyPair(o.alg ?? "EdDSA");
      const res = o.platform
        ? await kit.t.call("POST", "/v1/service-keys", registration(service, k, { roles, ...o.extra }), kit.root.access_token)
        : await kit.t.call("POST", org("/service-keys"), registration(service, k, { roles, ...o.extra }), kit.owner.access_token);
      assert.equal(res.statusCode, 201, res.body);
      return { ...k, id: res.json().id as string };
    }
    const refused = (res: Awaited<ReturnType<TestApp["call"]>>, reason: string) => {
      assertProblem(res, 401, "INVALID_TOKEN", { reason });
      assert.match(String(res.headers["www-authenticate"]), /^Bearer/);
    };
    const call = (method: string, path: string, token: string, body?: unknown) => kit.t.call(method, path, body, token);

    it("acts in its organization with its key's roles: 403 beyond them, 404 in another org, 401 on account routes; audited as the service", async () => {
      const svc = serviceName("reader");
      const k = await registered(svc, ["viewer"]);
      const token = await serviceToken(kit, svc, k);
      assert.equal((await call("GET", org(), token)).statusCode, 200);
      assert.equal((await call("GET", org(), token)).statusCode, 200, "a token seen before");
      const denied = await call("POST", org("/teams"), token, { name: "Nope" });
      assertProblem(denied, 403, "FORBIDDEN", { permission: "teams:create" });
      assert.match(problemOf(denied).detail, new RegExp(`service ${svc}`));
      assertProblem(await call("GET", `/v1/orgs/${kit.otherOrgId}`, token), 404, "NOT_FOUND", { field: "orgId" });
      assertProblem(await call("GET", "/v1/me", token), 401, "UNAUTHENTICATED");
      assertProblem(await call("GET", "/v1/service-keys", token), 401, "UNAUTHENTICATED");

      const adminSvc = serviceName("admin");
      const strong = await registered(adminSvc, ["admin"], { alg: "ES256" });
      const made = await call("POST", org("/teams"), await serviceToken(kit, adminSvc, strong), { name: `Made by ${adminSvc}` });
      assert.equal(made.statusCode, 201, made.body);
      const ev = (await kit.t.deps.audit.list(kit.orgId, {}, 1000)).find((e) => e.action === "team.created" && e.targetId === made.json().id);
      assert.deepEqual([ev?.actorType, ev?.actorId], ["service", strong.id]);
      // a service cannot give itself more than it holds: registering a key is a change like any other
      const more = await call(
        "POST",
        org("/service-keys"),
        await serviceToken(kit, adminSvc, strong),
        registration(serviceName(), await keyPair(), { roles: ["owner"] }),
      );
      assertProblem(more, 403, "FORBIDDEN", { permission: "org:delete" });

      await kit.t.deps.serviceKeys.verifier.flushUsage();
      const used = await call("GET", org(`/service-keys/${k.id}`), kit.owner.access_token);
      assert.ok(used.json().last_used_at, used.body);
    });

    it("refuses tokens that are not right with 401 INVALID_TOKEN and the reason, whatever the route", async () => {
      const svc = serviceName("strict");
      const k = await registered(svc, ["admin"]);
      const now = Math.floor(kit.clock.now().getTime() / 1000);
      const cases: [string, Promise<string>][] = [
        ["bad_claims", serviceToken(kit, svc, k, { aud: "someone-else" })],
        ["bad_claims", serviceToken(kit, svc, k, { iss: "another-service" })],
        ["bad_claims", serviceToken(kit, svc, k, { sub: "another-service" })],
        ["bad_claims", serviceToken(kit, svc, k, { omit: ["aud"] })],
        ["bad_claims", serviceToken(kit, svc, k, { omit: ["iat"] })],
        ["bad_claims", serviceToken(kit, svc, k, { omit: ["exp"] })],
        ["bad_claims", serviceToken(kit, svc, k, { claims: { org: kit.otherOrgId } })],
        ["bad_claims", serviceToken(kit, svc, k, { claims: { org: "acme" } })],
        ["expired", serviceToken(kit, svc, k, { iat: now - 600, ttl: 300 })],
        ["expired", serviceToken(kit, svc, k, { iat: now - 3700, ttl: 3600 })],
        ["lifetime_too_long", serviceToken(kit, svc, k, { ttl: 3601 })],
        ["lifetime_too_long", serviceToken(kit, svc, k, { ttl: 86_400 * 365 })],
        ["not_yet_valid", serviceToken(kit, svc, k, { iat: now + 600 })],
        ["not_yet_valid", serviceToken(kit, svc, k, { claims: { nbf: now + 600 } })],
        ["unknown_key", serviceToken(kit, svc, k, { kid: "nobody-registered-this" })],
        ["bad_signature", keyPair().then((other) => serviceToken(kit, svc, { ...other, kid: k.kid }))],
      ];
      for (const [reason, pending] of cases) {
        const token = await pending;
        refused(await call("GET", org(), token), reason);
        refused(await call("GET", "/v1/me", token), reason);
      }
      // pinned to its registered alg: an RSA key registered for PS256 does not take RS256
      const pss = await registered(svc, ["viewer"], { alg: "PS256" });
      const asRs256 = { ...pss, privateKey: (await importJWK(pss.privateJwk, "RS256")) as CryptoKey };
      refused(await call("GET", org(), await serviceToken(kit, svc, asRs256, { alg: "RS256" })), "bad_algorithm");
      assert.equal((await call("GET", org(), await serviceToken(kit, svc, pss))).statusCode, 200);
      // within the clock tolerance, an hour's token (the longest) is fine
      assert.equal((await call("GET", org(), await serviceToken(kit, svc, k, { iat: now + 20, ttl: 3600 }))).statusCode, 200);
      refused(await call("GET", org(), "eyJhbGciOiJFZERTQSIsImtpZCI6Im5vIn0.e30.AAAA"), "unknown_key");
      refused(await call("GET", org(), "eyJub3QiOiJqc29u.e30.AAAA"), "malformed");
    });

    it("rotation: several keys of a service work at once; a revoked one stops at the next request, cached or not", async () => {
      const svc = serviceName("rotating");
      const old = await registered(svc, ["viewer"]);
      const oldToken = await serviceToken(kit, svc, old);
      assert.equal((await call("GET", org(), oldToken)).statusCode, 200);
      const next = await registered(svc, ["viewer"], { alg: "ES256" });
      const nextToken = await serviceToken(kit, svc, next);
      assert.equal((await call("GET", org(), nextToken)).statusCode, 200);
      assert.equal((await call("GET", org(), oldToken)).statusCode, 200, "both keys active");
      assert.equal((await call("DELETE", org(`/service-keys/${old.id}`), kit.owner.access_token)).statusCode, 200);
      refused(await call("GET", org(), oldToken), "revoked");
      refused(await call("GET", org(), await serviceToken(kit, svc, old)), "revoked");
      assert.equal((await call("GET", org(), nextToken)).statusCode, 200, "the other key still works");
      const jwks = (await kit.t.inject({ method: "GET", url: `/v1/service-keys/jwks.json?org=${kit.orgId}&service=${svc}` })).json();
      assert.deepEqual(
        jwks.keys.map((j: { kid: string }) => j.kid),
        [next.kid],
      );
    });

    it("new roles hold from the next request; an expired registration's tokens are refused", async () => {
      const svc = serviceName("growing");
      const k = await registered(svc, ["viewer"], { extra: { expires_at: new Date(kit.clock.now().getTime() + 120_000).toISOString() } });
      const token = await serviceToken(kit, svc, k, { ttl: 600 });
      assertProblem(await call("POST", org("/teams"), token, { name: `T ${svc}` }), 403, "FORBIDDEN");
      assert.equal((await call("PATCH", org(`/service-keys/${k.id}`), kit.owner.access_token, { roles: ["developer"] })).statusCode, 200);
      assert.equal((await call("POST", org("/teams"), token, { name: `T ${svc}` })).statusCode, 201, "the same token, with the new roles");
      kit.clock.advance(121_000);
      refused(await call("GET", org(), token), "key_expired");
    });

    it("a platform key acts only in the organization its token names, with its roles", async () => {
      const svc = serviceName("fleet");
      const k = await registered(svc, ["viewer"], { platform: true, alg: "ES256" });
      const nowhere = await serviceToken(kit, svc, k);
      assertProblem(await call("GET", org(), nowhere), 404, "NOT_FOUND", { field: "orgId" });
      const here = await serviceToken(kit, svc, k, { claims: { org: kit.orgId } });
      assert.equal((await call("GET", org(), here)).statusCode, 200);
      assertProblem(await call("POST", org("/teams"), here, { name: "Nope" }), 403, "FORBIDDEN", { permission: "teams:create" });
      assertProblem(await call("GET", `/v1/orgs/${kit.otherOrgId}`, here), 404, "NOT_FOUND");
      const there = await serviceToken(kit, svc, k, { claims: { org: kit.otherOrgId } });
      assert.equal((await call("GET", `/v1/orgs/${kit.otherOrgId}`, there)).statusCode, 200);
      // an org that does not exist, or is deleted, is nowhere
      const ghost = await serviceToken(kit, svc, k, { claims: { org: "org_01j00000000000000000000000" } });
      assertProblem(await call("GET", "/v1/orgs/org_01j00000000000000000000000", ghost), 404, "NOT_FOUND");
      await kit.t.db.owner.execute(sql`update orgs set deleted_at = now() where id = ${kit.otherOrgId}`);
      await kit.t.deps.access.invalidate(kit.otherOrgId);
      assertProblem(await call("GET", `/v1/orgs/${kit.otherOrgId}`, there), 404, "NOT_FOUND");
      await kit.t.db.owner.execute(sql`update orgs set deleted_at = null where id = ${kit.otherOrgId}`);
      await kit.t.deps.access.invalidate(kit.otherOrgId);
      await kit.t.deps.serviceKeys.verifier.flushUsage();
      assert.ok((await call("GET", `/v1/service-keys/${k.id}`, kit.root.access_token)).json().last_used_at, "a platform key's use is recorded too");
      assert.equal((await call("DELETE", `/v1/service-keys/${k.id}`, kit.root.access_token)).statusCode, 200);
      refused(await call("GET", org(), here), "revoked");
    });
  });
}

describe("service key revocation across two instances (postgres + redis)", () => {
  let kit: Kit;
  let b: TestApp;
  before(async () => {
    kit = await startKit("postgres", { REDIS_URL: await redisUrl() });
    b = await createTestApp({ backend: "postgres", worker: false, sameDatabaseAs: kit.t, clock: kit.clock, env: { REDIS_URL: await redisUrl() } });
  });
  after(async () => {
    await b.close();
    await kit.close();
  });

  async function register(k: ServiceKeyPair, service: string, platform: boolean): Promise<string> {
    const res = platform
      ? await kit.t.call("POST", "/v1/service-keys", registration(service, k, { roles: ["viewer"] }), kit.root.access_token)
      : await kit.t.call("POST", `/v1/orgs/${kit.orgId}/service-keys`, registration(service, k, { roles: ["viewer"] }), kit.owner.access_token);
    assert.equal(res.statusCode, 201, res.body);
    return res.json().id;
  }

  for (const platform of [false, true]) {
    it(`a ${platform ? "platform" : "organization's"} key revoked on instance a is refused on instance b at the very next request`, async () => {
      const svc = serviceName("two");
      const k = await keyPair();
      const id = await register(k, svc, platform);
      const token = await serviceToken(kit, svc, k, platform ? { claims: { org: kit.orgId } } : {});
      assert.equal((await b.call("GET", `/v1/orgs/${kit.orgId}`, undefined, token)).statusCode, 200, "b accepts (and caches) it");
      const url = platform ? `/v1/service-keys/${id}` : `/v1/orgs/${kit.orgId}/service-keys/${id}`;
      const del = await kit.t.call("DELETE", url, undefined, platform ? kit.root.access_token : kit.owner.access_token);
      assert.equal(del.statusCode, 200, del.body);
      const res = await b.call("GET", `/v1/orgs/${kit.orgId}`, undefined, token);
      assertProblem(res, 401, "INVALID_TOKEN", { reason: "revoked" });
    });
  }
});
