/**
 * GET /v1/orgs/{orgId}/secrets/resolve (issue 10): the values a consumer gets for (org, team, user), user over team
 * over org on a name clash with the source of each named, only what the caller reads, expired ones left out, one
 * audit event without values; bad input changes nothing and audits nothing.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { sql } from "drizzle-orm";
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

type Resolved = { name: string; value: string; source: { scope: string; secret_id: string; version: number; team_id?: string; user_id?: string } };

for (const backend of BACKENDS) {
  describe(`secrets resolve (${backend})`, () => {
    let t: TestApp;
    let owner: TestUser;
    let dev: TestUser;
    let viewer: TestUser;
    let stranger: TestUser;
    let orgId: string;
    let otherOrgId: string;
    let teamId: string;
    let otherTeamId: string;
    const ids: Record<string, string> = {};
    const tag = randomBytes(3).toString("hex").toUpperCase();
    const N = (name: string) => `${name}_${tag}`;

    before(async () => {
      t = await createTestApp({ backend, worker: false });
      owner = await signUp(t, "Olivia Owner");
      dev = await signUp(t, "Dana Dev");
      viewer = await signUp(t, "Vic Viewer");
      stranger = await signUp(t, "Sam Stranger");
      orgId = await makeOrg(t, owner, "Resolve Inc", uniqueSlug("res"));
      otherOrgId = await makeOrg(t, stranger, "Other Inc", uniqueSlug("res"));
      await addMember(t, orgId, dev, "developer");
      await addMember(t, orgId, viewer, "viewer");
      teamId = (await t.call("POST", `/v1/orgs/${orgId}/teams`, { name: "Platform" }, owner.access_token)).json().id;
      otherTeamId = (await t.call("POST", `/v1/orgs/${otherOrgId}/teams`, { name: "Theirs" }, stranger.access_token)).json().id;
      const make = async (key: string, body: Record<string, unknown>, by = owner) => {
        const res = await t.call("POST", `/v1/orgs/${orgId}/secrets`, body, by.access_token);
        assert.equal(res.statusCode, 201, res.body);
        ids[key] = res.json().id;
      };
      await make("orgA", { name: N("A"), value: "org-a" });
      await make("orgB", { name: N("B"), value: "org-b" });
      await make("orgC", { name: N("C"), value: "org-c" });
      await make("teamB", { name: N("B"), value: "team-b", team_id: teamId });
      await make("teamC", { name: N("C"), value: "team-c", team_id: teamId });
      await make("devC", { name: N("C"), value: "dev-c", user_id: dev.id }, dev);
      await make("ownerA", { name: N("A"), value: "owner-a", user_id: owner.id });
      // a later version is what resolves
      assert.equal((await t.call("PATCH", `/v1/orgs/${orgId}/secrets/${ids.orgA}`, { value: "org-a-2" }, owner.access_token)).statusCode, 200);
    });
    after(() => t.close());

    const resolve = (by: { access_token: string } | string, query = "", org = orgId) =>
      t.call("GET", `/v1/orgs/${org}/secrets/resolve${query}`, undefined, typeof by === "string" ? by : by.access_token);
    const mine = (res: { json(): { data: Resolved[] } }) => res.json().data.filter((d) => d.name.endsWith(`_${tag}`));
    const resolvedEvents = async () => (await t.deps.audit.list(orgId, {}, 1000)).filter((e) => e.action === "secrets.resolved");

    it("serves user over team over org, each value with its source, by name", async () => {
      const res = await resolve(dev, `?team_id=${teamId}&user_id=${dev.id}`);
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(res.headers["cache-control"], "no-store");
      assert.deepEqual(mine(res), [
        { name: N("A"), value: "org-a-2", source: { scope: "org", secret_id: ids.orgA, version: 2 } },
        { name: N("B"), value: "team-b", source: { scope: "team", secret_id: ids.teamB, version: 1, team_id: teamId } },
        { name: N("C"), value: "dev-c", source: { scope: "user", secret_id: ids.devC, version: 1, user_id: dev.id } },
      ]);
      // without the user, the team's value; without the team, the org's; personal ones only when asked for
      assert.deepEqual(
        mine(await resolve(dev, `?team_id=${teamId}`)).map((d) => [d.name, d.value]),
        [
          [N("A"), "org-a-2"],
          [N("B"), "team-b"],
          [N("C"), "team-c"],
        ],
      );
      assert.deepEqual(
        mine(await resolve(dev)).map((d) => d.value),
        ["org-a-2", "org-b", "org-c"],
      );
      // the owner's own personal A wins for the owner, and dev's C is never theirs
      assert.deepEqual(
        mine(await resolve(owner, `?user_id=${owner.id}`)).map((d) => d.value),
        ["owner-a", "org-b", "org-c"],
      );
    });

    it("is audited once per call with the ids served, never a value", async () => {
      const before = (await resolvedEvents()).length;
      const res = await resolve(dev, `?team_id=${teamId}&user_id=${dev.id}`);
      assert.equal(res.statusCode, 200, res.body);
      const events = await resolvedEvents();
      assert.equal(events.length, before + 1);
      const e = events.at(-1)!;
      assert.equal(e.targetId, orgId);
      const diff = e.diff as { count: number; team_id: string; user_id: string; secret_ids: string[] };
      assert.equal(diff.team_id, teamId);
      assert.equal(diff.user_id, dev.id);
      assert.equal(diff.count, res.json().data.length);
      for (const id of [ids.orgA, ids.teamB, ids.devC]) assert.ok(diff.secret_ids.includes(id), id);
      for (const id of [ids.orgB, ids.teamC, ids.orgC]) assert.ok(!diff.secret_ids.includes(id), `${id} was shadowed, not served`);
      const text = JSON.stringify(events);
      for (const value of ["org-a-2", "team-b", "dev-c", "org-b", "team-c"]) assert.ok(!text.includes(value), `${value} in the audit log`);
    });

    it("leaves expired secrets out (a shadowed name falls back to the broader scope)", async () => {
      const res = await t.call(
        "POST",
        `/v1/orgs/${orgId}/secrets`,
        { name: N("E"), value: "team-e", team_id: teamId, expires_at: new Date(Date.now() + 3_600_000).toISOString() },
        owner.access_token,
      );
      assert.equal(res.statusCode, 201, res.body);
      assert.equal((await t.call("POST", `/v1/orgs/${orgId}/secrets`, { name: N("E"), value: "org-e" }, owner.access_token)).statusCode, 201);
      assert.equal(mine(await resolve(dev, `?team_id=${teamId}`)).find((d) => d.name === N("E"))?.value, "team-e");
      await t.db.owner.execute(sql`update vault_secrets set expires_at = now() - interval '1 minute' where id = ${res.json().id}`);
      assert.equal(mine(await resolve(dev, `?team_id=${teamId}`)).find((d) => d.name === N("E"))?.value, "org-e");
    });

    it("serves a caller without secrets:read only what is shared with them; a narrowed key only what it reads", async () => {
      assertProblem(await resolve(viewer), 403, "FORBIDDEN", { permission: "secrets:read" });
      const grant = await t.call(
        "POST",
        `/v1/orgs/${orgId}/grants`,
        { subject: { type: "user", id: viewer.id }, relation: "read", object: { type: "secret", id: ids.orgB } },
        owner.access_token,
      );
      assert.equal(grant.statusCode, 201, grant.body);
      assert.deepEqual(
        mine(await resolve(viewer, `?team_id=${teamId}`)).map((d) => [d.name, d.value]),
        [[N("B"), "org-b"]],
        "the team's B is not shared: the org's shared B is what the viewer gets",
      );
      const key = await makeKey(t, orgId, dev, { permissions: ["org:read"] });
      assertProblem(await resolve(key.secret), 403, "FORBIDDEN", { permission: "secrets:read" });
    });

    it("refuses bad input with the field named, serving and auditing nothing", async () => {
      const before = (await resolvedEvents()).length;
      assertProblem(await resolve(dev, `?user_id=${owner.id}`), 403, "FORBIDDEN", "user_id");
      assertFieldError(await resolve(dev, `?team_id=${otherTeamId}`), "team_id");
      assertFieldError(await resolve(dev, "?team_id=team_nope"), "team_id");
      assertFieldError(await resolve(dev, "?user_id=sam"), "user_id");
      assertFieldError(await resolve(dev, "?team=x"), "team");
      assert.equal((await resolvedEvents()).length, before, "nothing audited");
      // another org's resolve is not the caller's
      assert.equal((await resolve(dev, "", otherOrgId)).statusCode, 404);
      assert.equal((await resolve(stranger)).statusCode, 404);
    });
  });
}
