import { and, asc, count, eq, lt, lte, sql } from "drizzle-orm";
import { intArray, textArray } from "../../db/arrays.ts";
import type { Executor } from "../../db/client.ts";
import { vaultSecrets, vaultSecretVersions, vaultSettings } from "../../db/schema/vault.ts";

export type VaultSettingsRow = typeof vaultSettings.$inferSelect;

/** Queries of key rotation: the org in every one (the scheduled scan of due orgs reads settings across tenants). */
export const vaultKeysRepo = {
  async settings(ex: Executor, orgId: string): Promise<VaultSettingsRow | undefined> {
    const [r] = await ex.select().from(vaultSettings).where(eq(vaultSettings.orgId, orgId));
    return r;
  },

  async saveSettings(tx: Executor, row: typeof vaultSettings.$inferInsert): Promise<void> {
    await tx
      .insert(vaultSettings)
      .values(row)
      .onConflictDoUpdate({
        target: vaultSettings.orgId,
        set: {
          rotationDays: row.rotationDays,
          nextRotationAt: row.nextRotationAt,
          updatedAt: row.updatedAt,
          // retention and the lifecycle's due time change only when given (a rotation leaves them alone)
          ...(row.keepVersions !== undefined ? { keepVersions: row.keepVersions } : {}),
          ...(row.keepDays !== undefined ? { keepDays: row.keepDays } : {}),
          ...(row.lifecycleDueAt !== undefined ? { lifecycleDueAt: row.lifecycleDueAt } : {}),
        },
      });
  },

  /** Secret versions whose data key is wrapped under a KEK older than `active`. */
  async pendingCount(ex: Executor, orgId: string, active: number): Promise<number> {
    const [r] = await ex
      .select({ n: count() })
      .from(vaultSecretVersions)
      .where(and(eq(vaultSecretVersions.orgId, orgId), lt(vaultSecretVersions.kekVersion, active)));
    return Number(r?.n ?? 0);
  },

  /**
   * The next batch still on an old KEK after `after` (in key order): each data key's wrapping (not the value's
   * ciphertext, which a re-wrap never reads) with the secret identity its associated data is made of. Unlocked: the
   * write (setWraps) applies only to rows still on the version read, so a run racing another skips what the other moved.
   */
  async pendingBatch(tx: Executor, orgId: string, active: number, limit: number, after?: { secretId: string; version: number }) {
    return (
      tx
        .select({
          secretId: vaultSecretVersions.secretId,
          version: vaultSecretVersions.version,
          wrappedKey: vaultSecretVersions.wrappedKey,
          kekVersion: vaultSecretVersions.kekVersion,
          scope: vaultSecrets.scope,
          teamId: vaultSecrets.teamId,
          userId: vaultSecrets.userId,
        })
        .from(vaultSecretVersions)
        .innerJoin(vaultSecrets, and(eq(vaultSecrets.orgId, vaultSecretVersions.orgId), eq(vaultSecrets.id, vaultSecretVersions.secretId)))
        // from the cursor along (org_id, secret_id, version): each batch starts where the last one stopped, never
        // passing again over what it moved (the old entries of the kek_version index stay until a vacuum)
        .where(
          and(
            eq(vaultSecretVersions.orgId, orgId),
            lt(vaultSecretVersions.kekVersion, active),
            after ? sql`(${vaultSecretVersions.secretId}, ${vaultSecretVersions.version}) > (${after.secretId}, ${after.version})` : undefined,
          ),
        )
        .orderBy(asc(vaultSecretVersions.secretId), asc(vaultSecretVersions.version))
        .limit(limit)
    );
  },

  /**
   * Only the data keys' wrapping changes (the ciphertext and nonce stay as they are): one UPDATE for a batch, of the
   * rows still on the KEK version they were read with (`from`).
   */
  async setWraps(
    tx: Executor,
    orgId: string,
    rows: readonly { secretId: string; version: number; from: number; wrappedKey: string; kekVersion: number }[],
  ): Promise<void> {
    if (!rows.length) return;
    await tx.execute(sql`
      update vault_secret_versions v set wrapped_key = u.wrapped_key, kek_version = u.kek_version
        from unnest(${textArray(rows.map((r) => r.secretId))}, ${intArray(rows.map((r) => r.version))}, ${intArray(rows.map((r) => r.from))},
                    ${textArray(rows.map((r) => r.wrappedKey))}, ${intArray(rows.map((r) => r.kekVersion))})
             as u(secret_id, version, from_kek, wrapped_key, kek_version)
       where v.org_id = ${orgId} and v.secret_id = u.secret_id and v.version = u.version and v.kek_version = u.from_kek`);
  },

  /** The KEK versions some data key of the org still uses. */
  async usedKekVersions(ex: Executor, orgId: string): Promise<Set<number>> {
    const rows = await ex.selectDistinct({ v: vaultSecretVersions.kekVersion }).from(vaultSecretVersions).where(eq(vaultSecretVersions.orgId, orgId));
    return new Set(rows.map((r) => r.v));
  },

  /** Orgs whose scheduled rotation is due (read across tenants: the settings hold no secret). */
  async dueOrgs(ex: Executor, now: Date, limit: number): Promise<string[]> {
    const rows = await ex
      .select({ orgId: vaultSettings.orgId })
      .from(vaultSettings)
      .where(lte(vaultSettings.nextRotationAt, now))
      .orderBy(asc(vaultSettings.nextRotationAt))
      .limit(limit);
    return rows.map((r) => r.orgId);
  },
};

export type VaultKeysRepo = typeof vaultKeysRepo;
