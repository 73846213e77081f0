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

for (const backend of BACKENDS) {
  describe(`secrets vault (${backend})`, () => {
    let t: TestApp;
    let owner: TestUser;
    let dev: TestUser;
    let viewer: TestUser;
    let stranger: TestUser;
    let orgId: string;
    let otherOrgId: string;
    let teamId: string;
    let otherTeamId: string;
    before(async () => {
      t = await createTestApp({ backend, worker: false });
      owner = await signUp(t, "Olivia Owner");
      dev = await signUp(t, "Dana Dev");
      viewer = await signUp(t, "Vic Viewer");
      stranger = await signUp(t, "Sam Stranger");
      orgId = await makeOrg(t, owner, "Vault Inc", uniqueSlug("vault"));
      otherOrgId = await makeOrg(t, stranger, "Other Inc", uniqueSlug("vault"));
      await addMember(t, orgId, dev, "developer");
      await addMember(t, orgId, viewer, "viewer");
      const team = await t.call("POST", `/v1/orgs/${orgId}/teams`, { name: "Platform" }, owner.access_token);
      assert.equal(team.statusCode, 201, team.body);
      teamId = team.json().id;
      const other = await t.call("POST", `/v1/orgs/${otherOrgId}/teams`, { name: "Theirs" }, stranger.access_token);
      assert.equal(other.statusCode, 201, other.body);
      otherTeamId = other.json().id;
    });
    after(() => t.close());

    const base = (path = "", org = orgId) => `/v1/orgs/${org}/secrets${path}`;
    const uniqueName = (tag = "API_KEY") => `${tag}_${randomBytes(4).toString("hex").toUpperCase()}`;
    const events = async (action?: string) => (await t.deps.audit.list(orgId, {}, 1000)).filter((e) => !action || e.action === action);
    async function makeSecret(body: Record<string, unknown> = {}, by = owner) {
      const res = await t.call("POST", base(), { name: uniqueName(), value: `v-${randomBytes(8).toString("hex")}`, ...body }, by.access_token);
      assert.equal(res.statusCode, 201, res.body);
      return res.json() as { id: string; name: string; version: number; scope: string; team_id: string | null; user_id: string | null };
    }
    const reveal = (id: string, by = owner, version?: number) =>
      t.call("POST", base(`/${id}${version ? `/versions/${version}` : ""}/reveal`), undefined, by.access_token);

    it("creates, lists, gets, updates and deletes a secret, each audited without the value", async () => {
      const value = `sk-live-${randomBytes(12).toString("hex")}`;
      const name = uniqueName("OPENAI_API_KEY");
      const res = await t.call("POST", base(), { name, value, description: "The LLM key", tags: ["llm", "prod"] }, dev.access_token);
      assert.equal(res.statusCode, 201, res.body);
      const s = res.json();
      assert.match(s.id, /^sec_[0-9a-hjkmnp-tv-z]{26}$/);
      assert.deepEqual(
        [s.name, s.scope, s.team_id, s.user_id, s.version, s.description, s.tags, s.created_by],
        [name, "org", null, null, 1, "The LLM key", ["llm", "prod"], dev.id],
      );
      assert.equal(res.headers.etag, '"1"');
      assert.ok(!res.body.includes(value));

      const list = await t.call("GET", base(), undefined, viewer.access_token);
      assertProblem(list, 403, "FORBIDDEN", { permission: "secrets:read" });
      const listed = await t.call("GET", base(), undefined, dev.access_token);
      assert.equal(listed.statusCode, 200, listed.body);
      assert.ok(listed.json().items.some((x: { id: string }) => x.id === s.id));
      assert.ok(!listed.body.includes(value));
      const got = await t.call("GET", base(`/${s.id}`), undefined, dev.access_token);
      assert.equal(got.statusCode, 200);
      assert.equal(got.headers.etag, '"1"');
      assert.deepEqual(got.json(), s);

      const meta = await t.call(
        "PATCH",
        base(`/${s.id}`),
        { description: "Rotated monthly", tags: ["llm"], expires_at: new Date(Date.now() + 86_400_000).toISOString() },
        dev.access_token,
      );
      assert.equal(meta.statusCode, 200, meta.body);
      assert.equal(meta.json().version, 1, "metadata changes keep the version");
      const next = `sk-live-${randomBytes(12).toString("hex")}`;
      const upd = await t.call("PATCH", base(`/${s.id}`), { value: next }, dev.access_token, { "if-match": '"1"' });
      assert.equal(upd.statusCode, 200, upd.body);
      assert.equal(upd.json().version, 2);
      assert.equal(upd.headers.etag, '"2"');
      assert.ok(!upd.body.includes(next));
      assert.equal((await reveal(s.id, dev)).json().value, next);

      assertProblem(await t.call("DELETE", base(`/${s.id}`), undefined, viewer.access_token), 403, "FORBIDDEN", { permission: "secrets:write" });
      assert.equal((await t.call("DELETE", base(`/${s.id}`), undefined, dev.access_token)).statusCode, 204);
      assertProblem(await t.call("GET", base(`/${s.id}`), undefined, dev.access_token), 404, "SECRET_NOT_FOUND", "secretId");
      assertProblem(await reveal(s.id), 404, "SECRET_NOT_FOUND", "secretId");
      const mine = (await events()).filter((e) => e.targetId === s.id);
      assert.deepEqual(mine.map((e) => e.action).sort(), ["secret.created", "secret.deleted", "secret.revealed", "secret.updated", "secret.updated"]);
      const text = JSON.stringify(mine);
      assert.ok(!text.includes(value) && !text.includes(next), "no value in the audit log");
      const created = mine.find((e) => e.action === "secret.created")!;
      assert.deepEqual((created.diff as Record<string, unknown>).name, [null, name]);
      assert.equal(created.actorId, dev.id);
    });

    it("keeps versions, reveals any of them (audited, no-store) and rolls back as a new version", async () => {
      const s = await makeSecret({ value: "one" });
      for (const value of ["two", "three"]) assert.equal((await t.call("PATCH", base(`/${s.id}`), { value }, owner.access_token)).statusCode, 200);
      const now = await reveal(s.id, dev);
      assert.equal(now.statusCode, 200, now.body);
      assert.deepEqual(now.json(), { id: s.id, name: s.name, version: 3, value: "three" });
      assert.equal(now.headers["cache-control"], "no-store");
      const old = await reveal(s.id, dev, 1);
      assert.deepEqual(old.json(), { id: s.id, name: s.name, version: 1, value: "one" });
      assert.equal(old.headers["cache-control"], "no-store");
      assertProblem(await reveal(s.id, dev, 9), 404, "SECRET_VERSION_NOT_FOUND", "version");
      assertProblem(await reveal(s.id, viewer), 403, "FORBIDDEN", { permission: "secrets:read" });
      const revealed = (await events("secret.revealed")).filter((e) => e.targetId === s.id);
      assert.deepEqual(revealed.map((e) => (e.diff as { version: number }).version).sort(), [1, 3]);
      assert.ok(revealed.every((e) => e.actorId === dev.id));

      const first = await t.call("GET", base(`/${s.id}/versions?limit=2`), undefined, dev.access_token);
      assert.equal(first.statusCode, 200, first.body);
      assert.deepEqual(
        first.json().items.map((v: { version: number; current: boolean }) => [v.version, v.current]),
        [
          [3, true],
          [2, false],
        ],
      );
      assert.ok(first.json().items.every((v: { kek_version: number; created_by: string }) => v.kek_version === 1 && v.created_by === owner.id));
      const rest = await t.call("GET", base(`/${s.id}/versions?limit=2&cursor=${first.json().next_cursor}`), undefined, dev.access_token);
      assert.deepEqual(
        rest.json().items.map((v: { version: number }) => v.version),
        [1],
      );
      assert.equal(rest.json().next_cursor, null);

      const rb = await t.call("POST", base(`/${s.id}/$rollback`), { version: 1 }, dev.access_token, { "if-match": "3" });
      assert.equal(rb.statusCode, 200, rb.body);
      assert.equal(rb.json().version, 4);
      assert.equal((await reveal(s.id, dev)).json().value, "one");
      assert.equal((await reveal(s.id, dev, 3)).json().value, "three", "history is kept");
      const rolled = (await events("secret.rolled_back")).find((e) => e.targetId === s.id)!;
      assert.deepEqual(rolled.diff, { name: s.name, version: [3, 4], from_version: 1 });
      assertProblem(await t.call("POST", base(`/${s.id}/$rollback`), { version: 7 }, dev.access_token), 404, "SECRET_VERSION_NOT_FOUND", "version");
      assert.match(
        assertProblem(
          await t.call("POST", base(`/${s.id}/$rollback`), { version: 1 }, dev.access_token, { "if-match": "3" }),
          409,
          "SECRET_VERSION_CONFLICT",
          "version",
        ).detail,
        /at version 4, not 3/,
      );
    });

    it("answers 409 to a stale version (If-Match or body) and loses no concurrent update", async () => {
      const s = await makeSecret({ value: "base" });
      assert.equal((await t.call("PATCH", base(`/${s.id}`), { value: "second" }, owner.access_token, { "if-match": "1" })).statusCode, 200);
      assert.match(
        assertProblem(
          await t.call("PATCH", base(`/${s.id}`), { value: "lost" }, owner.access_token, { "if-match": '"1"' }),
          409,
          "SECRET_VERSION_CONFLICT",
          "version",
        ).detail,
        /at version 2, not 1/,
      );
      // the answer names the version now, so a client can re-read or retry without another request
      assertProblem(await t.call("PATCH", base(`/${s.id}`), { value: "lost", version: 1 }, owner.access_token), 409, "SECRET_VERSION_CONFLICT", {
        field: "version",
        current_version: 2,
      });
      assertProblem(await t.call("PATCH", base(`/${s.id}`), { description: "lost" }, owner.access_token, { "if-match": "1" }), 409, "SECRET_VERSION_CONFLICT");
      assertProblem(await t.call("DELETE", base(`/${s.id}`), undefined, owner.access_token, { "if-match": "1" }), 409, "SECRET_VERSION_CONFLICT");
      assertFieldError(await t.call("PATCH", base(`/${s.id}`), { value: "x", version: 2 }, owner.access_token, { "if-match": "1" }), "version");
      assert.equal((await reveal(s.id)).json().value, "second", "nothing changed");
      // two writers who both read version 2: exactly one wins, the other is told
      const results = await Promise.all(["a", "b", "c"].map((value) => t.call("PATCH", base(`/${s.id}`), { value }, owner.access_token, { "if-match": "2" })));
      assert.deepEqual(results.map((r) => r.statusCode).sort(), [200, 409, 409]);
      const winner = results.find((r) => r.statusCode === 200)!;
      assert.equal(winner.json().version, 3);
      // writers without a precondition line up: each is its own version
      await Promise.all(["d", "e"].map((value) => t.call("PATCH", base(`/${s.id}`), { value }, owner.access_token)));
      const versions = (await t.call("GET", base(`/${s.id}/versions`), undefined, owner.access_token)).json().items.map((v: { version: number }) => v.version);
      assert.deepEqual(versions, [5, 4, 3, 2, 1]);
    });

    it("refuses bad input on every route with a 4xx naming the field", async () => {
      const s = await makeSecret();
      const post = (body: unknown) => t.call("POST", base(), body, owner.access_token);
      assertFieldError(await post({ name: "lower_case", value: "x" }), "name");
      assertFieldError(await post({ name: "1STARTS_WITH_DIGIT", value: "x" }), "name");
      assertFieldError(await post({ name: "A".repeat(129), value: "x" }), "name");
      assertFieldError(await post({ value: "x" }), "name");
      assertFieldError(await post({ name: uniqueName() }), "value");
      assertFieldError(await post({ name: uniqueName(), value: "x".repeat(64 * 1024 + 1) }), "value");
      // under the character limit but over 64 KiB of UTF-8
      assertFieldError(await post({ name: uniqueName(), value: "é".repeat(40_000) }), "value");
      assertFieldError(await post({ name: uniqueName(), value: 42 }), "value");
      assertFieldError(await post({ name: uniqueName(), value: "x", colour: "red" }), "colour");
      assertFieldError(await post({ name: uniqueName(), value: "x", tags: ["ok", "ok"] }), "tags");
      assertFieldError(await post({ name: uniqueName(), value: "x", tags: ["has space"] }), "tags.0");
      assertFieldError(await post({ name: uniqueName(), value: "x", expires_at: "soon" }), "expires_at");
      assertFieldError(await post({ name: uniqueName(), value: "x", expires_at: new Date(Date.now() - 1000).toISOString() }), "expires_at");
      assertFieldError(await post({ name: uniqueName(), value: "x", team_id: "team_nope" }), "team_id");
      assertFieldError(await post({ name: uniqueName(), value: "x", team_id: teamId, user_id: owner.id }), "user_id");
      assertFieldError(await post({ name: uniqueName(), value: "x", description: "d".repeat(501) }), "description");
      assertProblem(await post({ name: s.name, value: "again" }), 409, "SECRET_NAME_TAKEN", "name");
      const max = await post({ name: uniqueName(), value: "x".repeat(64 * 1024) });
      assert.equal(max.statusCode, 201, "exactly 64 KiB is allowed");

      assertFieldError(await t.call("GET", base("?scope=galaxy"), undefined, owner.access_token), "scope");
      assertFieldError(await t.call("GET", base("?cursor=Zm9v"), undefined, owner.access_token), "cursor");
      assertFieldError(await t.call("GET", base("?limit=0"), undefined, owner.access_token), "limit");
      assertFieldError(await t.call("GET", base("?team_id=x"), undefined, owner.access_token), "team_id");
      for (const [method, path] of [
        ["GET", ""],
        ["PATCH", ""],
        ["DELETE", ""],
        ["POST", "/reveal"],
        ["GET", "/versions"],
        ["POST", "/versions/1/reveal"],
        ["POST", "/$rollback"],
      ]) {
        const body = method === "PATCH" ? { description: "x" } : path === "/$rollback" ? { version: 1 } : undefined;
        assertFieldError(await t.call(method, base(`/not-a-secret${path}`), body, owner.access_token), "secretId");
        const missing = await t.call(method, base(`/${fakeSecretId()}${path}`), body, owner.access_token);
        assertProblem(missing, 404, "SECRET_NOT_FOUND", "secretId");
      }
      assertFieldError(await t.call("PATCH", base(`/${s.id}`), {}, owner.access_token), "body");
      assertFieldError(await t.call("PATCH", base(`/${s.id}`), { value: "x" }, owner.access_token, { "if-match": "yesterday" }), "if-match");
      assertFieldError(await t.call("PATCH", base(`/${s.id}`), { name: "RENAMED" }, owner.access_token), "name");
      assertFieldError(await t.call("PATCH", base(`/${s.id}`), { version: 0, value: "x" }, owner.access_token), "version");
      assertFieldError(await t.call("PATCH", base(`/${s.id}`), { value: "é".repeat(40_000) }, owner.access_token), "value");
      assertFieldError(await t.call("DELETE", base(`/${s.id}`), undefined, owner.access_token, { "if-match": "-1" }), "if-match");
      for (const v of ["0", "x", "1.5", "9999999999"])
        assertFieldError(await t.call("POST", base(`/${s.id}/versions/${v}/reveal`), undefined, owner.access_token), "version");
      assertFieldError(
        await t.call("GET", base(`/${s.id}/versions?cursor=${Buffer.from("abc").toString("base64url")}`), undefined, owner.access_token),
        "cursor",
      );
      for (const body of [{}, { version: 0 }, { version: "one" }, { version: 1, extra: true }]) {
        const res = await t.call("POST", base(`/${s.id}/$rollback`), body, owner.access_token);
        assert.equal(res.statusCode, 400, res.body);
      }
      assert.equal((await reveal(s.id)).json().version, 1, "nothing changed");
    });

    it("keeps team and personal secrets in their scope; other orgs' teams and users are refused like missing ones", async () => {
      const name = uniqueName("DB_URL");
      const org = await makeSecret({ name, value: "org-value" });
      const team = await makeSecret({ name, value: "team-value", team_id: teamId }, dev);
      const mine = await makeSecret({ name, value: "dev-value", user_id: dev.id }, dev);
      assert.deepEqual([org.scope, team.scope, team.team_id, mine.scope, mine.user_id], ["org", "team", teamId, "user", dev.id]);
      assertProblem(await t.call("POST", base(), { name, value: "again", team_id: teamId }, owner.access_token), 409, "SECRET_NAME_TAKEN", "name");

      // another org's team or user, and a missing one, get the same answer
      const foreignTeam = await t.call("POST", base(), { name: uniqueName(), value: "x", team_id: otherTeamId }, owner.access_token);
      const missingTeam = await t.call("POST", base(), { name: uniqueName(), value: "x", team_id: `team_${"0".repeat(26)}` }, owner.access_token);
      assertFieldError(foreignTeam, "team_id");
      assert.equal(foreignTeam.statusCode, missingTeam.statusCode);
      assert.equal(foreignTeam.json().code, missingTeam.json().code);
      const foreignUser = await t.call("POST", base(), { name: uniqueName(), value: "x", user_id: stranger.id }, owner.access_token);
      assertFieldError(foreignUser, "user_id");
      assertFieldError(await t.call("POST", base(), { name: uniqueName(), value: "x", user_id: `usr_${"0".repeat(26)}` }, owner.access_token), "user_id");
      // nobody makes a personal secret in another member's name
      assertProblem(await t.call("POST", base(), { name: uniqueName(), value: "x", user_id: dev.id }, owner.access_token), 403, "FORBIDDEN", "user_id");

      // a personal secret exists only for its member
      assertProblem(await t.call("GET", base(`/${mine.id}`), undefined, owner.access_token), 404, "SECRET_NOT_FOUND");
      assertProblem(await reveal(mine.id, owner), 404, "SECRET_NOT_FOUND");
      assertProblem(await t.call("PATCH", base(`/${mine.id}`), { value: "taken" }, owner.access_token), 404, "SECRET_NOT_FOUND");
      assertProblem(await t.call("DELETE", base(`/${mine.id}`), undefined, owner.access_token), 404, "SECRET_NOT_FOUND");
      const ownerList = await t.call("GET", base("?scope=user"), undefined, owner.access_token);
      assert.deepEqual(ownerList.json().items, []);
      assert.deepEqual(
        (await t.call("GET", base("?scope=user"), undefined, dev.access_token)).json().items.map((x: { id: string }) => x.id),
        [mine.id],
      );
      assert.equal((await reveal(mine.id, dev)).json().value, "dev-value");
      // an API key of the member acts for them
      const key = await makeKey(t, orgId, dev, { roles: ["developer"] });
      assert.equal((await reveal(mine.id, { ...dev, access_token: key.secret })).json().value, "dev-value");

      const teamList = await t.call("GET", base(`?team_id=${teamId}`), undefined, owner.access_token);
      assert.deepEqual(
        teamList.json().items.map((x: { id: string }) => x.id),
        [team.id],
      );
      assert.deepEqual((await t.call("GET", base(`?team_id=${otherTeamId}`), undefined, owner.access_token)).json().items, []);
      assert.equal((await reveal(team.id, owner)).json().value, "team-value");

      // org B's secret through org A is missing; org A's through org B too
      const theirs = await t.call("POST", base("", otherOrgId), { name: uniqueName(), value: "theirs" }, stranger.access_token);
      assert.equal(theirs.statusCode, 201, theirs.body);
      for (const [method, path] of [
        ["GET", ""],
        ["POST", "/reveal"],
        ["POST", "/versions/1/reveal"],
        ["GET", "/versions"],
        ["DELETE", ""],
      ]) {
        assertProblem(await t.call(method, base(`/${theirs.json().id}${path}`), undefined, owner.access_token), 404, "SECRET_NOT_FOUND", "secretId");
      }
      assertProblem(await t.call("GET", base(`/${org.id}`, otherOrgId), undefined, owner.access_token), 404, "NOT_FOUND");
      // a removed member's personal secrets end with the membership
      await t.db.owner.execute(sql`delete from memberships where org_id = ${orgId} and user_id = ${dev.id}`);
      const left = await t.db.owner.execute(sql`select count(*)::int as n from vault_secrets where id = ${mine.id}`);
      assert.equal((left as unknown as { rows: { n: number }[] }).rows[0].n, 0);
      await addMember(t, orgId, dev, "developer");
      // and a team's with the team
      const shortLived = (await t.call("POST", `/v1/orgs/${orgId}/teams`, { name: "Short-lived" }, owner.access_token)).json().id as string;
      const teamSecret = await makeSecret({ team_id: shortLived });
      const deleted = await t.call("DELETE", `/v1/orgs/${orgId}/teams/${shortLived}`, undefined, owner.access_token);
      assert.ok(deleted.statusCode < 300, deleted.body);
      assertProblem(await t.call("GET", base(`/${teamSecret.id}`), undefined, owner.access_token), 404, "SECRET_NOT_FOUND");
    });

    it("stops serving an expired secret's value (410) until it gets a new expiry", async () => {
      const s = await makeSecret({ value: "short-lived", expires_at: new Date(Date.now() + 3_600_000).toISOString() });
      assert.equal((await reveal(s.id)).statusCode, 200);
      await t.db.owner.execute(sql`update vault_secrets set expires_at = now() - interval '1 minute' where id = ${s.id}`);
      assertProblem(await reveal(s.id), 410, "SECRET_EXPIRED");
      assertProblem(await reveal(s.id, owner, 1), 410, "SECRET_EXPIRED");
      assert.equal((await t.call("GET", base(`/${s.id}`), undefined, owner.access_token)).statusCode, 200, "its metadata stays readable");
      assert.equal((await t.call("PATCH", base(`/${s.id}`), { expires_at: null }, owner.access_token)).statusCode, 200);
      assert.equal((await reveal(s.id)).json().value, "short-lived");
    });
  });
}
