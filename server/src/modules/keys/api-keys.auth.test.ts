import assert from "node:assert/strict";
import { newId } from "../../lib/ids.ts";
import { randomBytes } from "node:crypto";
import { Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { sql } from "drizzle-orm";
import type { LightMyRequestResponse } from "fastify";
import { createManualClock } from "../../lib/clock.ts";
import { createLogger } from "../../logger.ts";
import { BACKENDS, addMember, assertProblem, createTestApp, makeKey, makeOrg, signUp, uniqueSlug, type TestApp, type TestUser } from "../../../test/harness.ts";
import { checkFormat, newSecret } from "./api-keys.format.ts";

describe("API key format", () => {
  it("makes secrets that pass their own check, and catches a typo in any character", () => {
    for (let i = 0; i < 200; i++) assert.equal(checkFormat(newSecret()), "ok");
    const s = newSecret();
    for (let i = 9; i < s.length; i++) {
      const c = s[i] === "a" ? "b" : "a";
      assert.equal(checkFormat(s.slice(0, i) + c + s.slice(i + 1)), "bad_checksum", `typo at ${i}`);
    }
    for (const bad of ["", "plk_live_", `${s}x`, s.slice(0, -1), s.replace("live", "test"), s.replace("plk_", "plx_"), `${s.slice(0, 20)}-${s.slice(21)}`]) {
      assert.equal(checkFormat(bad), "malformed", bad);
    }
  });
});

for (const backend of BACKENDS) {
  describe(`API keys: using them (${backend})`, () => {
    let t: TestApp;
    const clock = createManualClock(new Date("2031-03-01T12:00:00Z"));
    const logLines: string[] = [];
    let owner: TestUser;
    let admin: TestUser;
    let dev: TestUser;
    let orgId: string;
    let otherOrg: string;
    before(async () => {
      const sink = new Writable({
        write(chunk, _enc, cb) {
          logLines.push(String(chunk));
          cb();
        },
      });
      t = await createTestApp({ backend, worker: false, clock, log: createLogger("debug", sink) });
      owner = await signUp(t, "Owner");
      admin = await signUp(t, "Admin");
      dev = await signUp(t, "Dev");
      orgId = await makeOrg(t, owner, "Keyed", uniqueSlug("keyed"));
      otherOrg = await makeOrg(t, owner, "Keyed", uniqueSlug("keyed"));
    });
    after(() => t.close());

    const withKey = (secret: string, method = "GET", path = `/v1/orgs/${orgId}`, body?: unknown) => t.call(method, path, body, secret);
    const withHeader = (secret: string, path = `/v1/orgs/${orgId}`) => t.inject({ method: "GET", url: path, headers: { "x-api-key": secret } });
    const refused = (res: LightMyRequestResponse, reason: string) => assertProblem(res, 401, "INVALID_API_KEY", { reason });

    it("a narrowed key holds only its own permissions: what is shared with its owner does not reach it", async () => {
      const docId = newId("request").replace("req_", "doc_");
      const shared = await t.call(
        "POST",
        `/v1/orgs/${orgId}/grants`,
        { subject: { type: "user", id: owner.id }, relation: "read", object: { type: "document", id: docId } },
        owner.access_token,
      );
      assert.equal(shared.statusCode, 201, shared.body);
      const check = { relation: "read", object: { type: "document", id: docId } };
      const asOwner = await t.call("POST", `/v1/orgs/${orgId}/access/check`, { checks: [check] }, owner.access_token);
      assert.equal(asOwner.json().results[0].allowed, true, asOwner.body);
      const k = await makeKey(t, orgId, owner, { permissions: ["org:read"] });
      const asKey = await withKey(k.secret, "POST", `/v1/orgs/${orgId}/access/check`, { checks: [check] });
      assert.equal(asKey.statusCode, 200, asKey.body);
      assert.equal(asKey.json().results[0].allowed, false, asKey.body);
    });

    it("works as Authorization: Bearer and as X-API-Key on the org's routes, within its permissions; not on account routes", async () => {
      const k = await makeKey(t, orgId, owner, { roles: ["viewer"] });
      assert.equal((await withKey(k.secret)).statusCode, 200);
      const viaHeader = await withHeader(k.secret);
      assert.equal(viaHeader.statusCode, 200, viaHeader.body);
      assert.equal(viaHeader.json().id, orgId);
      assertProblem(await withKey(k.secret, "PATCH", `/v1/orgs/${orgId}`, { display_name: "nope" }), 403, "FORBIDDEN", { permission: "org:update" });
      assertProblem(await withKey(k.secret, "GET", "/v1/me"), 401, "UNAUTHENTICATED");
      assertProblem(await withKey(k.secret, "GET", "/v1/orgs"), 401, "UNAUTHENTICATED");
    });

    it("a key on another org's path is a stranger there: 404, even where its owner is a member", async () => {
      const k = await makeKey(t, orgId, owner, { roles: ["admin"] });
      const res = await withKey(k.secret, "GET", `/v1/orgs/${otherOrg}`);
      assertProblem(res, 404, "NOT_FOUND", { field: "orgId" });
      assertProblem(await withHeader(k.secret, `/v1/orgs/${otherOrg}/members`), 404, "NOT_FOUND");
    });

    it("malformed and bad-checksum keys are refused (401) without a database read; an unknown key after one", async () => {
      const real = t.db.readScoped;
      let reads = 0;
      t.db.readScoped = ((...args: Parameters<typeof real>) => {
        reads++;
        return real.apply(t.db, args);
      }) as typeof real;
      try {
        const s = newSecret();
        const typo = s.slice(0, 20) + (s[20] === "a" ? "b" : "a") + s.slice(21);
        refused(await withKey("plk_live_short"), "malformed");
        refused(await withHeader("plk_live_short"), "malformed");
        refused(await withKey(typo), "bad_checksum");
        refused(await withHeader(typo), "bad_checksum");
        assert.equal(reads, 0, "no database read for a key that fails its format");
        refused(await withKey(newSecret()), "unknown");
        assert.ok(reads > 0);
      } finally {
        t.db.readScoped = real;
      }
    });

    it("expired and not-yet-valid keys are refused with their reason, by the clock", async () => {
      const now = clock.now().getTime();
      const k = await makeKey(t, orgId, owner, {
        roles: ["viewer"],
        not_before: new Date(now + 60_000).toISOString(),
        expires_at: new Date(now + 120_000).toISOString(),
      });
      refused(await withKey(k.secret), "not_yet_valid");
      clock.advance(61_000);
      assert.equal((await withKey(k.secret)).statusCode, 200);
      assert.equal((await t.call("GET", `/v1/orgs/${orgId}/keys/${k.id}`, undefined, owner.access_token)).json().state, "active");
      clock.advance(60_000);
      refused(await withKey(k.secret), "expired");
      assert.equal((await t.call("GET", `/v1/orgs/${orgId}/keys/${k.id}`, undefined, owner.access_token)).json().state, "expired");
    });

    it("a revoked key stops on the very next request, though it was cached", async () => {
      const k = await makeKey(t, orgId, owner, { roles: ["viewer"] });
      assert.equal((await withKey(k.secret)).statusCode, 200);
      assert.equal((await t.call("DELETE", `/v1/orgs/${orgId}/keys/${k.id}`, undefined, owner.access_token)).statusCode, 200);
      refused(await withKey(k.secret), "revoked");
      refused(await withHeader(k.secret), "revoked");
    });

    it("an IP allowlist admits listed addresses (CIDR, IPv4 and IPv6) and refuses others with 403 IP_NOT_ALLOWED", async () => {
      const k = await makeKey(t, orgId, owner, { roles: ["viewer"], ip_allowlist: ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"] });
      const from = (remoteAddress: string) =>
        t.inject({ method: "GET", url: `/v1/orgs/${orgId}`, headers: { authorization: `Bearer ${k.secret}` }, remoteAddress });
      for (const ip of ["10.1.2.3", "::ffff:10.9.9.9", "2001:db8::1", "192.0.2.7"]) assert.equal((await from(ip)).statusCode, 200, ip);
      for (const ip of ["192.168.1.1", "192.0.2.8", "2001:db9::1", "127.0.0.1"]) assertProblem(await from(ip), 403, "IP_NOT_ALLOWED");
    });

    it("a per-key rate limit answers 429 with Retry-After once spent", async () => {
      const k = await makeKey(t, orgId, owner, { roles: ["viewer"], rate_limit_per_minute: 3 });
      for (let i = 0; i < 3; i++) assert.equal((await withKey(k.secret)).statusCode, 200);
      const res = await withKey(k.secret);
      assertProblem(res, 429, "RATE_LIMITED");
      assert.ok(Number(res.headers["retry-after"]) >= 1);
      // another key is not held back
      const other = await makeKey(t, orgId, owner, { roles: ["viewer"], rate_limit_per_minute: 3 });
      assert.equal((await withKey(other.secret)).statusCode, 200);
    });

    it("after a rotation the old secret works during the grace period and fails after; the new one works", async () => {
      const k = await makeKey(t, orgId, owner, { roles: ["viewer"] });
      assert.equal((await withKey(k.secret)).statusCode, 200);
      const rot = await t.call("POST", `/v1/orgs/${orgId}/keys/${k.id}/$rotate`, { grace_seconds: 60 }, owner.access_token);
      assert.equal(rot.statusCode, 200, rot.body);
      const fresh = rot.json().secret as string;
      assert.equal((await withKey(k.secret)).statusCode, 200, "old secret within the grace period");
      assert.equal((await withKey(fresh)).statusCode, 200);
      clock.advance(61_000);
      refused(await withKey(k.secret), "rotated");
      assert.equal((await withKey(fresh)).statusCode, 200);
      // grace 0 (the default, no body): the previous secret stops at once
      const rot2 = await t.inject({
        method: "POST",
        url: `/v1/orgs/${orgId}/keys/${k.id}/$rotate`,
        headers: { authorization: `Bearer ${owner.access_token}` },
      });
      assert.equal(rot2.statusCode, 200, rot2.body);
      refused(await withKey(fresh), "rotated");
      assert.equal((await withKey(rot2.json().secret)).statusCode, 200);
    });

    it("a key's authority follows its owner's: narrowed when the role narrows, dead when the owner is removed", async () => {
      await addMember(t, orgId, dev, "developer");
      const k = await makeKey(t, orgId, dev, { roles: ["developer"] });
      const listKeys = () => withKey(k.secret, "POST", `/v1/orgs/${orgId}/keys`, { name: `by-key-${randomBytes(3).toString("hex")}`, roles: ["viewer"] });
      const made = await listKeys();
      assert.equal(made.statusCode, 201, made.body);
      // made by the key: owned by its owner, audited as the key
      assert.deepEqual(made.json().owner, { type: "user", id: dev.id });
      const ev = (await t.deps.audit.list(orgId, {}, 1000)).find((e) => e.action === "key.created" && e.targetId === made.json().id);
      assert.deepEqual([ev?.actorType, ev?.actorId], ["api_key", k.id]);
      // a key cannot mint an inheriting key, nor one above itself
      assertProblem(await withKey(k.secret, "POST", `/v1/orgs/${orgId}/keys`, { name: "x1", roles: ["admin"] }), 403, "FORBIDDEN", {
        permission: "org:update",
      });
      const role = await t.call("PATCH", `/v1/orgs/${orgId}/members/${dev.id}`, { role: "viewer" }, owner.access_token);
      assert.equal(role.statusCode, 200, role.body);
      assertProblem(await listKeys(), 403, "FORBIDDEN", { permission: "keys:create" });
      assert.equal((await withKey(k.secret)).statusCode, 200, "org:read remains in both");
      const removed = await t.call("DELETE", `/v1/orgs/${orgId}/members/${dev.id}`, undefined, owner.access_token);
      assert.equal(removed.statusCode, 200, removed.body);
      assert.ok(removed.json().revoked_api_keys.includes(k.id), "the answer names the member's keys it revoked");
      refused(await withKey(k.secret), "revoked");
      const got = await t.call("GET", `/v1/orgs/${orgId}/keys/${k.id}`, undefined, owner.access_token);
      assert.deepEqual([got.json().state, got.json().revoked_reason], ["revoked", "owner_removed"]);
      assert.ok((await t.deps.audit.list(orgId, {}, 1000)).some((e) => e.action === "key.revoked" && e.targetId === k.id));
    });

    it("an inheriting key acts with its owner's current permissions: narrows with the role, dies when the owner leaves", async () => {
      await addMember(t, orgId, admin, "admin");
      const k = await makeKey(t, orgId, admin, { inherit: true });
      assert.equal((await withKey(k.secret, "PATCH", `/v1/orgs/${orgId}`, { display_name: "Inherited" })).statusCode, 200);
      assert.equal((await t.call("PATCH", `/v1/orgs/${orgId}/members/${admin.id}`, { role: "viewer" }, owner.access_token)).statusCode, 200);
      assertProblem(await withKey(k.secret, "PATCH", `/v1/orgs/${orgId}`, { display_name: "Nope" }), 403, "FORBIDDEN", { permission: "org:update" });
      assert.equal((await withKey(k.secret)).statusCode, 200);
      // the owner is gone even without the revocation (membership deleted directly): the key is refused
      await t.db.owner.execute(sql`delete from memberships where org_id = ${orgId} and user_id = ${admin.id}`);
      await t.deps.access.invalidate(orgId);
      assertProblem(await withKey(k.secret), 404, "NOT_FOUND");
      await addMember(t, orgId, admin, "admin");
      const leave = await t.call("POST", `/v1/orgs/${orgId}/leave`, undefined, admin.access_token);
      assert.ok(leave.statusCode < 300, leave.body);
      refused(await withKey(k.secret), "revoked");
      const got = await t.call("GET", `/v1/orgs/${orgId}/keys/${k.id}`, undefined, owner.access_token);
      assert.equal(got.json().revoked_reason, "owner_left");
    });

    it("counts usage in memory and writes last_used_at and usage_count in a batch", async () => {
      const k = await makeKey(t, orgId, owner, { roles: ["viewer"] });
      for (let i = 0; i < 5; i++) assert.equal((await withKey(k.secret)).statusCode, 200);
      const read = async () => (await t.call("GET", `/v1/orgs/${orgId}/keys/${k.id}`, undefined, owner.access_token)).json();
      assert.deepEqual([(await read()).usage_count, (await read()).last_used_at], [0, null], "not written per request");
      await t.deps.apiKeys.verifier.flushUsage();
      const after = await read();
      assert.equal(after.usage_count, 5);
      assert.equal(after.last_used_at, clock.now().toISOString());
      await withKey(k.secret);
      await t.deps.apiKeys.verifier.flushUsage();
      assert.equal((await read()).usage_count, 6);
    });

    it("never writes a secret to the log", async () => {
      const k = await makeKey(t, orgId, owner, { roles: ["viewer"] });
      await withKey(k.secret);
      await withHeader(k.secret);
      await t.call("POST", `/v1/orgs/${orgId}/keys/${k.id}/$rotate`, {}, owner.access_token);
      assert.ok(logLines.length > 0, "the log was captured");
      assert.ok(!logLines.some((l) => l.includes(k.secret) || /plk_live_[0-9A-Za-z]{38}/.test(l)), "a secret reached the log");
    });
  });
}
