import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { sql } from "drizzle-orm";
import { createManualClock } from "../../lib/clock.ts";
import { newId } from "../../lib/ids.ts";
import {
  BACKENDS,
  addMember,
  assertFieldError,
  createTestApp,
  makeOrg,
  problemOf,
  signUp,
  uniqueSlug,
  type TestApp,
  type TestUser,
} from "../../../test/harness.ts";

const objectId = (prefix: string) => newId("request").replace("req_", `${prefix}_`);
const doc = () => ({ type: "document", id: objectId("doc") });

for (const backend of BACKENDS) {
  describe(`access check, explain and expiry (${backend})`, () => {
    const clock = createManualClock();
    let t: TestApp;
    let owner: TestUser;
    let dev: TestUser; // developer
    let maint: TestUser; // viewer, maintainer of the root team
    let member: TestUser; // viewer, member of the leaf team
    let guest: TestUser; // custom role with org:read only
    let orgId: string;
    let root: string;
    let mid: string;
    let leaf: string;

    const call = (user: TestUser, path: string, body?: unknown, method = "POST") => t.call(method, `/v1/orgs/${orgId}${path}`, body, user.access_token);
    const checkAll = async (user: TestUser, checks: unknown[], subject?: unknown) => {
      const res = await call(user, "/access/check", { checks, ...(subject ? { subject } : {}) });
      assert.equal(res.statusCode, 200, res.body);
      return (res.json().results as { allowed: boolean }[]).map((r) => r.allowed);
    };
    const explain = async (user: TestUser, check: Record<string, unknown>, subject?: Record<string, unknown>) => {
      const res = await call(user, "/access/explain", { check, ...(subject ? { subject } : {}) });
      assert.equal(res.statusCode, 200, res.body);
      return res.json() as { allowed: boolean; permission: string; subject: { id: string }; steps: { kind: string; detail: string; grant_id?: string }[] };
    };

    before(async () => {
      t = await createTestApp({ backend, worker: false, clock });
      [owner, dev, maint, member, guest] = await Promise.all(["Owner", "Dev", "Maint", "Member", "Guest"].map((n) => signUp(t, n)));
      orgId = await makeOrg(t, owner, "Checks", uniqueSlug("checks"));
      await t.db.owner.execute(
        sql`insert into custom_roles (id, org_id, name, permissions) values (${newId("role")}, ${orgId}, 'guest', ARRAY['org:read']::text[])`,
      );
      for (const [u, role] of [
        [dev, "developer"],
        [maint, "viewer"],
        [member, "viewer"],
        [guest, "guest"],
      ] as const)
        await addMember(t, orgId, u, role);
      [root, mid, leaf] = [newId("team"), newId("team"), newId("team")];
      await t.db.owner.execute(sql`insert into teams (id, org_id, name, path) values (${root}, ${orgId}, 'Root', ARRAY[${root}]::text[])`);
      await t.db.owner.execute(
        sql`insert into teams (id, org_id, name, parent_id, path) values (${mid}, ${orgId}, 'Mid', ${root}, ARRAY[${root}, ${mid}]::text[])`,
      );
      await t.db.owner.execute(
        sql`insert into teams (id, org_id, name, parent_id, path) values (${leaf}, ${orgId}, 'Leaf', ${mid}, ARRAY[${root}, ${mid}, ${leaf}]::text[])`,
      );
      await t.db.owner.execute(
        sql`insert into team_members (team_id, org_id, user_id, role) values (${root}, ${orgId}, ${maint.id}, 'maintainer'), (${leaf}, ${orgId}, ${member.id}, 'member')`,
      );
      await t.deps.access.invalidate(orgId);
    });
    after(() => t.close());

    it("answers a batch in order: role permissions, relations through RBAC, teams and grants", async () => {
      const d = doc();
      assert.equal((await call(owner, "/grants", { subject: { type: "team", id: mid }, relation: "write", object: d })).statusCode, 201);
      const secret = { type: "secret", id: objectId("sec") };
      const checks = [
        { permission: "secrets:read" },
        { permission: "members:remove" },
        { relation: "read", object: secret },
        { relation: "write", object: secret },
        { relation: "delete", object: secret },
        { relation: "write", object: d },
        { relation: "read", object: { type: "team", id: leaf } },
        { relation: "admin", object: { type: "team", id: leaf } },
      ];
      assert.deepEqual(await checkAll(dev, checks), [true, false, true, true, false, false, true, false]);
      // a grant to the mid team reaches the leaf team's member; the leaf's member reads it; the root's maintainer administers every team below
      assert.deepEqual(await checkAll(member, checks), [false, false, false, false, false, true, true, false]);
      assert.deepEqual(await checkAll(maint, checks), [false, false, false, false, false, false, true, true]);
      assert.deepEqual(await checkAll(guest, checks), [false, false, false, false, false, false, false, false]);
      const res = await call(dev, "/access/check", { checks: checks.slice(0, 3) });
      assert.deepEqual(res.json().subject, { type: "user", id: dev.id });
      assert.deepEqual(
        res.json().results.map((r: Record<string, unknown>) => ({ ...r, reason: typeof r.reason })),
        [
          { allowed: true, permission: "secrets:read", reason: "string" },
          { allowed: false, permission: "members:remove", reason: "string" },
          { allowed: true, relation: "read", object: secret, reason: "string" },
        ],
      );
    });

    it("takes 1 to 100 checks: 100 pass, 101 and 0 are 400 naming checks", async () => {
      const hundred = Array.from({ length: 100 }, (_, i) => (i % 2 ? { permission: "org:read" } : { relation: "read", object: doc() }));
      const results = await checkAll(dev, hundred);
      assert.equal(results.length, 100);
      assert.deepEqual(results.slice(0, 4), [false, true, false, true]);
      assertFieldError(await call(dev, "/access/check", { checks: [...hundred, { permission: "org:read" }] }), "checks");
      assertFieldError(await call(dev, "/access/check", { checks: [] }), "checks");
    });

    const badChecks: [string, unknown, string][] = [
      ["an empty check", {}, "checks.0.permission"],
      ["a permission and a relation", { permission: "org:read", relation: "read", object: { type: "document", id: objectId("doc") } }, "checks.0.relation"],
      ["a relation without object", { relation: "read" }, "checks.0.object"],
      ["an object without relation", { object: { type: "document", id: objectId("doc") } }, "checks.0.relation"],
      ["an unknown permission", { permission: "secrets:steal" }, "checks.0.permission"],
      ["an unknown relation", { relation: "execute", object: { type: "document", id: objectId("doc") } }, "checks.0.relation"],
      ["an unknown object type", { relation: "read", object: { type: "planet", id: objectId("doc") } }, "checks.0.object.type"],
      ["a malformed object id", { relation: "read", object: { type: "document", id: "1 or 1=1" } }, "checks.0.object.id"],
      ["an unknown field", { permission: "org:read", as: "admin" }, "checks.0.as"],
    ];
    for (const [label, check, field] of badChecks) {
      it(`POST /access/check refuses ${label} with 400 naming ${field}`, async () => {
        assertFieldError(await call(dev, "/access/check", { checks: [check] }), field);
      });
    }

    it("checks for another member need grants:read; a non-member subject is 400 naming subject.id", async () => {
      assert.deepEqual(await checkAll(owner, [{ permission: "secrets:read" }, { permission: "org:read" }], { type: "user", id: guest.id }), [false, true]);
      assert.deepEqual(await checkAll(member, [{ permission: "secrets:read" }], { type: "user", id: dev.id }), [true], "a viewer holds grants:read");
      const res = await call(guest, "/access/check", { checks: [{ permission: "org:read" }], subject: { type: "user", id: dev.id } });
      assert.equal(res.statusCode, 403, res.body);
      assert.equal((problemOf(res) as { permission?: string }).permission, "grants:read");
      assert.deepEqual(await checkAll(guest, [{ permission: "org:read" }], { type: "user", id: guest.id }), [true], "oneself needs nothing more");
      assertFieldError(
        await call(owner, "/access/check", { checks: [{ permission: "org:read" }], subject: { type: "user", id: newId("user") } }),
        "subject.id",
      );
      assertFieldError(await call(owner, "/access/check", { checks: [{ permission: "org:read" }], subject: { type: "team", id: leaf } }), "subject.type");
      const explained = await call(guest, "/access/explain", { check: { permission: "org:read" }, subject: { type: "user", id: dev.id } });
      assert.equal(explained.statusCode, 403);
    });

    it("explain shows the path: role, peer grant, team grant, maintainer, team membership, default", async () => {
      const role = await explain(dev, { permission: "secrets:read" });
      assert.equal(role.allowed, true);
      assert.deepEqual(
        role.steps.map((s) => s.kind),
        ["membership", "role"],
      );
      assert.match(role.steps[1].detail, /developer grants secrets:read/);

      const [peer] = (await call(dev, "/peer-grants", { grantee_id: guest.id, permissions: ["keys:create"] })).json().items;
      const viaPeer = await explain(guest, { permission: "keys:create" });
      assert.deepEqual(
        viaPeer.steps.map((s) => [s.kind, s.grant_id]),
        [
          ["membership", undefined],
          ["role", undefined],
          ["peer_grant", peer.id],
        ],
      );
      assert.match(viaPeer.steps[2].detail, new RegExp(dev.id));

      const d = doc();
      const g = (await call(owner, "/grants", { subject: { type: "team", id: root }, relation: "admin", object: d })).json();
      const viaTeam = await explain(member, { relation: "write", object: d });
      assert.equal(viaTeam.allowed, true);
      const last = viaTeam.steps[viaTeam.steps.length - 1];
      assert.deepEqual([last.kind, last.grant_id], ["grant", g.id]);
      assert.match(last.detail, /above a team you are in/);
      assert.match(last.detail, /admin includes write/);

      const viaMaintainer = await explain(maint, { relation: "admin", object: { type: "team", id: leaf } });
      assert.deepEqual(
        viaMaintainer.steps.map((s) => s.kind),
        ["membership", "maintainer"],
      );
      // the guest's role cannot read teams, but a team's members read it
      await t.db.owner.execute(sql`insert into team_members (team_id, org_id, user_id, role) values (${leaf}, ${orgId}, ${guest.id}, 'member')`);
      await t.deps.access.invalidate(orgId);
      const viaTeamMember = await explain(guest, { relation: "read", object: { type: "team", id: leaf } });
      assert.deepEqual(
        viaTeamMember.steps.map((s) => s.kind),
        ["membership", "team"],
      );
      assert.equal((await explain(guest, { relation: "read", object: { type: "team", id: mid } })).allowed, false, "not the parent team");
      await t.db.owner.execute(sql`delete from team_members where team_id = ${leaf} and user_id = ${guest.id}`);
      await t.deps.access.invalidate(orgId);

      const denied = await explain(guest, { relation: "read", object: d });
      assert.equal(denied.allowed, false);
      assert.equal(denied.permission, "read");
      assert.equal(denied.steps.at(-1)?.kind, "default");
      const other = await explain(owner, { relation: "read", object: d }, { type: "user", id: member.id });
      assert.deepEqual([other.allowed, other.subject.id], [true, member.id]);
      assertFieldError(await call(dev, "/access/explain", {}), "check");
      assertFieldError(await call(dev, "/access/explain", { check: {} }), "check.permission");
      assertFieldError(await call(dev, "/access/explain", { check: { relation: "read" } }), "check.object");
      assertFieldError(await call(dev, "/access/explain", { check: { permission: "org:read" }, checks: [] }), "checks");
    });

    it("an expired share grant stops counting without any job or invalidation, and its tuple can be granted again", async () => {
      const d = doc();
      const g = (
        await call(owner, "/grants", {
          subject: { type: "user", id: guest.id },
          relation: "read",
          object: d,
          expires_at: new Date(clock.now().getTime() + 60_000).toISOString(),
        })
      ).json();
      assert.deepEqual(await checkAll(guest, [{ relation: "read", object: d }]), [true]); // cached now, until the expiry
      clock.advance(59_000);
      assert.deepEqual(await checkAll(guest, [{ relation: "read", object: d }]), [true]);
      clock.advance(1_000);
      assert.deepEqual(await checkAll(guest, [{ relation: "read", object: d }]), [false], "expired exactly at expires_at");
      assert.equal((await explain(guest, { relation: "read", object: d })).steps.at(-1)?.kind, "default");
      // listed as expired only on request
      assert.deepEqual((await call(owner, `/grants?object_id=${d.id}`, undefined, "GET")).json().items, []);
      const all = (await call(owner, `/grants?object_id=${d.id}&include_expired=true`, undefined, "GET")).json().items;
      assert.deepEqual(
        all.map((x: { id: string; expired: boolean }) => [x.id, x.expired]),
        [[g.id, true]],
      );
      // the same tuple again replaces the expired grant
      const again = await call(owner, "/grants", { subject: { type: "user", id: guest.id }, relation: "read", object: d });
      assert.equal(again.statusCode, 201, again.body);
      const [ev] = await t.deps.audit.list(orgId, { action: "grant.created" }, 1);
      assert.deepEqual((ev.diff as Record<string, unknown>).replaces, [g.id, null]);
      assert.deepEqual(await checkAll(guest, [{ relation: "read", object: d }]), [true]);
    });

    it("an expired peer grant stops counting too, and a sharer's limited access limits what they share", async () => {
      const [p] = (
        await call(dev, "/peer-grants", {
          grantee_id: guest.id,
          permissions: ["conversations:read"],
          expires_at: new Date(clock.now().getTime() + 30_000).toISOString(),
        })
      ).json().items;
      assert.deepEqual(
        await checkAll(guest, [{ permission: "conversations:read" }, { relation: "read", object: { type: "conversation", id: objectId("cnv") } }]),
        [true, true],
      );
      clock.advance(30_001);
      assert.deepEqual(
        await checkAll(guest, [{ permission: "conversations:read" }, { relation: "read", object: { type: "conversation", id: objectId("cnv") } }]),
        [false, false],
      );
      const received = (await call(guest, "/peer-grants?direction=received&include_expired=true", undefined, "GET")).json().items;
      assert.ok(received.some((x: { id: string; expired: boolean }) => x.id === p.id && x.expired));
      assert.ok(!(await call(guest, "/peer-grants?direction=received", undefined, "GET")).json().items.some((x: { id: string }) => x.id === p.id));
    });

    it("a request whose requested end has passed cannot be approved as asked (409), only narrowed to nothing", async () => {
      const r = (
        await call(guest, "/grant-requests", {
          grantor_id: dev.id,
          permissions: ["keys:read"],
          expires_at: new Date(clock.now().getTime() + 10_000).toISOString(),
        })
      ).json();
      clock.advance(10_000);
      const res = await call(dev, `/grant-requests/${r.id}/approve`, {});
      assert.equal(res.statusCode, 409, res.body);
      assert.equal(problemOf(res).code, "GRANT_REQUEST_EXPIRED");
      assert.equal((await call(dev, `/grant-requests/${r.id}/deny`, {})).statusCode, 200, "it can still be denied");
    });
  });
}
