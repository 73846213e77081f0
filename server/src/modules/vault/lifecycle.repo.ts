import { type AnyColumn, and, asc, eq, inArray, isNotNull, lte, sql, type SQL } from "drizzle-orm";
import type { PgUpdateSetSource } from "drizzle-orm/pg-core";
import type { Database, Executor } from "../../db/client.ts";
import { secretLeases } from "../../db/schema/vault-leases.ts";
import { vaultSecrets, vaultSettings } from "../../db/schema/vault.ts";
import { DEFAULT_NOTIFY_BEFORE_DAYS } from "./vault.schemas.ts";

/** Ended leases (expired or revoked) are deleted this long after they ended. */
export const LEASE_PURGE_AFTER_DAYS = 7;

const days = (column: SQL | AnyColumn) => sql`(${column} * interval '1 day')`;
const notifyDays = sql`coalesce(${vaultSecrets.notifyBeforeDays}, ${DEFAULT_NOTIFY_BEFORE_DAYS})`;
/** When the current version was written (a correlated read of its one row). */
const currentVersionAt = sql`(select v.created_at from vault_secret_versions v
  where v.org_id = ${vaultSecrets.orgId} and v.secret_id = ${vaultSecrets.id} and v.version = ${vaultSecrets.currentVersion})`;
const leaseEnd = sql`least(coalesce(${secretLeases.revokedAt}, ${secretLeases.expiresAt}), ${secretLeases.expiresAt})`;

const ts = (d: Date) => sql`${d.toISOString()}::timestamptz`;

export interface DueSecret {
  id: string;
  name: string;
  scope: string;
  userId: string | null;
  rotationReminderDays: number | null;
  createdBy: string | null;
  expiresAt: Date | null;
  notifyBeforeDays: number;
  currentVersion: number;
}

const dueColumns = {
  id: vaultSecrets.id,
  name: vaultSecrets.name,
  scope: vaultSecrets.scope,
  userId: vaultSecrets.userId,
  rotationReminderDays: vaultSecrets.rotationReminderDays,
  createdBy: vaultSecrets.createdBy,
  expiresAt: vaultSecrets.expiresAt,
  notifyBeforeDays: sql<number>`${notifyDays}::integer`,
  currentVersion: vaultSecrets.currentVersion,
};

/**
 * Queries of the vault's lifecycle pass (lifecycle.service.ts): the org in every one; only the scan of due orgs reads
 * across tenants, from vault_settings (0015's open SELECT: the rows hold periods and dates, never a secret).
 */
/** The org's secrets meeting `conditions`, locked for the pass, in id order: what each notice reads. */
function dueSecrets(tx: Executor, orgId: string, ...conditions: SQL[]): Promise<DueSecret[]> {
  return tx
    .select(dueColumns)
    .from(vaultSecrets)
    .where(and(eq(vaultSecrets.orgId, orgId), ...conditions))
    .orderBy(asc(vaultSecrets.id))
    .for("update");
}

