import { and, asc, count, eq, lt, lte } from "drizzle-orm";
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
        set: { rotationDays: row.rotationDays, nextRotationAt: row.nextRotationAt, updatedAt: row.updatedAt },
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
   * The next batch still on an old KEK, locked (rows another run holds are skipped, so two runs share the work),
   * with the secret identity its associated data is made of.
   */
  async lockPendingBatch(tx: Executor, orgId: string, active: number, limit: number) {
    return tx
      .select({
        secretId: vaultSecretVersions.secretId,
        version: vaultSecretVersions.version,
        ciphertext: vaultSecretVersions.ciphertext,
        nonce: vaultSecretVersions.nonce,
        wrappedKey: vaultSecretVersions.wrappedKey,
        kekVersion: vaultSecretVersions.kekVersion,
        scope: vaultSecrets.scope,
        teamId: vaultSecrets.teamId,
        userId: vaultSecrets.userId,
      })
      .from(vaultSecretVersions)
      .innerJoin(vaultSecrets, and(eq(vaultSecrets.orgId, vaultSecretVersions.orgId), eq(vaultSecrets.id, vaultSecretVersions.secretId)))
      .where(and(eq(vaultSecretVersions.orgId, orgId), lt(vaultSecretVersions.kekVersion, active)))
      .orderBy(asc(vaultSecretVersions.secretId), asc(vaultSecretVersions.version))
      .limit(limit)
      .for("update", { of: vaultSecretVersions, skipLocked: true });
  },

  /** Only the data key's wrapping changes: the ciphertext and nonce stay as they are. */
  async setWrap(tx: Executor, orgId: string, secretId: string, version: number, wrappedKey: string, kekVersion: number): Promise<void> {
    await tx
      .update(vaultSecretVersions)
      .set({ wrappedKey, kekVersion })
      .where(and(eq(vaultSecretVersions.orgId, orgId), eq(vaultSecretVersions.secretId, secretId), eq(vaultSecretVersions.version, version)));
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
