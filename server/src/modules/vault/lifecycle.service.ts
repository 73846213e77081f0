import { sql } from "drizzle-orm";
import type { Database, Executor } from "../../db/client.ts";
import type { JobPayload, JobQueue } from "../../jobs/queue.ts";
import type { Clock } from "../../lib/clock.ts";
import type { Mailer } from "../../mail/mailer.ts";
import type { AuditActor, AuditService } from "../audit/audit.service.ts";
import { membersToNotify } from "../members/index.ts";
import { type DueSecret, LEASE_PURGE_AFTER_DAYS, type LifecycleRepo } from "./lifecycle.repo.ts";

/** The scheduled pass over the orgs that are due, and the job that mails one notice to one member after the commit. */
export const LIFECYCLE_JOB = "vault.lifecycle";
export const LIFECYCLE_EVERY_MS = 3600_000;
export const NOTICE_JOB = "vault.notice";
/** Orgs read per scan of vault_settings; a run takes batches until none is due. */
const ORGS_PER_BATCH = 100;
const DAY_MS = 86_400_000;
const SYSTEM: AuditActor = { type: "system", id: null };
/** Who hears of an org or team secret besides its creator; a personal secret's notices go to its member alone. */
const NOTIFIED_ROLES = ["owner", "admin"] as const;

type Notice = "expiring" | "rotation_due";

export interface OrgPass {
  org_id: string;
  expiring: string[];
  expired: string[];
  rotation_due: string[];
  versions_pruned: number;
  leases_purged: number;
  /** When the org's next pass is due (null: nothing pending). */
  next_due_at: string | null;
}

/**
 * The vault's lifecycle, run by one scheduled job (`vault.lifecycle`, once across instances) over the orgs whose
 * vault_settings.lifecycle_due_at has come (writers lower it; each pass sets it to the org's next event). Per org, in
 * one tenant transaction that first locks its settings row: the expiry notice of each secret entering its notice window
 * (secret.expiring, once per expires_at), the passing of an expiry (secret.expired), the rotation reminder of each
 * current version older than rotation_reminder_days (secret.rotation_due, once per version), the deletion of old
 * versions beyond the org's keep_versions / keep_days (secret.versions_pruned; never the current version), and of
 * leases that ended more than a week ago. Audit events and mail jobs name records only, never a value; the mail goes
 * out from NOTICE_JOB after the commit, one job per recipient, and is skipped if the notice no longer holds.
 */
