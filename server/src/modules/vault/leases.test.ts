import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { sql } from "drizzle-orm";
import { createManualClock } from "../../lib/clock.ts";
import {
  BACKENDS,
  addMember,
  assertFieldError,
  assertProblem,
  createTestApp,
  makeKey,
  makeOrg,
  signUp,
  uniqueSlug,
  type TestApp,
  type TestUser,
} from "../../../test/harness.ts";

const SECOND = 1000;

for (const backend of BACKENDS) {
  describe(`secret leases (${backend})`, () => {
    const clock = createManualClock();
    let t: TestApp;
    let owner: TestUser;
    let dev: TestUser;
    let viewer: TestUser;
    let stranger: TestUser;
    let orgId: string;
    let otherOrgId: string;
    let teamId: string;
    before(async () => {
      t = await createTestApp({ backend, worker: false, clock });
      owner = await signUp(t, "Olivia Owner");
      dev = await signUp(t, "Dana Dev");
      viewer = await signUp(t, "Vic Viewer");
      stranger = await signUp(t, "Sam Stranger");
      orgId = await makeOrg(t, owner, "Lease Inc", uniqueSlug("lease"));
      otherOrgId = await makeOrg(t, stranger, "Other Inc", uniqueSlug("lease"));
      await addMember(t, orgId, dev, "developer");
      await addMember(t, orgId, viewer, "viewer");
      const team = await t.call("POST", `/v1/orgs/${orgId}/teams`, { name: "Runners" }, owner.access_token);
      assert.equal(team.statusCode, 201, team.body);
      teamId = team.json().id;
    });
    after(() => t.close());

    const leases = (path = "", org = orgId) => `/v1/orgs/${org}/secret-leases${path}`;
    const uniqueName = (tag = "TOKEN") => `${tag}_${randomBytes(4).toString("hex").toUpperCase()}`;
    const events = async (action: string) => (await t.deps.audit.list(orgId, {}, 1000)).filter((e) => e.action === action);
    const leaseCount = async (org = orgId) =>
      Number(
        ((await t.db.owner.execute(sql`select count(*)::int as n from secret_leases where org_id = ${org}`)) as unknown as { rows: { n: number }[] }).rows[0].n,
      );
    async function makeSecret(body: Record<string, unknown> = {}, by = owner) {
      const value = `v-${randomBytes(8).toString("hex")}`;
      const res = await t.call("POST", `/v1/orgs/${orgId}/secrets`, { name: uniqueName(), value, ...body }, by.access_token);
      assert.equal(res.statusCode, 201, res.body);
      return { ...(res.json() as { id: string; name: string; version: number }), value };
    }
    /** A service account with the developer role and an API key of its own. */
    async function robot() {
      const sa = await t.call(
        "POST",
        `/v1/orgs/${orgId}/service-accounts`,
        { name: `runner-${randomBytes(4).toString("hex")}`, roles: ["developer"] },
        owner.access_token,
      );
      assert.equal(sa.statusCode, 201, sa.body);
      const key = await t.call(
        "POST",
        `/v1/orgs/${orgId}/service-accounts/${sa.json().id}/keys`,
        { name: `k-${randomBytes(4).toString("hex")}`, roles: ["developer"] },
        owner.access_token,
      );
      assert.equal(key.statusCode, 201, key.body);
      return { id: sa.json().id as string, key: key.json() as { id: string; secret: string } };
    }
    async function issue(body: Record<string, unknown>, token: string) {
      const res = await t.call("POST", leases(), body, token);
      assert.equal(res.statusCode, 201, res.body);
      return res.json() as { id: string; expires_at: string; max_expires_at: string; holder: { type: string; id: string }; secrets: unknown[] };
    }
    const reveal = (id: string, token: string, org = orgId) => t.call("POST", leases(`/${id}/reveal`, org), undefined, token);

    it("issues a lease to the calling API key (by ids and names) and serves its values to that key alone, audited without values", async () => {
      const a = await makeSecret();
      const b = await makeSecret();
      const bot = await robot();
      const res = await t.call("POST", leases(), { secret_ids: [a.id], names: [b.name], ttl_seconds: 120 }, bot.key.secret);
      assert.equal(res.statusCode, 201, res.body);
      const lease = res.json();
      assert.match(lease.id, /^sls_[0-9a-hjkmnp-tv-z]{26}$/);
      assert.deepEqual(lease.holder, { type: "api_key", id: bot.key.id });
      assert.deepEqual(lease.secrets, [
        { id: a.id, name: a.name, version: 1 },
        { id: b.id, name: b.name, version: 1 },
      ]);
      assert.equal(lease.status, "active");
      assert.equal(Date.parse(lease.expires_at) - clock.now().getTime(), 120 * SECOND);
      assert.equal(Date.parse(lease.max_expires_at) - clock.now().getTime(), 3600 * SECOND, "the default renewal cap");
      assert.ok(!res.body.includes(a.value) && !res.body.includes(b.value), "issuing shows no value");

      const shown = await reveal(lease.id, bot.key.secret);
      assert.equal(shown.statusCode, 200, shown.body);
      assert.equal(shown.headers["cache-control"], "no-store");
      assert.deepEqual(shown.json().data, [
        { secret_id: a.id, name: a.name, version: 1, value: a.value },
        { secret_id: b.id, name: b.name, version: 1, value: b.value },
      ]);
      // the value follows the secret: a new version is what the next use gets
      const next = `v-${randomBytes(8).toString("hex")}`;
      assert.equal((await t.call("PATCH", `/v1/orgs/${orgId}/secrets/${a.id}`, { value: next }, owner.access_token)).statusCode, 200);
      assert.deepEqual((await reveal(lease.id, bot.key.secret)).json().data[0], { secret_id: a.id, name: a.name, version: 2, value: next });

      // only the holder: a writer sees the lease but may not use it; the account's other credentials are not this key
      assertProblem(await reveal(lease.id, dev.access_token), 403, "SECRET_LEASE_NOT_HOLDER", "leaseId");
      assertProblem(await reveal(lease.id, owner.access_token), 403, "SECRET_LEASE_NOT_HOLDER", "leaseId");
      const other = await robot();
      assertProblem(await reveal(lease.id, other.key.secret), 403, "SECRET_LEASE_NOT_HOLDER", "leaseId");
      // a stranger and another org's path: 404
      assertProblem(await reveal(lease.id, stranger.access_token), 404, "NOT_FOUND");
      assertProblem(await reveal(lease.id, stranger.access_token, otherOrgId), 404, "SECRET_LEASE_NOT_FOUND", "leaseId");

      const got = await t.call("GET", leases(`/${lease.id}`), undefined, bot.key.secret);
      assert.equal(got.statusCode, 200, got.body);
      assert.equal(got.json().use_count, 2);
      assert.ok(got.json().last_used_at);
      const listed = await t.call("GET", leases(), undefined, bot.key.secret);
      assert.deepEqual(
        listed.json().items.map((x: { id: string }) => x.id),
        [lease.id],
        "a holder lists its own leases",
      );
      const all = await t.call("GET", leases(), undefined, dev.access_token);
      assert.ok(
        all.json().items.some((x: { id: string }) => x.id === lease.id),
        "secrets:write lists all of the org's",
      );

      const issued = (await events("secret_lease.issued")).filter((e) => e.targetId === lease.id);
      const used = (await events("secret_lease.used")).filter((e) => e.targetId === lease.id);
      assert.equal(issued.length, 1);
      assert.equal(used.length, 2);
      assert.deepEqual([issued[0].actorType, issued[0].actorId], ["api_key", bot.key.id]);
      assert.deepEqual((used[0].diff as { secret_ids: string[] }).secret_ids, [a.id, b.id]);
      const text = JSON.stringify([...issued, ...used]);
      assert.ok(!text.includes(a.value) && !text.includes(b.value) && !text.includes(next), "no value in the audit log");
    });

    it("the owner leases to a service account; the account's key uses it; a disabled account or a revoked key is refused by the spine", async () => {
      const s = await makeSecret({ team_id: teamId });
      const bot = await robot();
      const lease = await issue({ names: [s.name], team_id: teamId, holder: { type: "service_account", id: bot.id } }, owner.access_token);
      assert.deepEqual(lease.holder, { type: "service_account", id: bot.id });
      assert.equal((await reveal(lease.id, bot.key.secret)).json().data[0].value, s.value);
      assertProblem(await reveal(lease.id, owner.access_token), 403, "SECRET_LEASE_NOT_HOLDER");

      assert.equal((await t.call("POST", `/v1/orgs/${orgId}/service-accounts/${bot.id}/$disable`, undefined, owner.access_token)).statusCode, 200);
      assertProblem(await reveal(lease.id, bot.key.secret), 404, "NOT_FOUND");
      assert.equal((await t.call("POST", `/v1/orgs/${orgId}/service-accounts/${bot.id}/$enable`, undefined, owner.access_token)).statusCode, 200);
      assert.equal((await reveal(lease.id, bot.key.secret)).statusCode, 200);
      assert.equal((await t.call("DELETE", `/v1/orgs/${orgId}/keys/${bot.key.id}`, undefined, owner.access_token)).statusCode, 200);
      assert.equal((await reveal(lease.id, bot.key.secret)).statusCode, 401);
    });

    it("an expired lease serves nothing and cannot be renewed; renewal extends up to the cap and not beyond", async () => {
      const s = await makeSecret();
      const key = await makeKey(t, orgId, dev, { roles: ["developer"] });
      const lease = await issue({ secret_ids: [s.id], ttl_seconds: 30, max_ttl_seconds: 90 }, key.secret);
      clock.advance(20 * SECOND);
      const renewed = await t.call("POST", leases(`/${lease.id}/$renew`), { ttl_seconds: 30 }, key.secret);
      assert.equal(renewed.statusCode, 200, renewed.body);
      assert.equal(Date.parse(renewed.json().expires_at), clock.now().getTime() + 30 * SECOND);
      const capped = await t.call("POST", leases(`/${lease.id}/$renew`), { ttl_seconds: 3600 }, key.secret);
      assert.equal(capped.statusCode, 200, capped.body);
      assert.equal(capped.json().expires_at, lease.max_expires_at, "never past max_expires_at");
      assertProblem(await t.call("POST", leases(`/${lease.id}/$renew`), {}, dev.access_token), 403, "SECRET_LEASE_NOT_HOLDER");
      assert.equal((await events("secret_lease.renewed")).filter((e) => e.targetId === lease.id).length, 2);

      clock.advance(69 * SECOND);
      assert.equal((await reveal(lease.id, key.secret)).statusCode, 200, "still live just before its cap");
      clock.advance(1 * SECOND);
      assertProblem(await reveal(lease.id, key.secret), 410, "SECRET_LEASE_EXPIRED", "leaseId");
      assertProblem(await t.call("POST", leases(`/${lease.id}/$renew`), { ttl_seconds: 60 }, key.secret), 410, "SECRET_LEASE_EXPIRED");
      assert.equal((await t.call("GET", leases(`/${lease.id}`), undefined, key.secret)).json().status, "expired");
    });

    it("revoking stops the next use at once, on every instance; the holder or a writer revokes, nobody else sees it", async () => {
      const s = await makeSecret();
      const key = await makeKey(t, orgId, dev, { roles: ["developer"] });
      const second = await createTestApp({ backend, worker: false, clock, sameDatabaseAs: t });
      try {
        const lease = await issue({ secret_ids: [s.id] }, key.secret);
        assert.equal((await second.call("POST", leases(`/${lease.id}/reveal`), undefined, key.secret)).statusCode, 200);
        // a member with no write and no part in it: the lease does not exist for them
        await t.call(
          "POST",
          `/v1/orgs/${orgId}/grants`,
          { subject: { type: "user", id: viewer.id }, relation: "read", object: { type: "secret", id: s.id } },
          owner.access_token,
        );
        assertProblem(await t.call("DELETE", leases(`/${lease.id}`), undefined, viewer.access_token), 404, "SECRET_LEASE_NOT_FOUND");
        assert.equal((await t.call("DELETE", leases(`/${lease.id}`), undefined, key.secret)).statusCode, 204);
        assertProblem(await second.call("POST", leases(`/${lease.id}/reveal`), undefined, key.secret), 410, "SECRET_LEASE_REVOKED", "leaseId");
        assertProblem(await reveal(lease.id, key.secret), 410, "SECRET_LEASE_REVOKED");
        assertProblem(await t.call("POST", leases(`/${lease.id}/$renew`), {}, key.secret), 410, "SECRET_LEASE_REVOKED");
        assert.equal((await t.call("DELETE", leases(`/${lease.id}`), undefined, key.secret)).statusCode, 204, "revoking again changes nothing");
        assert.equal((await events("secret_lease.revoked")).filter((e) => e.targetId === lease.id).length, 1);

        const other = await issue({ secret_ids: [s.id] }, key.secret);
        assert.equal((await t.call("DELETE", leases(`/${other.id}`), undefined, dev.access_token)).statusCode, 204, "secrets:write revokes any lease");
        const got = await t.call("GET", leases(`/${other.id}`), undefined, key.secret);
        assert.deepEqual([got.json().status, got.json().revoked_by], ["revoked", dev.id]);
      } finally {
        await second.close();
      }
    });

    it("a deleted secret or a withdrawn grant stops the lease; a lease adds no authority", async () => {
      const gone = await makeSecret();
      const kept = await makeSecret();
      const key = await makeKey(t, orgId, dev, { roles: ["developer"] });
      const lease = await issue({ secret_ids: [kept.id, gone.id] }, key.secret);
      assert.equal((await t.call("DELETE", `/v1/orgs/${orgId}/secrets/${gone.id}`, undefined, owner.access_token)).statusCode, 204);
      const p = assertProblem(await reveal(lease.id, key.secret), 410, "SECRET_LEASE_SECRET_GONE", "leaseId");
      assert.ok(p.detail.includes(gone.id), p.detail);

      // a viewer reads one secret through a grant: it leases that one, and its lease ends with the grant
      const g = await t.call(
        "POST",
        `/v1/orgs/${orgId}/grants`,
        { subject: { type: "user", id: viewer.id }, relation: "read", object: { type: "secret", id: kept.id } },
        owner.access_token,
      );
      assert.equal(g.statusCode, 201, g.body);
      const mine = await issue({ secret_ids: [kept.id] }, viewer.access_token);
      assert.equal((await reveal(mine.id, viewer.access_token)).json().data[0].value, kept.value);
      assert.equal((await t.call("DELETE", `/v1/orgs/${orgId}/grants/${g.json().id}`, undefined, owner.access_token)).statusCode, 204);
      assertProblem(await reveal(mine.id, viewer.access_token), 403, "FORBIDDEN", { permission: "secrets:read" });
    });

    it("refuses a lease over a secret the caller (or the holder) cannot read, naming it, and creates nothing", async () => {
      const open = await makeSecret();
      const other = await makeSecret();
      const personal = await makeSecret({ user_id: owner.id });
      const before = await leaseCount();
      const g = await t.call(
        "POST",
        `/v1/orgs/${orgId}/grants`,
        { subject: { type: "user", id: viewer.id }, relation: "read", object: { type: "secret", id: open.id } },
        owner.access_token,
      );
      assert.equal(g.statusCode, 201, g.body);
      const p = assertProblem(await t.call("POST", leases(), { secret_ids: [open.id, other.id] }, viewer.access_token), 403, "FORBIDDEN", {
        permission: "secrets:read",
      });
      assert.ok(p.detail.includes(other.id), p.detail);
      // another member's personal secret does not exist for the developer
      assertProblem(await t.call("POST", leases(), { secret_ids: [open.id, personal.id] }, dev.access_token), 404, "SECRET_NOT_FOUND", "secret_ids.1");
      // the owner may read their personal secret; a service account holder may not
      const bot = await robot();
      assertProblem(
        await t.call("POST", leases(), { secret_ids: [personal.id], holder: { type: "service_account", id: bot.id } }, owner.access_token),
        403,
        "FORBIDDEN",
        "holder.id",
      );
      // a viewer without grants reads no secret at all
      const plain = await signUp(t, "Pat Plain");
      await addMember(t, orgId, plain, "viewer");
      assertProblem(await t.call("POST", leases(), { secret_ids: [open.id] }, plain.access_token), 403, "FORBIDDEN", { permission: "secrets:read" });
      assertProblem(await t.call("GET", leases(), undefined, plain.access_token), 403, "FORBIDDEN", { permission: "secrets:read" });
      assert.equal(await leaseCount(), before);
      assert.equal(await leaseCount(otherOrgId), 0);
    });

    it("bad input answers 4xx naming the field, and nothing is created", async () => {
      const s = await makeSecret();
      const foreign = await t.call("POST", `/v1/orgs/${otherOrgId}/secrets`, { name: uniqueName(), value: "theirs" }, stranger.access_token);
      assert.equal(foreign.statusCode, 201, foreign.body);
      const before = await leaseCount();
      const post = (body: unknown) => t.call("POST", leases(), body, dev.access_token);
      assertFieldError(await post({}), "secret_ids");
      assertFieldError(await post({ secret_ids: [] }), "secret_ids");
      assertFieldError(await post({ names: [] }), "names");
      assertFieldError(await post({ secret_ids: Array.from({ length: 101 }, (_, i) => `sec_${String(i).padStart(26, "0")}`) }), "secret_ids");
      const many = Array.from({ length: 60 }, (_, i) => `N_${i}`);
      assertFieldError(await post({ secret_ids: [s.id], names: many.concat(many.map((n) => `${n}_B`)).slice(0, 100) }), "secret_ids");
      assertFieldError(await post({ secret_ids: ["sec_nope"] }), "secret_ids.0");
      assertFieldError(await post({ secret_ids: [s.id], ttl_seconds: 0 }), "ttl_seconds");
      assertFieldError(await post({ secret_ids: [s.id], ttl_seconds: 3601 }), "ttl_seconds");
      assertFieldError(await post({ secret_ids: [s.id], max_ttl_seconds: 86_401 }), "max_ttl_seconds");
      assertFieldError(await post({ secret_ids: [s.id], ttl_seconds: 600, max_ttl_seconds: 300 }), "max_ttl_seconds");
      assertFieldError(await post({ secret_ids: [s.id], value: "x" }), "value");
      assertFieldError(await post({ names: ["lower"] }), "names.0");
      assertFieldError(await post({ secret_ids: [s.id], team_id: teamId }), "team_id");
      assertFieldError(await post({ secret_ids: [s.id], holder: { type: "user", id: stranger.id } }), "holder.id");
      assertFieldError(await post({ secret_ids: [s.id], holder: { type: "service_account", id: owner.id } }), "holder.id");
      assertProblem(await post({ names: [s.name, "NO_SUCH_SECRET"] }), 422, "SECRET_LEASE_UNKNOWN_NAME", "names.1");
      assertProblem(await post({ secret_ids: [foreign.json().id] }), 404, "SECRET_NOT_FOUND", "secret_ids.0");
      assertFieldError(await t.call("POST", leases("/sls_nope/reveal"), undefined, dev.access_token), "leaseId");
      assertFieldError(await t.call("POST", leases(`/sls_${"0".repeat(26)}/$renew`), { ttl_seconds: 1 }, dev.access_token), "ttl_seconds");
      assertProblem(await reveal(`sls_${"0".repeat(26)}`, dev.access_token), 404, "SECRET_LEASE_NOT_FOUND", "leaseId");
      assert.equal(await leaseCount(), before);
    });

    it("another org's leases do not exist here, and this org's not there", async () => {
      const s = await makeSecret();
      const lease = await issue({ secret_ids: [s.id] }, dev.access_token);
      for (const [method, path, body] of [
        ["GET", `/${lease.id}`, undefined],
        ["POST", `/${lease.id}/reveal`, undefined],
        ["POST", `/${lease.id}/$renew`, {}],
        ["DELETE", `/${lease.id}`, undefined],
      ] as const) {
        assertProblem(await t.call(method, leases(path, otherOrgId), body, stranger.access_token), 404, "SECRET_LEASE_NOT_FOUND", "leaseId");
        assertProblem(await t.call(method, leases(path), body, stranger.access_token), 404, "NOT_FOUND");
      }
      assert.deepEqual((await t.call("GET", leases("", otherOrgId), undefined, stranger.access_token)).json().items, []);
      assert.equal((await reveal(lease.id, dev.access_token)).statusCode, 200, "untouched");
    });
  });
}
