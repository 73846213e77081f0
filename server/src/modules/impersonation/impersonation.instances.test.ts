/**
 * Ending an impersonation across instances: two app instances on one PostgreSQL database and one Redis. Each instance
 * trusts its last look at an impersonation for a few seconds; ending one drops that look on every instance (the cache
 * port's bus channel) before the end answers, so its token is refused on the other instance at the next request.
 * The last test shows the look is really cached: an end written behind the service's back is honoured until the TTL.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { sql } from "drizzle-orm";
import { createManualClock } from "../../lib/clock.ts";
import { assertProblem, createTestApp, redisUrl, signUp, type TestApp, type TestUser } from "../../../test/harness.ts";
import { CHECK_TTL_MS } from "./impersonation.service.ts";

describe("impersonation across two instances (postgres + redis)", () => {
  const clock = createManualClock();
  let a: TestApp;
  let b: TestApp;
  let root: TestUser;
  let dev: TestUser;

  const start = async () => {
    const r = await a.call("POST", "/v1/impersonations", { user_id: dev.id, reason: "support ticket 4711" }, root.access_token);
    assert.equal(r.statusCode, 201, r.body);
    return r.json() as { access_token: string; impersonation: { id: string } };
  };
  const meOn = (app: TestApp, token: string) => app.call("GET", "/v1/me", undefined, token);

  before(async () => {
    a = await createTestApp({ backend: "postgres", worker: false, clock, env: { REDIS_URL: await redisUrl() } });
    b = await createTestApp({ backend: "postgres", worker: false, clock, sameDatabaseAs: a, env: { REDIS_URL: await redisUrl() } });
    [root, dev] = await Promise.all([signUp(a, "Root"), signUp(a, "Dana Dev")]);
    await a.db.owner.execute(sql`update users set is_platform_admin = true where id = ${root.id}`);
  });
  after(async () => {
    await b.close();
    await a.close();
  });

  it("ended on instance a, its token is refused on instance b at the very next request", async () => {
    const imp = await start();
    assert.equal((await meOn(b, imp.access_token)).statusCode, 200, "b looks and trusts it");
    const end = await a.call("POST", `/v1/impersonations/${imp.impersonation.id}/end`, {}, root.access_token);
    assert.equal(end.statusCode, 200, end.body);
    const p = assertProblem(await meOn(b, imp.access_token), 401, "INVALID_TOKEN");
    assert.match(p.detail, /has ended/);
  });

  it("the look is really cached: an end written behind the service's back is honoured on b until the TTL", async () => {
    const imp = await start();
    assert.equal((await meOn(b, imp.access_token)).statusCode, 200);
    await a.db.owner.execute(sql`update impersonations set ended_at = now() where id = ${imp.impersonation.id}`);
    assert.equal((await meOn(b, imp.access_token)).statusCode, 200, "b answers from its cache");
    clock.advance(CHECK_TTL_MS);
    assertProblem(await meOn(b, imp.access_token), 401, "INVALID_TOKEN");
  });
});
