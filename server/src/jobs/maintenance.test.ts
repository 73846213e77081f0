import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { sql } from "drizzle-orm";
import { BACKENDS, createTestApp, makeOrg, signUp, uniqueEmail, uniqueSlug, type TestApp, type TestUser } from "../../test/harness.ts";
import { startSmtp, type TestSmtp } from "../../test/smtp.ts";
import { DEAD_JOB_RETENTION_MS } from "../deps.ts";
import { createManualClock } from "../lib/clock.ts";
import { EMAIL_JOB } from "../modules/identity/identity.service.ts";
import { EMAIL_TOKEN_GRACE_MS, SESSION_GRACE_MS } from "../modules/identity/maintenance.ts";
import { INVITATION_GRACE_MS } from "../modules/invitations/index.ts";
import { INVITATION_JOB } from "../modules/invitations/invitations.service.ts";
import { markVerified, relogin, tokenFor } from "../modules/invitations/invitations.test-kit.ts";
import { RESTORE_WINDOW_MS } from "../modules/orgs/orgs.lifecycle.service.ts";

const DAY = 24 * 60 * 60 * 1000;
const T0 = new Date("2031-03-01T00:00:00Z");

for (const backend of BACKENDS) {
  describe(`maintenance tasks (${backend})`, () => {
    const clock = createManualClock(T0);
    let t: TestApp;
    let smtp: TestSmtp;
    before(async () => {
      smtp = await startSmtp();
      // no worker: the tasks run only when a test says so (their schedules would otherwise race the assertions)
      t = await createTestApp({ backend, worker: false, clock, env: { SMTP_URL: smtp.url } });
    });
    after(async () => {
      await t.close();
      await smtp.close();
    });

    const ids = async (table: string, where = sql`true`): Promise<Set<string>> => {
      const res = (await t.db.owner.execute(sql`select id from ${sql.identifier(table)} where ${where}`)) as unknown as { rows: { id: string }[] };
      return new Set(res.rows.map((r) => String(r.id)));
    };
    const gone = (beforeIds: Set<string>, afterIds: Set<string>) => [...beforeIds].filter((id) => !afterIds.has(id)).sort();
    const at = (ms: number) => clock.set(new Date(T0.getTime() + ms));

    it("lists every task with its schedule, and signing-key retirement among them", async () => {
      const names = (await t.deps.maintenance.list()).map((x) => x.name);
      assert.deepEqual(names, [
        "identity.email-tokens",
        "identity.sessions",
        "ingestion.retention",
        "invitations.ended",
        "jobs.dead",
        "keys.retire",
        "orgs.purge-deleted",
        "vault.lifecycle",
      ]);
      const keys = await t.deps.maintenance.run("keys.retire");
      assert.deepEqual(keys.counts, { signingKeys: 0 });
      const listed = (await t.deps.maintenance.list()).find((x) => x.name === "keys.retire");
      assert.equal(listed?.lastRun?.outcome, "ok");
      assert.equal(listed?.lastRun?.by, "cli");
      assert.deepEqual(listed?.lastRun?.counts, { signingKeys: 0 });
      await assert.rejects(t.deps.maintenance.run("no.such-task"), /no maintenance task no\.such-task/);
    });

    it("sessions: removes those expired or revoked more than the grace period ago, with their refresh tokens; keeps the rest", async () => {
      at(0);
      const ended = await signUp(t, "Ended");
      const live = await signUp(t, "Live");
      const [endedSession] = await ids("sessions", sql`user_id = ${ended.id}`);
      assert.equal((await t.call("POST", "/v1/auth/logout", { refresh_token: ended.refresh_token })).statusCode, 204);
      at(SESSION_GRACE_MS - DAY); // revoked six days ago: kept
      assert.deepEqual(await t.deps.maintenance.run("identity.sessions").then((r) => r.counts), { sessions: 0, refreshTokens: 0 });
      at(SESSION_GRACE_MS + DAY);
      const recent = await relogin(t, ended); // a fresh session of the same person: kept
      const sessionsBefore = await ids("sessions");
      const refreshBefore = await ids("refresh_tokens");
      const endedTokens = await ids("refresh_tokens", sql`session_id = ${endedSession}`);
      const r = await t.deps.maintenance.run("identity.sessions");
      const sessionsGone = gone(sessionsBefore, await ids("sessions"));
      assert.ok(sessionsGone.includes(endedSession));
      assert.equal((await ids("sessions", sql`user_id = ${live.id}`)).size, 1, "the live session stays");
      assert.equal((await t.call("GET", "/v1/me", undefined, recent.access_token)).statusCode, 200);
      assert.equal(r.counts.sessions, sessionsGone.length);
      assert.deepEqual(gone(refreshBefore, await ids("refresh_tokens")), [...endedTokens].sort());
      assert.equal(r.counts.refreshTokens, endedTokens.size);
      // every session left is live or ended within the grace period
      const cutoff = new Date(clock.now().getTime() - SESSION_GRACE_MS);
      assert.equal((await ids("sessions", sql`expires_at < ${cutoff.toISOString()} or revoked_at < ${cutoff.toISOString()}`)).size, 0);
      // the live session expires (refresh TTL, 30 days) and, a grace period later, goes too
      at(30 * DAY + SESSION_GRACE_MS + DAY);
      await t.deps.maintenance.run("identity.sessions");
      assert.equal((await ids("sessions", sql`user_id = ${live.id}`)).size, 0);
      assert.equal((await ids("sessions", sql`user_id = ${ended.id}`)).size, 1, "the later session is within its 30 days");
    });

    it("email tokens: removes expired and used ones past a day; keeps one still usable", async () => {
      at(100 * DAY);
      const u = await signUp(t, "Mailed");
      await t.deps.jobs.drain(EMAIL_JOB); // the verification mail: its token is made when it is sent
      await smtp.waitFor(u.email);
      const [oldToken] = await ids("email_tokens", sql`user_id = ${u.id}`);
      assert.ok(oldToken);
      at(100 * DAY + 10 * DAY); // long expired (a verification link lives a day or two)
      assert.equal((await t.call("POST", "/v1/auth/password-reset", { email: u.email })).statusCode, 202);
      await t.deps.jobs.drain(EMAIL_JOB);
      await smtp.waitFor(u.email, (m) => /reset/i.test(m.subject));
      const before = await ids("email_tokens");
      const fresh = [...(await ids("email_tokens", sql`user_id = ${u.id}`))].filter((id) => id !== oldToken);
      assert.equal(fresh.length, 1);
      const r = await t.deps.maintenance.run("identity.email-tokens");
      const removed = gone(before, await ids("email_tokens"));
      assert.ok(removed.includes(oldToken));
      assert.ok(!removed.includes(fresh[0]), "the fresh reset token stays");
      assert.equal(r.counts.emailTokens, removed.length);
      const cutoff = new Date(clock.now().getTime() - EMAIL_TOKEN_GRACE_MS).toISOString();
      assert.equal((await ids("email_tokens", sql`expires_at < ${cutoff} or consumed_at < ${cutoff}`)).size, 0);
    });

    it("invitations: removes accepted, revoked and expired ones of every org past 30 days; keeps pending and recent ones", async () => {
      const base = 200 * DAY;
      at(base);
      let owner = await signUp(t, "Owner");
      let other = await signUp(t, "Other owner");
      const invitee = await signUp(t, "Invitee");
      await markVerified(t, invitee);
      const orgA = await makeOrg(t, owner);
      const orgB = await makeOrg(t, other);
      const invite = async (orgId: string, by: TestUser, email = uniqueEmail("inv")) => {
        const res = await t.call("POST", `/v1/orgs/${orgId}/invitations`, { email, role: "viewer" }, by.access_token);
        assert.equal(res.statusCode, 201, res.body);
        return res.json().id as string;
      };
      const revoke = async (orgId: string, id: string, by: TestUser) =>
        assert.equal((await t.call("DELETE", `/v1/orgs/${orgId}/invitations/${id}`, undefined, by.access_token)).statusCode, 204);
      const accepted = await invite(orgA, owner, invitee.email);
      await t.deps.jobs.drain(INVITATION_JOB);
      const token = await tokenFor(smtp, invitee.email);
      assert.equal((await t.call("POST", "/v1/invitations/accept", { token }, invitee.access_token)).statusCode, 200);
      const revoked = await invite(orgA, owner);
      await revoke(orgA, revoked, owner);
      const expired = await invite(orgA, owner); // its link runs out after 7 days
      const revokedInB = await invite(orgB, other);
      await revoke(orgB, revokedInB, other);
      at(base + 20 * DAY); // ended, but within the grace period: all kept
      assert.deepEqual((await t.deps.maintenance.run("invitations.ended")).counts, { invitations: 0 });
      at(base + INVITATION_GRACE_MS + 8 * DAY);
      [owner, other] = [await relogin(t, owner), await relogin(t, other)];
      const pending = await invite(orgA, owner);
      const recentlyRevoked = await invite(orgB, other);
      await revoke(orgB, recentlyRevoked, other);
      const before = await ids("invitations");
      const r = await t.deps.maintenance.run("invitations.ended");
      const afterIds = await ids("invitations");
      assert.deepEqual(gone(before, afterIds), [accepted, expired, revoked, revokedInB].sort());
      assert.equal(r.counts.invitations, 4);
      assert.ok(afterIds.has(pending) && afterIds.has(recentlyRevoked));
      // the sweep's policy opened nothing for tenants: org A's transaction sees only org A's invitations
      const seenByA = (await t.db.tx({ orgId: orgA }, (tx) => tx.execute(sql`select org_id from invitations`))) as unknown as { rows: { org_id: string }[] };
      assert.deepEqual([...new Set(seenByA.rows.map((x) => x.org_id))], [orgA]);
      const seenByNobody = (await t.db.tx({}, (tx) => tx.execute(sql`select count(*)::int as n from invitations`))) as unknown as { rows: { n: number }[] };
      assert.equal(seenByNobody.rows[0].n, 0, "a transaction without a tenant or the sweep sees none");
      const deletedByA = (await t.db.tx({ orgId: orgA }, (tx) => tx.execute(sql`delete from invitations where org_id = ${orgB}`))) as unknown as {
        rowCount?: number;
        affectedRows?: number;
      };
      assert.equal(deletedByA.rowCount ?? deletedByA.affectedRows ?? 0, 0, "org A's transaction deletes none of org B's");
      assert.ok((await ids("invitations", sql`org_id = ${orgB}`)).has(recentlyRevoked));
    });

    it("deleted orgs: purges those past their 30-day restore window through the orgs' purge jobs; keeps the restorable", async () => {
      const base = 400 * DAY;
      at(base);
      const owner = await signUp(t, "Deleter");
      const slugOld = uniqueSlug();
      const slugNew = uniqueSlug();
      const oldOrg = await makeOrg(t, owner, "Old", slugOld);
      const newOrg = await makeOrg(t, owner, "New", slugNew);
      const live = await makeOrg(t, owner, "Live");
      const actor = { type: "user" as const, id: owner.id };
      await t.deps.orgLifecycle.deleteOrg(oldOrg, slugOld, actor);
      at(base + 20 * DAY);
      await t.deps.orgLifecycle.deleteOrg(newOrg, slugNew, actor);
      at(base + RESTORE_WINDOW_MS + DAY);
      const r = await t.deps.maintenance.run("orgs.purge-deleted");
      assert.deepEqual(r.counts, { orgs: 1 });
      const left = await ids("orgs", sql`id in (${oldOrg}, ${newOrg}, ${live})`);
      assert.deepEqual([...left].sort(), [newOrg, live].sort());
      assert.deepEqual((await t.deps.maintenance.run("orgs.purge-deleted")).counts, { orgs: 0 }, "nothing twice");
    });

    it("dead jobs: removes jobs failed for good before the retention; keeps newer dead, pending and schedule rows", async () => {
      const base = 600 * DAY;
      at(base);
      t.deps.jobs.register("test.always-fails", async () => {
        throw new Error("boom");
      });
      const enqueue = (kind: string, opts: { runAt?: Date; maxAttempts?: number } = {}) => t.db.tx({}, (tx) => t.deps.jobs.enqueue(tx, kind, {}, opts));
      const oldDead = await enqueue("test.always-fails", { maxAttempts: 1 });
      await t.deps.jobs.drain("test.always-fails");
      at(base + DEAD_JOB_RETENTION_MS - 2 * DAY);
      const newDead = await enqueue("test.always-fails", { maxAttempts: 1 });
      await t.deps.jobs.drain("test.always-fails");
      const pending = await enqueue("test.later", { runAt: new Date(base + 1000 * DAY) });
      at(base + DEAD_JOB_RETENTION_MS + DAY);
      const before = await ids("jobs");
      const r = await t.deps.maintenance.run("jobs.dead");
      const afterIds = await ids("jobs");
      assert.deepEqual(gone(before, afterIds), [oldDead]);
      assert.deepEqual(r.counts, { jobs: 1 });
      assert.ok(afterIds.has(newDead) && afterIds.has(pending));
      for (const name of (await t.deps.maintenance.list()).map((x) => x.name)) assert.ok(afterIds.has(`schedule:${name}`), name);
    });

    it("a scheduled run records its outcome on its schedule row and moves to its next run", async () => {
      at(700 * DAY);
      const before = (await t.deps.maintenance.list()).find((x) => x.name === "jobs.dead");
      assert.ok(before?.nextRunAt && before.nextRunAt <= clock.now());
      assert.ok((await t.deps.jobs.drain("jobs.dead")) >= 1);
      const ran = (await t.deps.maintenance.list()).find((x) => x.name === "jobs.dead");
      assert.equal(ran?.lastRun?.by, "schedule");
      assert.equal(ran?.lastRun?.outcome, "ok");
      assert.deepEqual(ran?.lastRun?.counts, { jobs: 1 }, "the newer dead job, now past its retention");
      assert.equal(ran?.nextRunAt?.getTime(), clock.now().getTime() + 24 * 60 * 60 * 1000);
    });

    it("a failing task keeps its error as its last run and its schedule (retried within a period); run by hand it rejects", async () => {
      at(800 * DAY);
      let fail = true;
      await t.deps.maintenance.registerMaintenance("test.flaky", 60 * 60 * 1000, async () => {
        if (fail) throw new Error("disk on fire");
        return { things: 2 };
      });
      await assert.rejects(
        t.deps.maintenance.registerMaintenance("test.flaky", 1000, async () => ({})),
        /registered twice/,
      );
      assert.equal(await t.deps.jobs.drain("test.flaky"), 1);
      const failed = (await t.deps.maintenance.list()).find((x) => x.name === "test.flaky");
      assert.equal(failed?.lastRun?.outcome, "failed");
      assert.equal(failed?.lastRun?.error, "disk on fire");
      assert.ok(failed?.nextRunAt && failed.nextRunAt.getTime() <= clock.now().getTime() + 60 * 60 * 1000, "retried within a period");
      assert.equal((await t.deps.jobs.scheduleState("test.flaky"))?.lastError, "disk on fire");
      await assert.rejects(t.deps.maintenance.run("test.flaky"), /disk on fire/);
      assert.equal((await t.deps.maintenance.list()).find((x) => x.name === "test.flaky")?.lastRun?.by, "cli");
      fail = false;
      at(800 * DAY + 60 * 60 * 1000);
      assert.equal(await t.deps.jobs.drain("test.flaky"), 1);
      const ok = (await t.deps.maintenance.list()).find((x) => x.name === "test.flaky");
      assert.equal(ok?.lastRun?.outcome, "ok");
      assert.deepEqual(ok?.lastRun?.counts, { things: 2 });
      assert.equal(ok?.lastRun?.error, null);
    });
  });
}
