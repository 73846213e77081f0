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
import { newId } from "../../lib/ids.ts";

/** A well-formed secret id that names nothing (ids are made fresh, lib/ids.ts). */
const fakeSecretId = () => newId("secret", Date.now());

type SecretMeta = { id: string; name: string; version: number; scope: string };
type Subject = { type: "user" | "team" | "org"; id?: string };

/**
 * Sharing one secret through the access module's grants (issue 10): read = reveal and read its metadata, write =
 * update and roll back, delete = delete, share = pass on what you hold; without secrets:read org-wide.
 */
for (const backend of BACKENDS) {
  describe(`secrets vault: sharing through grants (${backend})`, () => {
    let t: TestApp;
    let owner: TestUser;
    let dev: TestUser;
    let vic: TestUser;
    let wes: TestUser;
    let stranger: TestUser;
    let orgId: string;
    let otherOrgId: string;
    let teamId: string;
    let subTeamId: string;
    before(async () => {
      t = await createTestApp({ backend, worker: false });
      [owner, dev, vic, wes, stranger] = await Promise.all(["Olivia Owner", "Dana Dev", "Vic Viewer", "Wes Viewer", "Sam Stranger"].map((n) => signUp(t, n)));
      orgId = await makeOrg(t, owner, "Sharing Inc", uniqueSlug("share"));
      otherOrgId = await makeOrg(t, stranger, "Other Inc", uniqueSlug("share"));
      await addMember(t, orgId, dev, "developer");
      await addMember(t, orgId, vic, "viewer");
      await addMember(t, orgId, wes, "viewer");
      const team = await t.call("POST", `/v1/orgs/${orgId}/teams`, { name: "Platform" }, owner.access_token);
      assert.equal(team.statusCode, 201, team.body);
      teamId = team.json().id;
      const sub = await t.call("POST", `/v1/orgs/${orgId}/teams`, { name: "Platform / Infra", parent_id: teamId }, owner.access_token);
      assert.equal(sub.statusCode, 201, sub.body);
      subTeamId = sub.json().id;
      // wes sits in the sub-team: a grant to the parent team reaches him
      const put = await t.call("PUT", `/v1/orgs/${orgId}/teams/${subTeamId}/members/${wes.id}`, { role: "member" }, owner.access_token);
      assert.equal(put.statusCode, 201, put.body);
    });
    after(() => t.close());

    const base = (path = "", org = orgId) => `/v1/orgs/${org}/secrets${path}`;
    const uniqueName = (tag = "API_KEY") => `${tag}_${randomBytes(4).toString("hex").toUpperCase()}`;
    async function makeSecret(body: Record<string, unknown> = {}, by = owner, org = orgId): Promise<SecretMeta & { value: string }> {
      const value = `v-${randomBytes(8).toString("hex")}`;
      const res = await t.call("POST", base("", org), { name: uniqueName(), value, ...body }, by.access_token);
      assert.equal(res.statusCode, 201, res.body);
      return { ...res.json(), value: (body.value as string | undefined) ?? value };
    }
    const reveal = (id: string, by: TestUser | string, version?: number) =>
      t.call("POST", base(`/${id}${version ? `/versions/${version}` : ""}/reveal`), undefined, typeof by === "string" ? by : by.access_token);
    const share = (by: TestUser, subject: Subject, relation: string, secretId: string, org = orgId) =>
      t.call("POST", `/v1/orgs/${org}/grants`, { subject, relation, object: { type: "secret", id: secretId } }, by.access_token);
    async function grant(subject: Subject, relation: string, secretId: string, by = owner): Promise<string> {
      const res = await share(by, subject, relation, secretId);
      assert.equal(res.statusCode, 201, res.body);
      return res.json().id as string;
    }
    const revoke = (grantId: string, by = owner) => t.call("DELETE", `/v1/orgs/${orgId}/grants/${grantId}`, undefined, by.access_token);
    const grantCount = async (org = orgId) =>
      Number(((await t.db.owner.execute(sql`select count(*)::int as n from grants where org_id = ${org}`)) as unknown as { rows: { n: number }[] }).rows[0].n);
    const noRead = { permission: "secrets:read" };
    const noWrite = { permission: "secrets:write" };

    it("a viewer gets 403 on every read until a read grant to them; then reads (audited) but cannot change it", async () => {
      const s = await makeSecret();
      assertProblem(await reveal(s.id, vic), 403, "FORBIDDEN", noRead);
      assertProblem(await reveal(s.id, vic, 1), 403, "FORBIDDEN", noRead);
      assertProblem(await t.call("GET", base(`/${s.id}`), undefined, vic.access_token), 403, "FORBIDDEN", noRead);
      assertProblem(await t.call("GET", base(`/${s.id}/versions`), undefined, vic.access_token), 403, "FORBIDDEN", noRead);

      await grant({ type: "user", id: vic.id }, "read", s.id);
      const shown = await reveal(s.id, vic);
      assert.equal(shown.statusCode, 200, shown.body);
      assert.deepEqual(shown.json(), { id: s.id, name: s.name, version: 1, value: s.value });
      assert.equal(shown.headers["cache-control"], "no-store");
      assert.equal((await reveal(s.id, vic, 1)).json().value, s.value);
      const meta = await t.call("GET", base(`/${s.id}`), undefined, vic.access_token);
      assert.equal(meta.statusCode, 200, meta.body);
      assert.ok(!meta.body.includes(s.value), "metadata never holds the value");
      assert.equal((await t.call("GET", base(`/${s.id}/versions`), undefined, vic.access_token)).statusCode, 200);
      const revealed = (await t.deps.audit.list(orgId, {}, 1000)).filter((e) => e.action === "secret.revealed" && e.targetId === s.id);
      assert.deepEqual(
        revealed.map((e) => e.actorId),
        [vic.id, vic.id],
      );
      assert.ok(!JSON.stringify(revealed).includes(s.value), "no value in the audit log");

      // read is not write: every change is refused, and nothing changes
      assertProblem(await t.call("PATCH", base(`/${s.id}`), { value: "changed" }, vic.access_token), 403, "FORBIDDEN", noWrite);
      assertProblem(await t.call("POST", base(`/${s.id}/$rollback`), { version: 1 }, vic.access_token), 403, "FORBIDDEN", noWrite);
      assertProblem(await t.call("DELETE", base(`/${s.id}`), undefined, vic.access_token), 403, "FORBIDDEN", noWrite);
      assert.deepEqual((await reveal(s.id, owner)).json(), { id: s.id, name: s.name, version: 1, value: s.value });
      // someone else in the org is not reached by a grant to vic
      assertProblem(await reveal(s.id, wes), 403, "FORBIDDEN", noRead);
    });

    it("a write grant lets a viewer update and roll back (each a new version); deleting needs a delete grant", async () => {
      const s = await makeSecret({ value: "one" });
      await grant({ type: "user", id: vic.id }, "write", s.id);
      const upd = await t.call("PATCH", base(`/${s.id}`), { value: "two" }, vic.access_token, { "if-match": '"1"' });
      assert.equal(upd.statusCode, 200, upd.body);
      assert.equal(upd.json().version, 2);
      assert.equal((await reveal(s.id, vic)).json().value, "two", "write includes read");
      const back = await t.call("POST", base(`/${s.id}/$rollback`), { version: 1 }, vic.access_token);
      assert.equal(back.statusCode, 200, back.body);
      assert.equal(back.json().version, 3);
      assert.equal((await reveal(s.id, owner)).json().value, "one");
      // a stale If-Match is still a 409 for a grant holder
      assertProblem(
        await t.call("PATCH", base(`/${s.id}`), { value: "x" }, vic.access_token, { "if-match": '"1"' }),
        409,
        "SECRET_VERSION_CONFLICT",
        "version",
      );
      assertProblem(await t.call("DELETE", base(`/${s.id}`), undefined, vic.access_token), 403, "FORBIDDEN", noWrite);

      await grant({ type: "user", id: vic.id }, "delete", s.id);
      assert.equal((await t.call("DELETE", base(`/${s.id}`), undefined, vic.access_token)).statusCode, 204);
      assertProblem(await reveal(s.id, owner), 404, "SECRET_NOT_FOUND", "secretId");
      // the grants on it went with it, and its deletion says which
      const left = await t.call("GET", `/v1/orgs/${orgId}/grants?object_id=${s.id}`, undefined, owner.access_token);
      assert.deepEqual(left.json().items, []);
      const deleted = (await t.deps.audit.list(orgId, {}, 1000)).find((e) => e.action === "secret.deleted" && e.targetId === s.id);
      assert.ok(deleted, "secret.deleted recorded");
      assert.equal((deleted.diff as { grant_ids: [string[], null] }).grant_ids[0].length, 2);
    });

    it("a grant to a team reaches the members of it and of its sub-teams, and no one else", async () => {
      const s = await makeSecret({ team_id: teamId });
      assertProblem(await reveal(s.id, wes), 403, "FORBIDDEN", noRead);
      const g = await grant({ type: "team", id: teamId }, "read", s.id);
      const shown = await reveal(s.id, wes);
      assert.equal(shown.statusCode, 200, shown.body);
      assert.equal(shown.json().value, s.value);
      assertProblem(await reveal(s.id, vic), 403, "FORBIDDEN", noRead);
      assert.equal((await revoke(g)).statusCode, 204);
      assertProblem(await reveal(s.id, wes), 403, "FORBIDDEN", noRead);
    });

    it("revoking the grant stops reads at once: reveal, metadata and the list", async () => {
      const s = await makeSecret();
      const g = await grant({ type: "user", id: wes.id }, "read", s.id);
      assert.equal((await reveal(s.id, wes)).statusCode, 200);
      const listed = await t.call("GET", base(), undefined, wes.access_token);
      assert.ok(listed.json().items.some((x: SecretMeta) => x.id === s.id));
      assert.equal((await revoke(g)).statusCode, 204);
      assertProblem(await reveal(s.id, wes), 403, "FORBIDDEN", noRead);
      assertProblem(await t.call("GET", base(`/${s.id}`), undefined, wes.access_token), 403, "FORBIDDEN", noRead);
      const after = await t.call("GET", base(), undefined, wes.access_token);
      assert.ok(after.statusCode === 403 || !after.json().items.some((x: SecretMeta) => x.id === s.id), after.body);
    });

    it("without secrets:read the list holds only the secrets shared with the caller, metadata only, in pages; none shared is 403", async () => {
      // a fresh org, so that nothing else is shared with its viewer
      const org = await makeOrg(t, owner, "Listing Inc", uniqueSlug("share"));
      const lia = await signUp(t, "Lia Viewer");
      await addMember(t, org, lia, "viewer");
      const team = (await t.call("POST", `/v1/orgs/${org}/teams`, { name: "Ops" }, owner.access_token)).json().id as string;
      assert.equal((await t.call("PUT", `/v1/orgs/${org}/teams/${team}/members/${lia.id}`, { role: "member" }, owner.access_token)).statusCode, 201);
      const list = (token: string, query = "") => t.call("GET", `/v1/orgs/${org}/secrets${query}`, undefined, token);
      assertProblem(await list(lia.access_token), 403, "FORBIDDEN", noRead);

      const [a, b, c, d] = [
        await makeSecret({}, owner, org),
        await makeSecret({ team_id: team }, owner, org),
        await makeSecret({}, owner, org),
        await makeSecret({}, owner, org),
      ];
      const to = (subject: Subject, relation: string, id: string) =>
        t.call("POST", `/v1/orgs/${org}/grants`, { subject, relation, object: { type: "secret", id } }, owner.access_token);
      assert.equal((await to({ type: "user", id: lia.id }, "read", a.id)).statusCode, 201);
      assert.equal((await to({ type: "team", id: team }, "write", b.id)).statusCode, 201);
      assert.equal((await to({ type: "user", id: lia.id }, "list", d.id)).statusCode, 201, "list is weaker than read: not listed");
      const res = await list(lia.access_token);
      assert.equal(res.statusCode, 200, res.body);
      assert.deepEqual(
        res.json().items.map((x: SecretMeta) => x.id),
        [a.id, b.id],
      );
      for (const v of [a, b, c, d]) assert.ok(!res.body.includes(v.value), "never a value");
      const first = (await list(lia.access_token, "?limit=1")).json();
      assert.deepEqual([first.items.map((x: SecretMeta) => x.id), typeof first.next_cursor], [[a.id], "string"]);
      const second = (await list(lia.access_token, `?limit=1&cursor=${first.next_cursor}`)).json();
      assert.deepEqual(
        second.items.map((x: SecretMeta) => x.id),
        [b.id],
      );
      assert.deepEqual(
        (await list(lia.access_token, "?scope=team")).json().items.map((x: SecretMeta) => x.id),
        [b.id],
      );
      // an org-wide grant reaches every member
      assert.equal((await to({ type: "org" }, "read", c.id)).statusCode, 201);
      assert.deepEqual(
        (await list(lia.access_token)).json().items.map((x: SecretMeta) => x.id),
        [a.id, b.id, c.id],
      );
      // the owner (secrets:read) still lists everything
      assert.equal((await list(owner.access_token)).json().items.length, 4);
      // a narrowed API key holds only its own permissions: what is shared with its owner does not reach it
      assert.equal((await to({ type: "user", id: owner.id }, "read", a.id)).statusCode, 201);
      const key = await makeKey(t, org, owner, { permissions: ["org:read"] });
      assertProblem(await list(key.secret), 403, "FORBIDDEN", noRead);
      assertProblem(await t.call("POST", `/v1/orgs/${org}/secrets/${a.id}/reveal`, undefined, key.secret), 403, "FORBIDDEN", noRead);
    });

    it("sharing needs grants:manage or share on the secret, and passes on only what the sharer holds there", async () => {
      const s = await makeSecret();
      const before = await grantCount();
      // a developer reads and writes every secret, but managing who holds what is grants:manage or share
      assertProblem(await share(dev, { type: "user", id: vic.id }, "read", s.id), 403, "FORBIDDEN", { permission: "grants:manage" });
      await grant({ type: "user", id: vic.id }, "read", s.id);
      assertProblem(await share(vic, { type: "user", id: wes.id }, "read", s.id), 403, "FORBIDDEN", { permission: "grants:manage" });
      assert.equal(await grantCount(), before + 1);
      assertProblem(await reveal(s.id, wes), 403, "FORBIDDEN", noRead);

      // share on it: vic may now pass on read (share includes it), never write or admin she does not hold
      await grant({ type: "user", id: vic.id }, "share", s.id);
      for (const relation of ["write", "admin", "owner"]) {
        assertProblem(await share(vic, { type: "user", id: wes.id }, relation, s.id), 403, "FORBIDDEN", { permission: "grants:manage" });
      }
      assert.equal(await grantCount(), before + 2);
      const passed = await share(vic, { type: "user", id: wes.id }, "read", s.id);
      assert.equal(passed.statusCode, 201, passed.body);
      assert.equal((await reveal(s.id, wes)).json().value, s.value);
      assertProblem(await t.call("PATCH", base(`/${s.id}`), { value: "no" }, wes.access_token), 403, "FORBIDDEN", noWrite);
    });

    it("a grant naming another org's secret, a missing one, someone's personal one or another kind of id is 400 naming object.id", async () => {
      const foreign = await makeSecret({}, stranger, otherOrgId);
      const personal = await makeSecret({ user_id: owner.id });
      const before = await grantCount();
      const answers = [];
      for (const id of [foreign.id, fakeSecretId(), personal.id, teamId]) {
        const res = await share(owner, { type: "user", id: vic.id }, "read", id);
        assertFieldError(res, "object.id");
        answers.push(res.json().detail.replace(id, "<id>"));
      }
      assert.equal(answers[0], answers[1], "another org's secret reads like a missing one");
      assert.match(answers[2], /personal/);
      assert.equal(await grantCount(), before, "nothing stored");
      assertProblem(await reveal(personal.id, vic), 403, "FORBIDDEN", noRead);
      // and another org's member cannot be given one of ours
      assertFieldError(await share(owner, { type: "user", id: stranger.id }, "read", (await makeSecret()).id), "subject.id");
      // a grant in the other org on our secret's id is refused the same way there
      const ours = await makeSecret();
      assertFieldError(await share(stranger, { type: "user", id: stranger.id }, "read", ours.id, otherOrgId), "object.id");
      assertProblem(await reveal(ours.id, stranger), 404, "NOT_FOUND", "orgId");
    });
  });
}
