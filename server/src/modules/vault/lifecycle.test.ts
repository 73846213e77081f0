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
  makeOrg,
  signUp,
  uniqueSlug,
  type TestApp,
  type TestUser,
} from "../../../test/harness.ts";
import { startSmtp, type TestSmtp } from "../../../test/smtp.ts";
import { lifecycleRepo } from "./lifecycle.repo.ts";
import { createLifecycleService } from "./lifecycle.service.ts";

const DAY = 86_400_000;

for (const backend of BACKENDS) {
  describe(`vault lifecycle (${backend})`, () => {
    let t: TestApp;
    let smtp: TestSmtp;
    let owner: TestUser;
    let admin: TestUser;
    let dev: TestUser;
    let viewer: TestUser;
    let stranger: TestUser;
    let orgId: string;
    let otherOrgId: string;
    /** The lifecycle runs "later" (the app keeps real time, so its tokens stay valid), as in vault-keys.test.ts. */
    let ahead = 0;
    const clock = { now: () => new Date(Date.now() + ahead) };
    let lifecycle: ReturnType<typeof createLifecycleService>;

    before(async () => {
      smtp = await startSmtp();
      // no worker: the test runs the jobs it means to (drain), so nothing runs behind its back
      t = await createTestApp({ backend, worker: false, env: { SMTP_URL: smtp.url } });
      owner = await signUp(t, "Olivia Owner");
      admin = await signUp(t, "Ada Admin");
      dev = await signUp(t, "Dana Dev");
      viewer = await signUp(t, "Vic Viewer");
      stranger = await signUp(t, "Sam Stranger");
      orgId = await makeOrg(t, owner, "Life Inc", uniqueSlug("vlife"));
      otherOrgId = await makeOrg(t, stranger, "Other Inc", uniqueSlug("vlife"));
      await addMember(t, orgId, admin, "admin");
      await addMember(t, orgId, dev, "developer");
      await addMember(t, orgId, viewer, "viewer");
      const d = t.deps;
      lifecycle = createLifecycleService({
        db: d.db,
        clock,
        repo: lifecycleRepo,
        audit: d.audit,
        jobs: d.jobs,
        mailer: d.mailer,
        publicUrl: d.config.publicUrl,
      });
    });
    after(async () => {
      await t.close();
      await smtp.close();
    });

    const secrets = (path = "", org = orgId) => `/v1/orgs/${org}/secrets${path}`;
    const vault = (org = orgId) => `/v1/orgs/${org}/vault`;
    const uniqueName = () => `LIFE_${randomBytes(4).toString("hex").toUpperCase()}`;
    const events = async (action: string, org = orgId) => (await t.deps.audit.list(org, {}, 1000)).filter((e) => e.action === action);
    const inDays = (n: number) => new Date(Date.now() + n * DAY).toISOString();
    async function makeSecret(body: Record<string, unknown> = {}, by = owner, org = orgId) {
      const res = await t.call("POST", secrets("", org), { name: uniqueName(), value: `v-${randomBytes(8).toString("hex")}`, ...body }, by.access_token);
      assert.equal(res.statusCode, 201, res.body);
      return res.json() as { id: string; name: string; version: number; notify_before_days: number | null; rotation_reminder_days: number | null };
    }
    /** Runs the pass for `org` as of `days` from now. */
    async function passAt(days: number, org = orgId) {
      ahead = days * DAY;
      try {
        return await lifecycle.runOrg(org);
      } finally {
        ahead = 0;
      }
    }
    /** Sends the queued notices (the mail jobs) and answers who got mail about `name`. */
    async function mailedAbout(name: string): Promise<string[]> {
      const before = smtp.messages.length;
      await t.deps.jobs.drain();
      return smtp.messages
        .slice(before)
        .filter((m) => m.subject.includes(name))
        .map((m) => m.to)
        .sort();
    }
    const row = async <T>(q: ReturnType<typeof sql>) => ((await t.db.owner.execute(q)) as unknown as { rows: T[] }).rows;

    it("an expiry notice goes out once per expiry: audited as secret.expiring, mailed to the creator and the owners and admins", async () => {
      const s = await makeSecret({ expires_at: inDays(30), notify_before_days: 10 }, dev);
      assert.equal(s.notify_before_days, 10);
      assert.deepEqual((await passAt(19)).expiring, [], "outside the notice window");
      assert.deepEqual((await passAt(21)).expiring, [s.id]);
      const [ev] = (await events("secret.expiring")).filter((e) => e.targetId === s.id);
      assert.equal(ev.actorType, "system");
      assert.deepEqual((ev.diff as Record<string, unknown>).notify_before_days, 10);
      assert.ok(!JSON.stringify(ev).includes("v-"), "no value in the event");
      assert.deepEqual(await mailedAbout(s.name), [admin.email, dev.email, owner.email].sort(), "not the viewer");
      const mail = smtp.messages.find((m) => m.to === owner.email && m.subject.includes(s.name));
      assert.match(mail?.subject ?? "", /expires on/);
      assert.match(mail?.text ?? "", new RegExp(`http://plinth.test/orgs/${orgId}/secrets/${s.id}`));
      assert.deepEqual((await passAt(22)).expiring, [], "sent once");
      assert.deepEqual(await mailedAbout(s.name), []);

      // a later expiry is an expiry of its own: warned of again, in its window
      const moved = await t.call("PATCH", secrets(`/${s.id}`), { expires_at: inDays(60) }, dev.access_token);
      assert.equal(moved.statusCode, 200, moved.body);
      assert.deepEqual((await passAt(45)).expiring, []);
      assert.deepEqual((await passAt(51)).expiring, [s.id]);
      assert.equal((await events("secret.expiring")).filter((e) => e.targetId === s.id).length, 2);

      // and its passing is audited once
      assert.deepEqual((await passAt(61)).expired, [s.id]);
      assert.deepEqual((await passAt(62)).expired, []);
      assert.equal((await events("secret.expired")).filter((e) => e.targetId === s.id).length, 1);
    });

    it("the notice window is 7 days unless set; notify_before_days without an expiry is kept for a later one", async () => {
      const plain = await makeSecret({ expires_at: inDays(20) });
      assert.equal(plain.notify_before_days, 7);
      assert.deepEqual((await passAt(12)).expiring, []);
      assert.ok((await passAt(14)).expiring.includes(plain.id));

      const kept = await makeSecret({ notify_before_days: 3 });
      assert.equal(kept.notify_before_days, 3);
      const later = await t.call("PATCH", secrets(`/${kept.id}`), { expires_at: inDays(10) }, owner.access_token);
      assert.equal(later.json().notify_before_days, 3);
      assert.ok(!(await passAt(6)).expiring.includes(kept.id));
      assert.ok((await passAt(8)).expiring.includes(kept.id));
    });

    it("a personal secret's notices go to its member alone", async () => {
      const mine = await makeSecret({ user_id: dev.id, expires_at: inDays(5) }, dev);
      assert.ok((await passAt(0)).expiring.includes(mine.id));
      assert.deepEqual(await mailedAbout(mine.name), [dev.email]);
    });

    it("a rotation reminder goes out once per version when the current one is older than rotation_reminder_days", async () => {
      const s = await makeSecret({ rotation_reminder_days: 30 }, dev);
      assert.equal(s.rotation_reminder_days, 30);
      assert.ok(!(await passAt(29)).rotation_due.includes(s.id));
      assert.ok((await passAt(31)).rotation_due.includes(s.id));
      const [ev] = (await events("secret.rotation_due")).filter((e) => e.targetId === s.id);
      assert.equal((ev.diff as Record<string, unknown>).version, 1);
      const mailed = await mailedAbout(s.name);
      assert.deepEqual(mailed, [admin.email, dev.email, owner.email].sort());
      assert.ok(!(await passAt(40)).rotation_due.includes(s.id), "once for version 1");

      const rotated = await t.call("PATCH", secrets(`/${s.id}`), { value: "a new one" }, dev.access_token);
      assert.equal(rotated.json().version, 2);
      assert.ok(!(await passAt(29)).rotation_due.includes(s.id), "version 2 is young");
      assert.ok((await passAt(31)).rotation_due.includes(s.id));
      assert.equal((await events("secret.rotation_due")).filter((e) => e.targetId === s.id).length, 2);

      // switching the reminder off stops it
      await t.call("PATCH", secrets(`/${s.id}`), { rotation_reminder_days: null, value: "third" }, dev.access_token);
      assert.ok(!(await passAt(100)).rotation_due.includes(s.id));
    });

    it("retention keeps the newest keep_versions versions; a pruned version answers 404 saying so; the current one stays", async () => {
      const s = await makeSecret();
      for (const v of ["two", "three", "four"]) assert.equal((await t.call("PATCH", secrets(`/${s.id}`), { value: v }, owner.access_token)).statusCode, 200);
      const set = await t.call("PATCH", vault(), { keep_versions: 2 }, admin.access_token);
      assert.equal(set.statusCode, 200, set.body);
      assert.equal(set.json().keep_versions, 2);
      assert.equal(set.json().keep_days, null);

      const pass = await passAt(0);
      assert.ok(pass.versions_pruned >= 2);
      const [ev] = (await events("secret.versions_pruned")).filter((e) => e.targetId === s.id);
      assert.deepEqual(ev.diff, { name: s.name, count: 2, versions: [1, 2], keep_versions: 2, keep_days: null });

      const listed = await t.call("GET", secrets(`/${s.id}/versions`), undefined, owner.access_token);
      assert.deepEqual(
        listed.json().items.map((v: { version: number }) => v.version),
        [4, 3],
      );
      const gone = await t.call("POST", secrets(`/${s.id}/versions/1/reveal`), undefined, owner.access_token);
      assertProblem(gone, 404, "SECRET_VERSION_NOT_FOUND", { field: "version" });
      assert.match(gone.json().detail, /retention/);
      const back = await t.call("POST", secrets(`/${s.id}/$rollback`), { version: 2 }, owner.access_token);
      assertProblem(back, 404, "SECRET_VERSION_NOT_FOUND");
      assert.match(back.json().detail, /retention/);
      const never = await t.call("POST", secrets(`/${s.id}/versions/9/reveal`), undefined, owner.access_token);
      assert.match(never.json().detail, /has no version 9/);
      assert.equal((await t.call("POST", secrets(`/${s.id}/versions/3/reveal`), undefined, owner.access_token)).json().value, "three");

      // keep_versions 1: only the current version is left, and it reveals
      await t.call("PATCH", vault(), { keep_versions: 1 }, admin.access_token);
      await passAt(0);
      assert.deepEqual(
        (await t.call("GET", secrets(`/${s.id}/versions`), undefined, owner.access_token)).json().items.map((v: { version: number }) => v.version),
        [4],
      );
      assert.equal((await t.call("POST", secrets(`/${s.id}/reveal`), undefined, owner.access_token)).json().value, "four");
      await t.call("PATCH", vault(), { keep_versions: null }, admin.access_token);
    });

    it("keep_days deletes old versions once they are older, never the current one", async () => {
      const s = await makeSecret();
      await t.call("PATCH", secrets(`/${s.id}`), { value: "second" }, owner.access_token);
      const set = await t.call("PATCH", vault(), { keep_days: 10 }, owner.access_token);
      assert.equal(set.json().keep_days, 10);
      assert.ok(!(await passAt(9)).versions_pruned);
      await passAt(11);
      const versions = await row<{ version: number }>(sql`select version from vault_secret_versions where secret_id = ${s.id} order by version`);
      assert.deepEqual(
        versions.map((v) => v.version),
        [2],
      );
      await t.call("PATCH", vault(), { keep_days: null }, owner.access_token);
    });

    it("ended leases are deleted a week after they ended (revoked or expired); live and recent ones stay", async () => {
      const s = await makeSecret();
      const issue = async () => {
        const res = await t.call("POST", `/v1/orgs/${orgId}/secret-leases`, { secret_ids: [s.id], ttl_seconds: 3600 }, owner.access_token);
        assert.equal(res.statusCode, 201, res.body);
        return res.json().id as string;
      };
      const revoked = await issue();
      const expiring = await issue();
      assert.equal((await t.call("DELETE", `/v1/orgs/${orgId}/secret-leases/${revoked}`, undefined, owner.access_token)).statusCode, 204);
      const left = async () => (await row<{ id: string }>(sql`select id from secret_leases where id in (${revoked}, ${expiring})`)).map((r) => r.id);
      await passAt(6);
      assert.deepEqual((await left()).sort(), [expiring, revoked].sort());
      ahead = 7 * DAY + 60_000; // a week and a minute after the revocation; the other lease ended 59 minutes later
      await lifecycle.runOrg(orgId);
      ahead = 0;
      assert.deepEqual(await left(), [expiring]);
      await passAt(8);
      assert.deepEqual(await left(), []);
    });

    it("the scheduled run takes the due orgs only, each in its own tenant, and sets when each is next due", async () => {
      const s = await makeSecret({ expires_at: inDays(3) });
      const theirs = await makeSecret({ expires_at: inDays(3) }, stranger, otherOrgId);
      const due = await row<{ org_id: string; lifecycle_due_at: Date | null }>(
        sql`select org_id, lifecycle_due_at from vault_settings where org_id in (${orgId}, ${otherOrgId})`,
      );
      assert.equal(due.length, 2, "a write makes its org due");
      const passes = await lifecycle.runDue();
      const mine = passes.find((p) => p.org_id === orgId);
      const other = passes.find((p) => p.org_id === otherOrgId);
      assert.ok(mine?.expiring.includes(s.id) && !mine.expiring.includes(theirs.id));
      assert.deepEqual(other?.expiring, [theirs.id]);
      assert.equal((await events("secret.expiring", otherOrgId)).length, 1);
      assert.deepEqual(await mailedAbout(theirs.name), [stranger.email], "the other org's notice goes to its own people only");
      // next due: the expiry itself (to audit secret.expired), not now
      const [next] = await row<{ due: string; expires: string }>(
        sql`select st.lifecycle_due_at as due, s.expires_at as expires from vault_settings st join vault_secrets s on s.org_id = st.org_id
            where st.org_id = ${otherOrgId} and s.id = ${theirs.id}`,
      );
      assert.equal(new Date(next.due).getTime(), new Date(next.expires).getTime());
      assert.ok(!(await lifecycle.runDue()).some((p) => p.org_id === otherOrgId), "not due again until then");
    });

    it("a notice whose secret changed before the mail went out is not sent", async () => {
      const s = await makeSecret({ expires_at: inDays(2) }, dev);
      assert.ok((await passAt(0)).expiring.includes(s.id));
      await t.call("PATCH", secrets(`/${s.id}`), { expires_at: inDays(200) }, dev.access_token);
      assert.deepEqual(await mailedAbout(s.name), []);
    });

    it("refuses bad lifecycle input naming the field, and changes nothing", async () => {
      const s = await makeSecret({ notify_before_days: 5, rotation_reminder_days: 20 });
      for (const [field, bad] of [
        ["notify_before_days", 0],
        ["notify_before_days", 366],
        ["notify_before_days", "7"],
        ["notify_before_days", 1.5],
        ["rotation_reminder_days", 0],
        ["rotation_reminder_days", 3651],
        ["rotation_reminder_days", true],
      ] as const) {
        assertFieldError(await t.call("POST", secrets(), { name: uniqueName(), value: "x", [field]: bad }, owner.access_token), field);
        assertFieldError(await t.call("PATCH", secrets(`/${s.id}`), { [field]: bad }, owner.access_token), field);
      }
      const still = (await t.call("GET", secrets(`/${s.id}`), undefined, owner.access_token)).json();
      assert.equal(still.notify_before_days, 5);
      assert.equal(still.rotation_reminder_days, 20);
      assert.equal(still.version, 1);

      const before = (await t.call("GET", vault(), undefined, owner.access_token)).json();
      for (const [field, bad] of [
        ["keep_versions", 0],
        ["keep_versions", 1001],
        ["keep_versions", "3"],
        ["keep_days", 0],
        ["keep_days", 3651],
        ["keep_days", 2.5],
      ] as const) {
        assertFieldError(await t.call("PATCH", vault(), { [field]: bad }, owner.access_token), field);
      }
      assert.equal((await t.call("PATCH", vault(), {}, owner.access_token)).statusCode, 400);
      assert.equal((await t.call("PATCH", vault(), { keep_days: 5, extra: 1 }, owner.access_token)).statusCode, 400);
      assert.deepEqual((await t.call("GET", vault(), undefined, owner.access_token)).json(), before);
    });

    it("retention settings need vault:manage and stay in their org", async () => {
      assertProblem(await t.call("PATCH", vault(), { keep_versions: 3 }, dev.access_token), 403, "FORBIDDEN");
      assertProblem(await t.call("PATCH", vault(), { keep_versions: 3 }, stranger.access_token), 404, "NOT_FOUND");
      const theirs = await t.call("PATCH", vault(otherOrgId), { keep_versions: 3 }, stranger.access_token);
      assert.equal(theirs.json().keep_versions, 3);
      assert.equal((await t.call("GET", vault(), undefined, owner.access_token)).json().keep_versions, null);
      const changed = await events("vault.settings_updated", otherOrgId);
      assert.deepEqual(changed.at(-1)?.diff, { keep_versions: [null, 3] });
    });
  });
}
