import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { sql } from "drizzle-orm";
import { newId } from "../../lib/ids.ts";
import {
  BACKENDS,
  addMember,
  assertFieldError,
  assertProblem,
  createTestApp,
  makeKey,
  makeOrg,
  problemOf,
  signUp,
  uniqueSlug,
  type TestApp,
  type TestUser,
} from "../../../test/harness.ts";

const doc = () => ({ type: "document", id: newId("request").replace("req_", "doc_") });
const inDays = (d: number) => new Date(Date.now() + d * 86_400_000).toISOString();

for (const backend of BACKENDS) {
  describe(`grants, peer grants and grant requests (${backend})`, () => {
    let t: TestApp;
    let alice: TestUser; // owner
    let bob: TestUser; // developer
    let carol: TestUser; // viewer
    let dave: TestUser; // viewer
    let eve: TestUser; // a member of her own org only
    let orgId: string;
    let otherOrg: string;
    let team: string;
    let subTeam: string;
    let foreignTeam: string;

    const call = (user: TestUser, method: string, path: string, body?: unknown) => t.call(method, `/v1/orgs/${orgId}${path}`, body, user.access_token);
    const share = (user: TestUser, body: Record<string, unknown>) => call(user, "POST", "/grants", body);
    const allowed = async (user: TestUser, check: Record<string, unknown>) => {
      const res = await call(user, "POST", "/access/check", { checks: [check] });
      assert.equal(res.statusCode, 200, res.body);
      return res.json().results[0].allowed as boolean;
    };
    const events = async (action?: string) => await t.deps.audit.list(orgId, { action }, 1000);
    const grantCount = async () =>
      Number(
        ((await t.db.owner.execute(sql`select count(*)::int as n from grants where org_id = ${orgId}`)) as unknown as { rows: { n: number }[] }).rows[0].n,
      );

    before(async () => {
      t = await createTestApp({ backend, worker: false });
      [alice, bob, carol, dave, eve] = await Promise.all(["Alice", "Bob", "Carol", "Dave", "Eve"].map((n) => signUp(t, n)));
      orgId = await makeOrg(t, alice, "Grants", uniqueSlug("grants"));
      for (const [u, role] of [
        [bob, "developer"],
        [carol, "viewer"],
        [dave, "viewer"],
      ] as const)
        await addMember(t, orgId, u, role);
      team = newId("team");
      subTeam = newId("team");
      await t.db.owner.execute(sql`insert into teams (id, org_id, name, path) values (${team}, ${orgId}, 'Platform', ARRAY[${team}]::text[])`);
      await t.db.owner.execute(
        sql`insert into teams (id, org_id, name, parent_id, path) values (${subTeam}, ${orgId}, 'Runtime', ${team}, ARRAY[${team}, ${subTeam}]::text[])`,
      );
      await t.db.owner.execute(sql`insert into team_members (team_id, org_id, user_id, role) values (${subTeam}, ${orgId}, ${carol.id}, 'member')`);
      otherOrg = await makeOrg(t, dave, "Other", uniqueSlug("other"));
      foreignTeam = newId("team");
      await t.db.owner.execute(sql`insert into teams (id, org_id, name, path) values (${foreignTeam}, ${otherOrg}, 'Foreign', ARRAY[${foreignTeam}]::text[])`);
      await t.deps.access.invalidate(orgId);
    });
    after(() => t.close());

    it("an owner shares read on a document with a member: 201, audited, readable, listed and fetched", async () => {
      const d = doc();
      assert.equal(await allowed(carol, { relation: "read", object: d }), false);
      const res = await share(alice, { subject: { type: "user", id: carol.id }, relation: "read", object: d });
      assert.equal(res.statusCode, 201, res.body);
      const g = res.json();
      assert.match(g.id, /^grt_[0-9a-z]{26}$/);
      assert.deepEqual(
        { ...g, id: undefined, created_at: undefined },
        {
          id: undefined,
          created_at: undefined,
          kind: "share",
          subject: { type: "user", id: carol.id },
          relation: "read",
          object: d,
          granted_by: alice.id,
          expires_at: null,
          expired: false,
        },
      );
      assert.equal(await allowed(carol, { relation: "read", object: d }), true, "the very next check sees it");
      assert.equal(await allowed(carol, { relation: "list", object: d }), true, "read includes list");
      assert.equal(await allowed(carol, { relation: "write", object: d }), false);
      assert.equal(await allowed(dave, { relation: "read", object: d }), false, "only the subject");
      const [ev] = await events("grant.created");
      assert.equal(ev.targetId, g.id);
      assert.equal(ev.actorId, alice.id);
      assert.deepEqual(ev.diff, {
        subject: [null, `user:${carol.id}`],
        relation: [null, "read"],
        object: [null, `document:${d.id}`],
        expires_at: [null, null],
      });
      const got = await call(dave, "GET", `/grants/${g.id}`);
      assert.equal(got.statusCode, 200, got.body);
      assert.deepEqual(got.json(), g);
      const listed = await call(dave, "GET", `/grants?object_type=document&object_id=${d.id}`);
      assert.deepEqual(listed.json(), { items: [g], next_cursor: null });
      assert.deepEqual((await call(dave, "GET", `/grants?subject_type=user&subject_id=${carol.id}&kind=share&object_id=${d.id}`)).json().items, [g]);
      assert.deepEqual((await call(dave, "GET", `/grants?kind=peer&object_id=${d.id}`)).json().items, []);
      assert.equal((await call(dave, "GET", `/grants/${newId("grant")}`)).statusCode, 404);
    });

    it("lists grants newest first with cursor pagination, and refuses a foreign cursor", async () => {
      const d = doc();
      const ids: string[] = [];
      for (const rel of ["list", "read", "write"]) ids.push((await share(alice, { subject: { type: "org" }, relation: rel, object: d })).json().id);
      const p1 = (await call(carol, "GET", `/grants?object_id=${d.id}&limit=2`)).json();
      assert.deepEqual(
        p1.items.map((g: { id: string }) => g.id),
        [ids[2], ids[1]],
      );
      assert.ok(p1.next_cursor);
      const p2 = (await call(carol, "GET", `/grants?object_id=${d.id}&limit=2&cursor=${p1.next_cursor}`)).json();
      assert.deepEqual(
        p2.items.map((g: { id: string }) => g.id),
        [ids[0]],
      );
      assert.equal(p2.next_cursor, null);
      assertFieldError(await call(carol, "GET", `/grants?cursor=${Buffer.from("42").toString("base64url")}`), "cursor");
      assertFieldError(await call(carol, "GET", "/grants?kind=other"), "kind");
      assertFieldError(await call(carol, "GET", "/grants?limit=0"), "limit");
    });

    it("a resource can have several owners at once: its creator, a team (reaching sub-teams) and the org", async () => {
      const d = doc();
      const asCreator = await share(alice, { subject: { type: "user", id: bob.id }, relation: "owner", object: d });
      const asTeam = await share(alice, { subject: { type: "team", id: team }, relation: "owner", object: d });
      assert.equal(asCreator.statusCode, 201, asCreator.body);
      assert.equal(asTeam.statusCode, 201, asTeam.body);
      assert.equal(await allowed(bob, { relation: "owner", object: d }), true, "the creator");
      assert.equal(await allowed(carol, { relation: "owner", object: d }), true, "a member of a sub-team of the owning team");
      assert.equal(await allowed(dave, { relation: "owner", object: d }), false);
      const asOrg = await share(alice, { subject: { type: "org", id: orgId }, relation: "owner", object: d });
      assert.equal(asOrg.statusCode, 201, asOrg.body);
      assert.equal(await allowed(dave, { relation: "owner", object: d }), true, "every member, once the org owns it");
      const owners = (await call(dave, "GET", `/grants?object_id=${d.id}`)).json().items.filter((g: { relation: string }) => g.relation === "owner");
      assert.deepEqual(
        owners.map((g: { subject: unknown }) => g.subject).sort((a: { type: string }, b: { type: string }) => a.type.localeCompare(b.type)),
        [
          { type: "org", id: orgId },
          { type: "team", id: team },
          { type: "user", id: bob.id },
        ],
      );
      // an owner may make another owner; removing one owner leaves the others
      const more = await share(bob, { subject: { type: "user", id: dave.id }, relation: "owner", object: d });
      assert.equal(more.statusCode, 201, more.body);
      assert.equal((await call(alice, "DELETE", `/grants/${asTeam.json().id}`)).statusCode, 204);
      assert.equal(await allowed(carol, { relation: "owner", object: d }), true, "still an owner through the org");
      assert.equal((await call(alice, "DELETE", `/grants/${asOrg.json().id}`)).statusCode, 204);
      assert.equal(await allowed(carol, { relation: "owner", object: d }), false);
      assert.equal(await allowed(bob, { relation: "owner", object: d }), true);
      assert.equal(await allowed(dave, { relation: "owner", object: d }), true);
    });

    it("without grants:manage, a member shares only with share on the object, and only what they hold themselves", async () => {
      const d = doc();
      const before = await grantCount();
      assertProblem(await share(bob, { subject: { type: "user", id: carol.id }, relation: "read", object: d }), 403, "FORBIDDEN", {
        permission: "grants:manage",
      });
      assert.equal((await share(alice, { subject: { type: "user", id: bob.id }, relation: "share", object: d })).statusCode, 201);
      const read = await share(bob, { subject: { type: "user", id: carol.id }, relation: "read", object: d });
      assert.equal(read.statusCode, 201, "share includes read");
      assert.equal(read.json().granted_by, bob.id);
      assertProblem(await share(bob, { subject: { type: "user", id: carol.id }, relation: "write", object: d }), 403, "FORBIDDEN", {
        permission: "grants:manage",
      });
      assertProblem(await share(bob, { subject: { type: "user", id: carol.id }, relation: "admin", object: d }), 403, "FORBIDDEN", {
        permission: "grants:manage",
      });
      const owner = await share(bob, { subject: { type: "user", id: carol.id }, relation: "owner", object: d });
      assertProblem(owner, 403, "FORBIDDEN", { permission: "grants:manage" });
      assert.match(problemOf(owner).detail, /owner/);
      assert.equal((await share(alice, { subject: { type: "user", id: bob.id }, relation: "write", object: d })).statusCode, 201);
      assert.equal((await share(bob, { subject: { type: "user", id: carol.id }, relation: "write", object: d })).statusCode, 201, "now bob holds write");
      // carol holds read and write but not share: she cannot pass them on
      assertProblem(await share(carol, { subject: { type: "user", id: dave.id }, relation: "read", object: d }), 403, "FORBIDDEN", {
        permission: "grants:manage",
      });
      assert.equal(await grantCount(), before + 4);
    });

    it("a grant never outlives the time-limited share that allowed it", async () => {
      const d = doc();
      const until = inDays(1);
      assert.equal((await share(alice, { subject: { type: "user", id: bob.id }, relation: "share", object: d, expires_at: until })).statusCode, 201);
      const later = await share(bob, { subject: { type: "user", id: carol.id }, relation: "read", object: d, expires_at: inDays(2) });
      assertFieldError(later, "expires_at");
      const capped = await share(bob, { subject: { type: "user", id: carol.id }, relation: "read", object: d });
      assert.equal(capped.statusCode, 201, capped.body);
      assert.equal(capped.json().expires_at, new Date(until).toISOString(), "no expiry asked: it ends with bob's share");
      const sooner = inDays(0.5);
      const ok = await share(bob, { subject: { type: "user", id: dave.id }, relation: "read", object: d, expires_at: sooner });
      assert.equal(ok.json().expires_at, new Date(sooner).toISOString());
      // and grants:manage received as a time-limited peer grant makes grants that end with it
      const managerUntil = inDays(1.5);
      const [pg] = (await call(alice, "POST", "/peer-grants", { grantee_id: bob.id, permissions: ["grants:manage"], expires_at: managerUntil })).json().items;
      const byManager = await share(bob, { subject: { type: "user", id: dave.id }, relation: "admin", object: doc() });
      assert.equal(byManager.statusCode, 201, byManager.body);
      assert.equal(byManager.json().expires_at, new Date(managerUntil).toISOString());
      assert.equal((await call(alice, "DELETE", `/peer-grants/${pg.id}`)).statusCode, 204);
    });

    it("teams: a grant to a team reaches its sub-teams' members; a team object must exist in this org", async () => {
      const res = await share(alice, { subject: { type: "team", id: team }, relation: "write", object: { type: "team", id: subTeam } });
      assert.equal(res.statusCode, 201, res.body);
      assert.equal(await allowed(carol, { relation: "write", object: { type: "team", id: subTeam } }), true);
      assertFieldError(
        await share(alice, { subject: { type: "user", id: carol.id }, relation: "read", object: { type: "team", id: foreignTeam } }),
        "object.id",
      );
      assertFieldError(
        await share(alice, { subject: { type: "user", id: carol.id }, relation: "read", object: { type: "team", id: newId("team") } }),
        "object.id",
      );
      assertFieldError(await share(alice, { subject: { type: "user", id: carol.id }, relation: "read", object: { type: "team", id: doc().id } }), "object.id");
    });

    const badGrants: [string, () => Record<string, unknown>, string][] = [
      ["a user who is not a member", () => ({ subject: { type: "user", id: newId("user") } }), "subject.id"],
      ["a member of another org only", () => ({ subject: { type: "user", id: eve.id } }), "subject.id"],
      ["a team of another org", () => ({ subject: { type: "team", id: foreignTeam } }), "subject.id"],
      ["another org", () => ({ subject: { type: "org", id: otherOrg } }), "subject.id"],
      ["a team id for a user", () => ({ subject: { type: "user", id: team } }), "subject.id"],
      ["a user without id", () => ({ subject: { type: "user" } }), "subject.id"],
      ["an unknown subject type", () => ({ subject: { type: "group", id: team } }), "subject.type"],
      ["a malformed subject id", () => ({ subject: { type: "user", id: "usr_x" } }), "subject.id"],
      ["an unknown relation", () => ({ relation: "execute" }), "relation"],
      ["an unknown object type", () => ({ object: { type: "planet", id: doc().id } }), "object.type"],
      ["a malformed object id", () => ({ object: { type: "document", id: "../etc" } }), "object.id"],
      ["an expiry in the past", () => ({ expires_at: new Date(Date.now() - 1000).toISOString() }), "expires_at"],
      ["a malformed expiry", () => ({ expires_at: "tomorrow" }), "expires_at"],
      ["an unknown field", () => ({ kind: "peer" }), "kind"],
      ["a missing object", () => ({ object: undefined }), "object"],
    ];
    for (const [label, patch, field] of badGrants) {
      it(`POST /grants refuses ${label} with 400 naming ${field}, changing nothing`, async () => {
        const before = [await grantCount(), (await events()).length];
        const body: Record<string, unknown> = { subject: { type: "user", id: carol.id }, relation: "read", object: doc(), ...patch() };
        for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
        assertFieldError(await share(alice, body), field);
        assert.deepEqual([await grantCount(), (await events()).length], before);
      });
    }

    it("the same subject, relation and object twice: 409 GRANT_EXISTS, nothing written", async () => {
      const body = { subject: { type: "user", id: carol.id }, relation: "read", object: doc() };
      const first = await share(alice, body);
      assert.equal(first.statusCode, 201);
      const n = (await events()).length;
      const again = await share(alice, { ...body, expires_at: inDays(3) });
      assert.equal(again.statusCode, 409, again.body);
      assert.equal(problemOf(again).code, "GRANT_EXISTS");
      assert.match(problemOf(again).detail, new RegExp(first.json().id));
      assert.equal((await events()).length, n);
      const racing = await Promise.all([0, 1].map(() => share(alice, { ...body, object: { type: "document", id: doc().id } })));
      assert.equal(racing.filter((r) => r.statusCode === 201).length, 2, "different objects do not collide");
      const same = doc();
      const race = await Promise.all([0, 1, 2].map(() => share(alice, { ...body, object: same })));
      assert.deepEqual(race.map((r) => r.statusCode).sort(), [201, 409, 409]);
    });

    it("DELETE /grants: revoked at once and audited; a sharer may revoke what they could give; others get 403", async () => {
      const d = doc();
      const g = (await share(alice, { subject: { type: "user", id: carol.id }, relation: "write", object: d })).json();
      assert.equal(await allowed(carol, { relation: "write", object: d }), true);
      assertProblem(await call(carol, "DELETE", `/grants/${g.id}`), 403, "FORBIDDEN", { permission: "grants:manage" });
      assertProblem(await call(bob, "DELETE", `/grants/${g.id}`), 403, "FORBIDDEN", { permission: "grants:manage" });
      assert.equal((await share(alice, { subject: { type: "user", id: bob.id }, relation: "share", object: d })).statusCode, 201);
      assertProblem(await call(bob, "DELETE", `/grants/${g.id}`), 403, "FORBIDDEN", { permission: "grants:manage" }); // share, but not write
      const r = (await share(bob, { subject: { type: "user", id: dave.id }, relation: "read", object: d })).json();
      assert.equal((await call(bob, "DELETE", `/grants/${r.id}`)).statusCode, 204, "bob could give it, so bob may take it back");
      const del = await call(alice, "DELETE", `/grants/${g.id}`);
      assert.equal(del.statusCode, 204, del.body);
      assert.equal(await allowed(carol, { relation: "write", object: d }), false, "denied on the very next request");
      const [ev] = await events("grant.revoked");
      assert.equal(ev.targetId, g.id);
      assert.deepEqual(ev.diff, {
        subject: [`user:${carol.id}`, null],
        relation: ["write", null],
        object: [`document:${d.id}`, null],
        expires_at: [null, null],
      });
      const again = await call(alice, "DELETE", `/grants/${g.id}`);
      assert.equal(again.statusCode, 404);
      assert.equal(problemOf(again).code, "GRANT_NOT_FOUND");
      assertProblem(await call(carol, "DELETE", `/grants/${newId("grant")}`), 403, "FORBIDDEN", { permission: "grants:manage" });
      assertFieldError(await call(alice, "DELETE", "/grants/team_x"), "grantId");
    });

    describe("peer grants", () => {
      it("a member passes a permission their role gives to another member: 201, audited, effective, listed", async () => {
        assert.equal(await allowed(carol, { permission: "secrets:read" }), false);
        const res = await call(bob, "POST", "/peer-grants", {
          grantee_id: carol.id,
          permissions: ["secrets:read", "conversations:write"],
          expires_at: inDays(7),
        });
        assert.equal(res.statusCode, 201, res.body);
        const items = res.json().items as { id: string; grantor_id: string; grantee_id: string; permission: string; expires_at: string }[];
        assert.deepEqual(
          items.map((g) => [g.grantor_id, g.grantee_id, g.permission]),
          [
            [bob.id, carol.id, "secrets:read"],
            [bob.id, carol.id, "conversations:write"],
          ],
        );
        assert.equal(await allowed(carol, { permission: "secrets:read" }), true);
        assert.equal(
          await allowed(carol, { relation: "read", object: { type: "secret", id: doc().id.replace("doc_", "sec_") } }),
          true,
          "RBAC through a peer grant reaches resources",
        );
        const evs = await events("peer_grant.created");
        const ev = evs.find((e) => e.targetId === items[0].id);
        assert.deepEqual(ev?.diff, { grantee_id: [null, carol.id], permission: [null, "secrets:read"], expires_at: [null, items[0].expires_at] });
        assert.equal(ev?.actorId, bob.id);
        const given = (await call(bob, "GET", "/peer-grants?direction=given")).json().items.map((g: { id: string }) => g.id);
        const received = (await call(carol, "GET", "/peer-grants?direction=received")).json().items.map((g: { id: string }) => g.id);
        for (const g of items) assert.ok(given.includes(g.id) && received.includes(g.id));
        assert.deepEqual((await call(carol, "GET", "/peer-grants?direction=given")).json().items, []);
        assert.deepEqual((await call(dave, "GET", "/peer-grants")).json().items, [], "nobody else's");
        const all = await call(dave, "GET", `/grants?kind=peer&subject_id=${carol.id}`);
        assert.equal(all.json().items.length, 2, "grants:read lists every peer grant");
        assert.deepEqual(all.json().items[0].object, { type: "org", id: orgId });
      });

      it("a peer grant counts only while its grantor's role still holds the permission: demoting the grantor ends it", async () => {
        const [gina, hal] = await Promise.all([signUp(t, "Gina"), signUp(t, "Hal")]);
        for (const [u, role] of [
          [gina, "developer"],
          [hal, "viewer"],
        ] as const)
          await addMember(t, orgId, u, role);
        const res = await call(gina, "POST", "/peer-grants", { grantee_id: hal.id, permissions: ["secrets:write"] });
        assert.equal(res.statusCode, 201, res.body);
        assert.equal(await allowed(hal, { permission: "secrets:write" }), true);
        // the owner makes the grantor a viewer (no secrets:write): what she gave is no longer more than she holds
        const demoted = await call(alice, "PATCH", `/members/${gina.id}`, { role: "viewer" });
        assert.equal(demoted.statusCode, 200, demoted.body);
        assert.equal(await allowed(hal, { permission: "secrets:write" }), false, "the very next check is denied");
        const explained = await call(hal, "POST", "/access/explain", { check: { permission: "secrets:write" } });
        assert.equal(explained.json().allowed, false, explained.body);
        // promoted back, the grant (never deleted) counts again
        assert.equal((await call(alice, "PATCH", `/members/${gina.id}`, { role: "developer" })).statusCode, 200);
        assert.equal(await allowed(hal, { permission: "secrets:write" }), true);
      });

      it("only what the grantor's ROLE gives: not more, and not peer grants they received (403 naming every missing permission)", async () => {
        assertProblem(
          await call(bob, "POST", "/peer-grants", { grantee_id: dave.id, permissions: ["secrets:read", "members:remove", "members:invite"] }),
          403,
          "FORBIDDEN",
          {
            permission: "members:invite",
            missing: ["members:invite", "members:remove"],
          },
        );
        // carol received secrets:read from bob above: she cannot pass it on
        assert.equal(await allowed(carol, { permission: "secrets:read" }), true);
        assertProblem(await call(carol, "POST", "/peer-grants", { grantee_id: dave.id, permissions: ["secrets:read"] }), 403, "FORBIDDEN", {
          permission: "secrets:read",
          missing: ["secrets:read"],
        });
        assert.equal(await allowed(dave, { permission: "secrets:read" }), false);
      });

      // Regression (issue 9): a key's membership is narrowed to the key's permissions, and that set includes what its
      // owner received as peer grants, so a key passed on its owner's received grants (a grant outliving the key). A
      // peer grant made through a key now holds only what both the key and the owner's role hold.
      it("through an API key: only what both the key and the grantor's role hold, never what the grantor received", async () => {
        const [ivy, jack] = await Promise.all([signUp(t, "Ivy"), signUp(t, "Jack")]);
        for (const [u, role] of [
          [ivy, "developer"],
          [jack, "viewer"],
        ] as const)
          await addMember(t, orgId, u, role);
        assert.equal((await call(alice, "POST", "/peer-grants", { grantee_id: ivy.id, permissions: ["billing:manage"] })).statusCode, 201);
        const key = await makeKey(t, orgId, ivy, { permissions: ["org:read", "secrets:read", "billing:manage"] });
        const viaKey = (permissions: string[]) => t.call("POST", `/v1/orgs/${orgId}/peer-grants`, { grantee_id: jack.id, permissions }, key.secret);
        const before = await grantCount();
        assertProblem(await viaKey(["billing:manage"]), 403, "FORBIDDEN", { permission: "billing:manage", missing: ["billing:manage"] });
        // her role gives secrets:write, the key does not
        assertProblem(await viaKey(["secrets:read", "secrets:write"]), 403, "FORBIDDEN", { permission: "secrets:write", missing: ["secrets:write"] });
        assert.equal(await grantCount(), before, "nothing written");
        const ok = await viaKey(["secrets:read"]);
        assert.equal(ok.statusCode, 201, ok.body);
        assert.deepEqual(
          ok.json().items.map((g: { grantor_id: string; permission: string }) => [g.grantor_id, g.permission]),
          [[ivy.id, "secrets:read"]],
        );
        assert.equal(await allowed(jack, { permission: "secrets:read" }), true);
      });

      it("a service account or a registered service has no role to pass on: 403 naming every permission asked, nothing written", async () => {
        const sa = await call(alice, "POST", "/service-accounts", { name: "peer-grantor", roles: ["admin"] });
        assert.equal(sa.statusCode, 201, sa.body);
        const saKey = await call(alice, "POST", `/service-accounts/${sa.json().id}/keys`, { name: "k", roles: ["admin"] });
        assert.equal(saKey.statusCode, 201, saKey.body);
        const before = [await grantCount(), (await events()).length];
        const res = await t.call(
          "POST",
          `/v1/orgs/${orgId}/peer-grants`,
          { grantee_id: dave.id, permissions: ["secrets:write", "keys:create"] },
          saKey.json().secret,
        );
        assertProblem(res, 403, "FORBIDDEN", { permission: "keys:create", missing: ["keys:create", "secrets:write"] });
        assert.match(problemOf(res).detail, /no role to pass on/);
        // nor does it ask for peer grants: they go to members
        const asked = await t.call("POST", `/v1/orgs/${orgId}/grant-requests`, { grantor_id: alice.id, permissions: ["secrets:write"] }, saKey.json().secret);
        assertProblem(asked, 403, "FORBIDDEN", { reason: "not_a_member" });
        assert.deepEqual([await grantCount(), (await events()).length], before);
      });

      const badPeer: [string, () => Record<string, unknown>, string][] = [
        ["yourself", () => ({ grantee_id: bob.id }), "grantee_id"],
        ["a non-member", () => ({ grantee_id: newId("user") }), "grantee_id"],
        ["a malformed grantee", () => ({ grantee_id: team }), "grantee_id"],
        ["no permissions", () => ({ permissions: [] }), "permissions"],
        ["an unknown permission", () => ({ permissions: ["secrets:steal"] }), "permissions.0"],
        ["a repeated permission", () => ({ permissions: ["secrets:read", "secrets:read"] }), "permissions"],
        ["an expiry in the past", () => ({ expires_at: "2001-01-01T00:00:00Z" }), "expires_at"],
        ["an unknown field", () => ({ role: "admin" }), "role"],
      ];
      for (const [label, patch, field] of badPeer) {
        it(`POST /peer-grants refuses ${label} with 400 naming ${field}, changing nothing`, async () => {
          const before = [await grantCount(), (await events()).length];
          assertFieldError(await call(bob, "POST", "/peer-grants", { grantee_id: dave.id, permissions: ["keys:create"], ...patch() }), field);
          assert.deepEqual([await grantCount(), (await events()).length], before);
        });
      }

      it("a live peer grant of the same permission to the same member: 409", async () => {
        const first = await call(bob, "POST", "/peer-grants", { grantee_id: dave.id, permissions: ["keys:create"] });
        assert.equal(first.statusCode, 201, first.body);
        const again = await call(alice, "POST", "/peer-grants", { grantee_id: dave.id, permissions: ["usage:read", "keys:create"] });
        assert.equal(again.statusCode, 409, again.body);
        assert.equal(problemOf(again).code, "GRANT_EXISTS");
        assert.equal(problemOf(again).field, "permissions");
        assert.equal((await call(dave, "GET", "/peer-grants?direction=received")).json().items.length, 1, "all or nothing");
      });

      it("revoked by its grantor or by grants:manage, at once and audited; others get 403", async () => {
        const [g] = (await call(bob, "POST", "/peer-grants", { grantee_id: dave.id, permissions: ["secrets:write"] })).json().items;
        assert.equal(await allowed(dave, { permission: "secrets:write" }), true);
        assertProblem(await call(dave, "DELETE", `/peer-grants/${g.id}`), 403, "FORBIDDEN", { permission: "grants:manage" });
        assertProblem(await call(carol, "DELETE", `/grants/${g.id}`), 403, "FORBIDDEN", { permission: "grants:manage" });
        assert.equal((await call(bob, "DELETE", `/peer-grants/${g.id}`)).statusCode, 204);
        assert.equal(await allowed(dave, { permission: "secrets:write" }), false);
        const [ev] = await events("peer_grant.revoked");
        assert.equal(ev.targetId, g.id);
        assert.equal(ev.actorId, bob.id);
        assert.deepEqual((ev.diff as Record<string, unknown>).relation, ["secrets:write", null]);
        const [h] = (await call(bob, "POST", "/peer-grants", { grantee_id: dave.id, permissions: ["secrets:write"] })).json().items;
        assert.equal((await call(alice, "DELETE", `/grants/${h.id}`)).statusCode, 204, "grants:manage revokes anyone's");
        assert.equal(await allowed(dave, { permission: "secrets:write" }), false);
        const shareGrant = (await share(alice, { subject: { type: "user", id: dave.id }, relation: "read", object: doc() })).json();
        assert.equal((await call(alice, "DELETE", `/peer-grants/${shareGrant.id}`)).statusCode, 404, "not a peer grant");
      });
    });

    describe("grant requests", () => {
      const ask = (user: TestUser, body: Record<string, unknown>) => call(user, "POST", "/grant-requests", body);

      it("request, narrowed approval by the grantor: peer grants made, request approved, all audited", async () => {
        const res = await ask(dave, {
          grantor_id: bob.id,
          permissions: ["conversations:write", "teams:create"],
          reason: "on call this week",
          expires_at: inDays(2),
        });
        assert.equal(res.statusCode, 201, res.body);
        const r = res.json();
        assert.match(r.id, /^grq_/);
        assert.equal(r.status, "pending");
        assert.equal(r.requester_id, dave.id);
        assert.equal(r.reason, "on call this week");
        const [created] = await events("grant_request.created");
        assert.equal(created.targetId, r.id);
        assert.deepEqual((created.diff as Record<string, unknown>).permissions, [null, ["conversations:write", "teams:create"]]);
        assert.ok((await call(bob, "GET", "/grant-requests?role=incoming&status=pending")).json().items.some((x: { id: string }) => x.id === r.id));
        assert.ok((await call(dave, "GET", "/grant-requests?role=outgoing")).json().items.some((x: { id: string }) => x.id === r.id));
        assert.ok(!(await call(dave, "GET", "/grant-requests?role=incoming")).json().items.some((x: { id: string }) => x.id === r.id));
        assert.deepEqual((await call(dave, "GET", `/grant-requests/${r.id}`)).json(), r);

        assertProblem(await call(dave, "POST", `/grant-requests/${r.id}/approve`, {}), 403, "FORBIDDEN", { permission: "grants:manage" });
        assertProblem(await call(alice, "POST", `/grant-requests/${r.id}/approve`, {}), 403, "FORBIDDEN", { permission: "grants:manage" });
        assertFieldError(await call(bob, "POST", `/grant-requests/${r.id}/approve`, { permissions: ["conversations:write", "secrets:read"] }), "permissions");
        assertFieldError(await call(bob, "POST", `/grant-requests/${r.id}/approve`, { expires_at: inDays(3) }), "expires_at");
        assertFieldError(await call(bob, "POST", `/grant-requests/${r.id}/approve`, { expires_at: "2001-01-01T00:00:00Z" }), "expires_at");
        const shorter = inDays(1);
        const ok = await call(bob, "POST", `/grant-requests/${r.id}/approve`, { permissions: ["conversations:write"], expires_at: shorter });
        assert.equal(ok.statusCode, 200, ok.body);
        const { request, grants } = ok.json();
        assert.equal(request.status, "approved");
        assert.equal(request.decided_by, bob.id);
        assert.deepEqual(
          grants.map((g: { permission: string; grantee_id: string; grantor_id: string; expires_at: string }) => [
            g.permission,
            g.grantee_id,
            g.grantor_id,
            g.expires_at,
          ]),
          [["conversations:write", dave.id, bob.id, new Date(shorter).toISOString()]],
        );
        assert.deepEqual(
          request.grant_ids,
          grants.map((g: { id: string }) => g.id),
        );
        assert.equal(await allowed(dave, { permission: "conversations:write" }), true);
        assert.equal(await allowed(dave, { permission: "teams:create" }), false, "narrowed away");
        const [approved] = await events("grant_request.approved");
        assert.equal(approved.targetId, r.id);
        assert.deepEqual(approved.diff, {
          status: ["pending", "approved"],
          grant_ids: [null, request.grant_ids],
          permissions: [["conversations:write", "teams:create"], ["conversations:write"]],
          expires_at: [r.expires_at, new Date(shorter).toISOString()],
        });
        assert.ok((await events("peer_grant.created")).some((e) => e.targetId === grants[0].id));
        for (const path of ["approve", "deny"]) {
          const again = await call(bob, "POST", `/grant-requests/${r.id}/${path}`, {});
          assert.equal(again.statusCode, 409, again.body);
          assert.equal(problemOf(again).code, "GRANT_REQUEST_DECIDED");
        }
        assert.equal((await call(dave, "POST", `/grant-requests/${r.id}/cancel`)).statusCode, 409);
      });

      it("approval as asked: every permission, the requested end", async () => {
        const until = inDays(4);
        const r = (await ask(carol, { grantor_id: alice.id, permissions: ["usage:read", "billing:manage"], expires_at: until })).json();
        const ok = await call(alice, "POST", `/grant-requests/${r.id}/approve`, {});
        assert.equal(ok.statusCode, 200, ok.body);
        assert.deepEqual(
          ok.json().grants.map((g: { permission: string; expires_at: string }) => [g.permission, g.expires_at]),
          [
            ["usage:read", new Date(until).toISOString()],
            ["billing:manage", new Date(until).toISOString()],
          ],
        );
        assert.equal(await allowed(carol, { permission: "billing:manage" }), true);
      });

      it("deny with a reason, audited; cancel by the requester only", async () => {
        const r = (await ask(carol, { grantor_id: bob.id, permissions: ["keys:create"] })).json();
        assertProblem(await call(carol, "POST", `/grant-requests/${r.id}/deny`, {}), 403, "FORBIDDEN", { permission: "grants:manage" });
        const denied = await call(bob, "POST", `/grant-requests/${r.id}/deny`, { reason: "ask the admins" });
        assert.equal(denied.statusCode, 200, denied.body);
        assert.equal(denied.json().status, "denied");
        const [ev] = await events("grant_request.denied");
        assert.deepEqual(ev.diff, { status: ["pending", "denied"], reason: [null, "ask the admins"] });
        assert.equal(await allowed(carol, { permission: "keys:create" }), false);

        const c = (await ask(carol, { grantor_id: bob.id, permissions: ["keys:create"] })).json();
        assertProblem(await call(bob, "POST", `/grant-requests/${c.id}/cancel`), 403, "FORBIDDEN", { permission: "grants:manage" });
        const cancelled = await call(carol, "POST", `/grant-requests/${c.id}/cancel`);
        assert.equal(cancelled.statusCode, 200, cancelled.body);
        assert.equal(cancelled.json().status, "cancelled");
        const [cev] = await events("grant_request.cancelled");
        assert.equal(cev.targetId, c.id);
        assert.equal(cev.actorId, carol.id);
        assert.equal((await call(bob, "POST", `/grant-requests/${c.id}/approve`, {})).statusCode, 409);
        const mine = (await call(carol, "GET", "/grant-requests?role=outgoing&status=cancelled")).json().items;
        assert.deepEqual(
          mine.map((x: { id: string }) => x.id),
          [c.id],
        );
      });

      it("the grantor must still hold the permissions through their role when approving", async () => {
        const r = (await ask(carol, { grantor_id: bob.id, permissions: ["secrets:write"] })).json();
        await t.db.owner.execute(sql`update memberships set role = 'viewer' where org_id = ${orgId} and user_id = ${bob.id}`);
        await t.deps.access.invalidate(orgId);
        try {
          assertProblem(await call(bob, "POST", `/grant-requests/${r.id}/approve`, {}), 403, "FORBIDDEN", {
            permission: "secrets:write",
            missing: ["secrets:write"],
          });
        } finally {
          await t.db.owner.execute(sql`update memberships set role = 'developer' where org_id = ${orgId} and user_id = ${bob.id}`);
          await t.deps.access.invalidate(orgId);
        }
        assert.equal((await call(bob, "GET", `/grant-requests/${r.id}`)).json().status, "pending");
      });

      const badRequests: [string, () => Record<string, unknown>, string][] = [
        ["yourself as grantor", () => ({ grantor_id: carol.id }), "grantor_id"],
        ["a non-member grantor", () => ({ grantor_id: newId("user") }), "grantor_id"],
        ["a permission the grantor's role lacks", () => ({ permissions: ["members:remove"] }), "permissions"],
        ["an unknown permission", () => ({ permissions: ["x:y"] }), "permissions.0"],
        ["an empty reason", () => ({ reason: "" }), "reason"],
        ["a 501-character reason", () => ({ reason: "r".repeat(501) }), "reason"],
        ["an expiry in the past", () => ({ expires_at: "2001-01-01T00:00:00Z" }), "expires_at"],
        ["an unknown field", () => ({ status: "approved" }), "status"],
      ];
      for (const [label, patch, field] of badRequests) {
        it(`POST /grant-requests refuses ${label} with 400 naming ${field}, changing nothing`, async () => {
          const n = (await events()).length;
          assertFieldError(await ask(carol, { grantor_id: bob.id, permissions: ["keys:create"], ...patch() }), field);
          assert.equal((await events()).length, n);
        });
      }

      it("unknown and foreign requests answer 404; a malformed id 400", async () => {
        const other = await t.call("POST", `/v1/orgs/${otherOrg}/grant-requests`, { grantor_id: alice.id, permissions: ["org:read"] }, dave.access_token);
        assertFieldError(other, "grantor_id"); // alice is no member of dave's other org
        for (const path of ["", "/approve", "/deny", "/cancel"]) {
          const res = await call(
            bob,
            path ? "POST" : "GET",
            `/grant-requests/${newId("grantRequest")}${path}`,
            path === "/cancel" ? undefined : path ? {} : undefined,
          );
          assert.equal(res.statusCode, 404, `${path}: ${res.body}`);
          assert.equal(problemOf(res).code, "GRANT_REQUEST_NOT_FOUND");
        }
        assertFieldError(await call(bob, "GET", "/grant-requests/grt_x"), "requestId");
        assertFieldError(await call(bob, "GET", "/grant-requests?role=sideways"), "role");
      });
    });
  });
}