export const lifecycleRepo = {
  /** Orgs whose pass is due, the longest-waiting first. */
  async dueOrgs(ex: Executor, now: Date, limit: number): Promise<string[]> {
    const rows = await ex
      .select({ orgId: vaultSettings.orgId })
      .from(vaultSettings)
      .where(lte(vaultSettings.lifecycleDueAt, now))
      .orderBy(asc(vaultSettings.lifecycleDueAt))
      .limit(limit);
    return rows.map((r) => r.orgId);
  },

  /**
   * Makes the org's pass due at `at` unless it is due sooner, at the end of `tx` (so the row is locked only for the
   * commit): a pass running meanwhile holds the row, and this lands after it, so no change goes unseen.
   */
  markDue(db: Pick<Database, "atCommit">, tx: Executor, orgId: string, at: Date): Promise<void> {
    return db.atCommit(
      tx,
      sql`insert into vault_settings (org_id, lifecycle_due_at) values (${orgId}, ${ts(at)})
          on conflict (org_id) do update set lifecycle_due_at = excluded.lifecycle_due_at
          where vault_settings.lifecycle_due_at is null or vault_settings.lifecycle_due_at > excluded.lifecycle_due_at`,
    );
  },

  /** The org's settings row, locked for the pass (writers' markDue waits behind it). */
  async lockSettings(tx: Executor, orgId: string) {
    const [r] = await tx.select().from(vaultSettings).where(eq(vaultSettings.orgId, orgId)).for("update");
    return r;
  },

  async setDue(tx: Executor, orgId: string, at: Date | null): Promise<void> {
    await tx.update(vaultSettings).set({ lifecycleDueAt: at }).where(eq(vaultSettings.orgId, orgId));
  },

  /** Secrets inside their notice window, not yet warned of this expiry (and not expired yet). */
  expiring(tx: Executor, orgId: string, now: Date): Promise<DueSecret[]> {
    return dueSecrets(
      tx,
      orgId,
      isNotNull(vaultSecrets.expiresAt),
      sql`${vaultSecrets.expiresAt} > ${ts(now)}`,
      sql`${vaultSecrets.expiresAt} - ${days(notifyDays)} <= ${ts(now)}`,
      sql`${vaultSecrets.expiryNotifiedFor} is distinct from ${vaultSecrets.expiresAt}`,
    );
  },

  /** Secrets past their expiry whose passing is not yet audited. */
  expired(tx: Executor, orgId: string, now: Date): Promise<DueSecret[]> {
    return dueSecrets(tx, orgId, sql`${vaultSecrets.expiresAt} <= ${ts(now)}`, sql`${vaultSecrets.expiredNotedFor} is distinct from ${vaultSecrets.expiresAt}`);
  },

  /** Secrets whose current version is older than their rotation_reminder_days, not yet reminded for it. */
  rotationDue(tx: Executor, orgId: string, now: Date): Promise<DueSecret[]> {
    return dueSecrets(
      tx,
      orgId,
      isNotNull(vaultSecrets.rotationReminderDays),
      sql`${vaultSecrets.rotationRemindedVersion} is distinct from ${vaultSecrets.currentVersion}`,
      sql`${currentVersionAt} + ${days(vaultSecrets.rotationReminderDays)} <= ${ts(now)}`,
    );
  },

  /** Records which expiry (or version) the secrets were notified of: `sql\`expires_at\``, say, for their own. */
  async setNoticeState(
    tx: Executor,
    orgId: string,
    ids: readonly string[],
    set: Pick<PgUpdateSetSource<typeof vaultSecrets>, "expiryNotifiedFor" | "expiryNotifiedAt" | "expiredNotedFor" | "rotationRemindedVersion">,
  ): Promise<void> {
    if (!ids.length) return;
    await tx
      .update(vaultSecrets)
      .set(set)
      .where(and(eq(vaultSecrets.orgId, orgId), inArray(vaultSecrets.id, [...ids])));
  },

  /**
   * Deletes the old versions retention lets go: beyond the newest `keepVersions`, or written before `before` (never a
   * current version). Returns what went, by secret, with the secret's name.
   */
  async pruneVersions(tx: Executor, orgId: string, keepVersions: number | null, before: Date | null) {
    if (keepVersions === null && before === null) return [];
    const beyond: SQL[] = [];
    if (keepVersions !== null) beyond.push(sql`v.version <= s.current_version - ${keepVersions}::integer`);
    if (before !== null) beyond.push(sql`v.created_at < ${ts(before)}`);
    const r = (await tx.execute(sql`
      delete from vault_secret_versions v using vault_secrets s
       where v.org_id = ${orgId} and s.org_id = ${orgId} and s.id = v.secret_id
         and v.version < s.current_version and (${sql.join(beyond, sql` or `)})
      returning v.secret_id, s.name, v.version`)) as unknown as { rows: { secret_id: string; name: string; version: number }[] };
    return r.rows;
  },

  /** What a notice mail names of its secret (never a value). */
  async secretForNotice(ex: Executor, orgId: string, id: string) {
    const [r] = await ex
      .select({
        id: vaultSecrets.id,
        name: vaultSecrets.name,
        expiresAt: vaultSecrets.expiresAt,
        currentVersion: vaultSecrets.currentVersion,
        rotationReminderDays: vaultSecrets.rotationReminderDays,
      })
      .from(vaultSecrets)
      .where(and(eq(vaultSecrets.orgId, orgId), eq(vaultSecrets.id, id)));
    return r;
  },

  /** Leases that ended (expired or revoked) before `before`. */
  async purgeLeases(tx: Executor, orgId: string, before: Date): Promise<number> {
    const rows = await tx
      .delete(secretLeases)
      .where(and(eq(secretLeases.orgId, orgId), sql`${leaseEnd} < ${ts(before)}`))
      .returning({ id: secretLeases.id });
    return rows.length;
  },

  /** The next moment anything of the org needs a pass, after this one (null: nothing pending). */
  async nextDue(tx: Executor, orgId: string, keepDays: number | null): Promise<Date | null> {
    const r = (await tx.execute(sql`select least(
        (select min(case when s.expiry_notified_for is distinct from s.expires_at
                         then s.expires_at - (coalesce(s.notify_before_days, ${DEFAULT_NOTIFY_BEFORE_DAYS}) * interval '1 day')
                         else s.expires_at end)
           from vault_secrets s
          where s.org_id = ${orgId} and s.expires_at is not null and s.expired_noted_for is distinct from s.expires_at),
        (select min(v.created_at + (s.rotation_reminder_days * interval '1 day'))
           from vault_secrets s join vault_secret_versions v on v.org_id = s.org_id and v.secret_id = s.id and v.version = s.current_version
          where s.org_id = ${orgId} and s.rotation_reminder_days is not null and s.rotation_reminded_version is distinct from s.current_version),
        (select min(${sql.raw("least(coalesce(l.revoked_at, l.expires_at), l.expires_at)")}) + interval '${sql.raw(String(LEASE_PURGE_AFTER_DAYS))} days'
           from secret_leases l where l.org_id = ${orgId}),
        ${
          keepDays === null
            ? sql`null::timestamptz`
            : sql`(select min(v.created_at) + (${keepDays}::integer * interval '1 day') from vault_secret_versions v join vault_secrets s
                    on s.org_id = v.org_id and s.id = v.secret_id where v.org_id = ${orgId} and v.version < s.current_version)`
        }
      ) as due`)) as unknown as { rows: { due: string | Date | null }[] };
    const due = r.rows[0]?.due;
    return due == null ? null : new Date(due);
  },
};

export type LifecycleRepo = typeof lifecycleRepo;

/** What other vault files import: lowering the due time after a change (vault.service.ts, leases.service.ts). */
export type LifecycleMark = (tx: Executor, orgId: string, at?: Date) => Promise<void>;