export function createLifecycleService(deps: {
  db: Database;
  clock: Clock;
  repo: LifecycleRepo;
  audit: Pick<AuditService, "record">;
  jobs: Pick<JobQueue, "enqueue" | "kick">;
  mailer: Pick<Mailer, "send">;
  /** Where the console lives (PLINTH_PUBLIC_URL), for the link in a notice. */
  publicUrl: string;
}) {
  const { db, clock, repo, audit, jobs, mailer } = deps;

  async function recipients(tx: Executor, orgId: string, s: DueSecret): Promise<string[]> {
    const q = s.scope === "user" ? { roles: [], userIds: s.userId ? [s.userId] : [] } : { roles: NOTIFIED_ROLES, userIds: s.createdBy ? [s.createdBy] : [] };
    return (await membersToNotify(tx, orgId, q)).map((m) => m.userId);
  }

  /** The audit event and one mail job per recipient, in the pass's transaction. */
  async function notify(tx: Executor, orgId: string, s: DueSecret, notice: Notice, diff: Record<string, unknown>): Promise<void> {
    const to = await recipients(tx, orgId, s);
    await audit.record(tx, SYSTEM, {
      orgId,
      action: notice === "expiring" ? "secret.expiring" : "secret.rotation_due",
      target: { type: "secret", id: s.id },
      diff: { name: s.name, ...diff, notified: to },
    });
    const about: JobPayload = notice === "expiring" ? { expires_at: s.expiresAt?.toISOString() ?? null } : { version: s.currentVersion };
    for (const userId of to) await jobs.enqueue(tx, NOTICE_JOB, { org_id: orgId, secret_id: s.id, user_id: userId, notice, ...about });
  }

  async function runOrg(orgId: string): Promise<OrgPass> {
    const now = clock.now();
    const pass = await db.tx({ orgId }, async (tx): Promise<OrgPass> => {
      const out: OrgPass = { org_id: orgId, expiring: [], expired: [], rotation_due: [], versions_pruned: 0, leases_purged: 0, next_due_at: null };
      const settings = await repo.lockSettings(tx, orgId);
      if (!settings) return out;

      for (const s of await repo.expiring(tx, orgId, now)) {
        await notify(tx, orgId, s, "expiring", { expires_at: s.expiresAt?.toISOString(), notify_before_days: s.notifyBeforeDays });
        out.expiring.push(s.id);
      }
      await repo.setNoticeState(tx, orgId, out.expiring, { expiryNotifiedFor: sql`expires_at`, expiryNotifiedAt: now });

      for (const s of await repo.expired(tx, orgId, now)) {
        await audit.record(tx, SYSTEM, {
          orgId,
          action: "secret.expired",
          target: { type: "secret", id: s.id },
          diff: { name: s.name, expires_at: s.expiresAt?.toISOString() },
        });
        out.expired.push(s.id);
      }
      await repo.setNoticeState(tx, orgId, out.expired, { expiredNotedFor: sql`expires_at` });

      for (const s of await repo.rotationDue(tx, orgId, now)) {
        await notify(tx, orgId, s, "rotation_due", { version: s.currentVersion, rotation_reminder_days: s.rotationReminderDays });
        out.rotation_due.push(s.id);
      }
      await repo.setNoticeState(tx, orgId, out.rotation_due, { rotationRemindedVersion: sql`current_version` });

      const before = settings.keepDays === null ? null : new Date(now.getTime() - settings.keepDays * DAY_MS);
      const pruned = new Map<string, { name: string; versions: number[] }>();
      for (const r of await repo.pruneVersions(tx, orgId, settings.keepVersions, before)) {
        const p = pruned.get(r.secret_id) ?? { name: r.name, versions: [] };
        p.versions.push(Number(r.version));
        pruned.set(r.secret_id, p);
      }
      for (const [id, p] of [...pruned].sort(([a], [b]) => (a < b ? -1 : 1))) {
        p.versions.sort((a, b) => a - b);
        await audit.record(tx, SYSTEM, {
          orgId,
          action: "secret.versions_pruned",
          target: { type: "secret", id },
          diff: {
            name: p.name,
            count: p.versions.length,
            versions: [p.versions[0], p.versions[p.versions.length - 1]],
            keep_versions: settings.keepVersions,
            keep_days: settings.keepDays,
          },
        });
        out.versions_pruned += p.versions.length;
      }

      out.leases_purged = await repo.purgeLeases(tx, orgId, new Date(now.getTime() - LEASE_PURGE_AFTER_DAYS * DAY_MS));

      // what is still due now (a notice the queries above left, say) waits for the next run rather than spinning
      const next = await repo.nextDue(tx, orgId, settings.keepDays);
      const due = next && next.getTime() <= now.getTime() ? new Date(now.getTime() + LIFECYCLE_EVERY_MS) : next;
      await repo.setDue(tx, orgId, due);
      out.next_due_at = due?.toISOString() ?? null;
      return out;
    });
    if (pass.expiring.length || pass.rotation_due.length) jobs.kick();
    return pass;
  }

  /** The mail of one notice to one member: skipped if they left, or the secret changed so the notice no longer holds. */
  async function sendNotice(p: JobPayload): Promise<boolean> {
    const orgId = String(p.org_id);
    const notice = p.notice as Notice;
    const found = await db.read({ orgId }, async (ex) => {
      const secret = await repo.secretForNotice(ex, orgId, String(p.secret_id));
      const [member] = await membersToNotify(ex, orgId, { roles: [], userIds: [String(p.user_id)] });
      return secret && member && { secret, member };
    });
    if (!found) return false;
    const { secret, member } = found;
    const link = `${deps.publicUrl.replace(/\/$/, "")}/orgs/${orgId}/secrets/${secret.id}`;
    if (notice === "expiring") {
      const at = secret.expiresAt?.toISOString();
      if (!at || at !== p.expires_at) return false;
      await mailer.send({
        to: member.email,
        subject: `Secret ${secret.name} expires on ${at.slice(0, 10)}`,
        text:
          `Hello ${member.name},\n\nthe secret ${secret.name} (${secret.id}) of organization ${orgId} expires at ${at}. ` +
          `After that its value is no longer served. Give it a new value or a later expiry before then:\n${link}\n`,
      });
      return true;
    }
    if (notice === "rotation_due") {
      if (secret.currentVersion !== Number(p.version)) return false;
      await mailer.send({
        to: member.email,
        subject: `Secret ${secret.name} is due for rotation`,
        text:
          `Hello ${member.name},\n\nversion ${secret.currentVersion} of the secret ${secret.name} (${secret.id}) of organization ${orgId} ` +
          `is older than its rotation reminder of ${secret.rotationReminderDays} days. Rotate it by giving it a new value:\n${link}\n`,
      });
      return true;
    }
    throw new Error(`unknown vault notice ${String(notice)}`);
  }

  return {
    /** One org's pass now (tests; the scheduled job runs it for each due org). */
    runOrg,

    /** The scheduled job: a pass for every org whose lifecycle is due, each in its own transaction. */
    async runDue(): Promise<OrgPass[]> {
      const done: OrgPass[] = [];
      const seen = new Set<string>();
      const failed: unknown[] = [];
      for (;;) {
        const due = (await db.read((ex) => repo.dueOrgs(ex, clock.now(), ORGS_PER_BATCH + seen.size))).filter((o) => !seen.has(o));
        for (const orgId of due) {
          seen.add(orgId);
          try {
            done.push(await runOrg(orgId));
          } catch (e) {
            failed.push(e); // one org's failure leaves the others' passes alone; the job reports it after them
          }
        }
        if (due.length < ORGS_PER_BATCH) break;
      }
      if (failed.length) throw new AggregateError(failed, `the vault lifecycle pass failed for ${failed.length} org(s)`);
      return done;
    },

    sendNotice,
  };
}

export type LifecycleService = ReturnType<typeof createLifecycleService>;
