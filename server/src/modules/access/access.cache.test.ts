/**
 * Cached access across instances: two app instances on one PostgreSQL database and one Redis. A change committed on
 * one instance (a revoked grant, a removed member) is denied on the other on the very next request, because the
 * change invalidates the org's cached access everywhere before it answers. Without that invalidation the other
 * instance would keep answering from its cache: the last tests show the cache is real.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { sql } from "drizzle-orm";
import { newId } from "../../lib/ids.ts";
import { createTestApp, problemOf, redisUrl, signUp, type TestApp, type TestUser } from "../../../test/harness.ts";

const doc = () => ({ type: "document", id: newId("request").replace("req_", "doc_") });

describe("access cache invalidation across two instances (postgres + redis)", () => {
  let a: TestApp;
  let b: TestApp;
  let owner: TestUser;
  let carol: TestUser;
  let orgId: string;

  const allowedOn = async (app: TestApp, user: TestUser, check: Record<string, unknown>) => {
    const res = await app.call("POST", `/v1/orgs/${orgId}/access/check`, { checks: [check] }, user.access_token);
    assert.equal(res.statusCode, 200, res.body);
    return res.json().results[0].allowed as boolean;
  };
  const addCarol = async (role = "viewer") => {
    await a.db.owner.execute(sql`insert into memberships (org_id, user_id, role) values (${orgId}, ${carol.id}, ${role}) on conflict do nothing`);
    await a.deps.access.invalidate(orgId);
  };

  before(async () => {
    a = await createTestApp({ backend: "postgres", worker: false, env: { REDIS_URL: await redisUrl() } });
    b = await createTestApp({ backend: "postgres", worker: false, sameDatabaseAs: a, env: { REDIS_URL: await redisUrl() } });
    [owner, carol] = await Promise.all([signUp(a, "Owner"), signUp(a, "Carol")]);
    const res = await a.call("POST", "/v1/orgs", { name: "Two instances", slug: `two-${randomBytes(5).toString("hex")}` }, owner.access_token);
    assert.equal(res.statusCode, 201, res.body);
    orgId = res.json().id;
    await addCarol();
  });
  after(async () => {
    await b.close();
    await a.close();
  });

  it("a grant revoked on instance a is denied on instance b at the very next request", async () => {
    const d = doc();
    const g = await a.call("POST", `/v1/orgs/${orgId}/grants`, { subject: { type: "user", id: carol.id }, relation: "write", object: d }, owner.access_token);
    assert.equal(g.statusCode, 201, g.body);
    assert.equal(await allowedOn(b, carol, { relation: "write", object: d }), true, "b sees the new grant (and caches it)");
    assert.equal(await allowedOn(b, carol, { relation: "write", object: d }), true);
    const del = await a.call("DELETE", `/v1/orgs/${orgId}/grants/${g.json().id}`, undefined, owner.access_token);
    assert.equal(del.statusCode, 204, del.body);
    assert.equal(await allowedOn(b, carol, { relation: "write", object: d }), false, "b no longer honours it");
  });

  it("a peer grant revoked on a is denied on b at once", async () => {
    const [p] = (await a.call("POST", `/v1/orgs/${orgId}/peer-grants`, { grantee_id: carol.id, permissions: ["secrets:read"] }, owner.access_token)).json()
      .items;
    assert.equal(await allowedOn(b, carol, { permission: "secrets:read" }), true);
    assert.equal((await a.call("DELETE", `/v1/orgs/${orgId}/peer-grants/${p.id}`, undefined, owner.access_token)).statusCode, 204);
    assert.equal(await allowedOn(b, carol, { permission: "secrets:read" }), false);
  });

  it("a member removed on a (SQL + invalidate) gets 404 on b at the next request", async () => {
    assert.equal((await b.call("GET", `/v1/orgs/${orgId}`, undefined, carol.access_token)).statusCode, 200, "b caches the membership");
    await a.db.owner.execute(sql`delete from memberships where org_id = ${orgId} and user_id = ${carol.id}`);
    await a.deps.access.invalidate(orgId);
    const res = await b.call("GET", `/v1/orgs/${orgId}`, undefined, carol.access_token);
    assert.equal(res.statusCode, 404, res.body);
    assert.equal(problemOf(res).field, "orgId");
    assert.equal((await b.call("POST", `/v1/orgs/${orgId}/access/check`, { checks: [{ permission: "org:read" }] }, carol.access_token)).statusCode, 404);
    await addCarol();
    assert.equal(
      (await b.call("GET", `/v1/orgs/${orgId}`, undefined, carol.access_token)).statusCode,
      200,
      "and back when re-added (a cached 'stranger' is invalidated too)",
    );
  });

  it("the cache is real: a grant deleted behind the engine's back is still honoured on b until someone invalidates", async () => {
    const d = doc();
    const g = (
      await a.call("POST", `/v1/orgs/${orgId}/grants`, { subject: { type: "user", id: carol.id }, relation: "read", object: d }, owner.access_token)
    ).json();
    assert.equal(await allowedOn(b, carol, { relation: "read", object: d }), true);
    await a.db.owner.execute(sql`delete from grants where id = ${g.id}`);
    assert.equal(await allowedOn(b, carol, { relation: "read", object: d }), true, "b answers from its cache");
    assert.equal(await allowedOn(a, carol, { relation: "read", object: d }), false, "a had not cached this object, so it reads the database");
    await a.deps.access.invalidate(orgId);
    assert.equal(await allowedOn(b, carol, { relation: "read", object: d }), false, "invalidated on a, denied on b");
  });

  it("the cache is real for memberships too: a removal without invalidation is still admitted on b, then 404 once invalidated", async () => {
    assert.equal((await b.call("GET", `/v1/orgs/${orgId}`, undefined, carol.access_token)).statusCode, 200);
    await a.db.owner.execute(sql`delete from memberships where org_id = ${orgId} and user_id = ${carol.id}`);
    assert.equal((await b.call("GET", `/v1/orgs/${orgId}`, undefined, carol.access_token)).statusCode, 200, "b answers from its cache");
    await a.deps.access.invalidate(orgId);
    assert.equal((await b.call("GET", `/v1/orgs/${orgId}`, undefined, carol.access_token)).statusCode, 404);
    await addCarol();
  });

  it("invalidation is per org: another org's cached access on b survives", async () => {
    const other = await a.call("POST", "/v1/orgs", { name: "Other", slug: `other-${randomBytes(5).toString("hex")}` }, owner.access_token);
    const otherId = other.json().id as string;
    await a.db.owner.execute(sql`insert into memberships (org_id, user_id, role) values (${otherId}, ${carol.id}, 'viewer')`);
    await a.deps.access.invalidate(otherId);
    assert.equal((await b.call("GET", `/v1/orgs/${otherId}`, undefined, carol.access_token)).statusCode, 200);
    await a.db.owner.execute(sql`delete from memberships where org_id = ${otherId} and user_id = ${carol.id}`);
    await a.deps.access.invalidate(orgId); // the wrong org
    assert.equal((await b.call("GET", `/v1/orgs/${otherId}`, undefined, carol.access_token)).statusCode, 200, "still cached: only orgId was invalidated");
    await a.deps.access.invalidate(otherId);
    assert.equal((await b.call("GET", `/v1/orgs/${otherId}`, undefined, carol.access_token)).statusCode, 404);
  });
});
