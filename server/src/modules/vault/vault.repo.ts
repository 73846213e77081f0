import { and, asc, desc, eq, gt, lt, ne, or, type SQL } from "drizzle-orm";
import type { Executor } from "../../db/client.ts";
import { vaultSecrets, vaultSecretVersions } from "../../db/schema/vault.ts";

export type SecretRow = typeof vaultSecrets.$inferSelect;
export type SecretVersionRow = typeof vaultSecretVersions.$inferSelect;
export type SecretScope = "org" | "team" | "user";

export interface SecretFilter {
  scope?: SecretScope;
  teamId?: string;
  after?: string;
  limit: number;
}

/** Another member's personal secrets do not exist for `viewer`. */
const visibleTo = (viewer: string): SQL => or(ne(vaultSecrets.scope, "user"), eq(vaultSecrets.userId, viewer))!;

/** Secrets and their versions. Row-level security limits every transaction to its org; each query names it too. */
export const vaultRepo = {
  async insert(tx: Executor, row: typeof vaultSecrets.$inferInsert): Promise<SecretRow> {
    const [r] = await tx.insert(vaultSecrets).values(row).returning();
    return r;
  },

  async insertVersion(tx: Executor, row: typeof vaultSecretVersions.$inferInsert): Promise<void> {
    await tx.insert(vaultSecretVersions).values(row);
  },

  /** Oldest first (ids are time-ordered), after the cursor id. */
  list(ex: Executor, orgId: string, viewer: string, f: SecretFilter): Promise<SecretRow[]> {
    return ex
      .select()
      .from(vaultSecrets)
      .where(
        and(
          eq(vaultSecrets.orgId, orgId),
          visibleTo(viewer),
          f.scope === undefined ? undefined : eq(vaultSecrets.scope, f.scope),
          f.teamId === undefined ? undefined : eq(vaultSecrets.teamId, f.teamId),
          f.after === undefined ? undefined : gt(vaultSecrets.id, f.after),
        ),
      )
      .orderBy(asc(vaultSecrets.id))
      .limit(f.limit);
  },

  async find(ex: Executor, orgId: string, viewer: string, id: string, lock = false): Promise<SecretRow | undefined> {
    const q = ex
      .select()
      .from(vaultSecrets)
      .where(and(eq(vaultSecrets.orgId, orgId), eq(vaultSecrets.id, id), visibleTo(viewer)));
    const [r] = lock ? await q.for("update") : await q;
    return r;
  },

  async update(tx: Executor, orgId: string, id: string, set: Partial<typeof vaultSecrets.$inferInsert>): Promise<SecretRow> {
    const [r] = await tx
      .update(vaultSecrets)
      .set(set)
      .where(and(eq(vaultSecrets.orgId, orgId), eq(vaultSecrets.id, id)))
      .returning();
    return r;
  },

  /** The secret and (cascade) its versions. */
  async delete(tx: Executor, orgId: string, id: string): Promise<void> {
    await tx.delete(vaultSecrets).where(and(eq(vaultSecrets.orgId, orgId), eq(vaultSecrets.id, id)));
  },

  async findVersion(ex: Executor, orgId: string, secretId: string, version: number): Promise<SecretVersionRow | undefined> {
    const [r] = await ex
      .select()
      .from(vaultSecretVersions)
      .where(and(eq(vaultSecretVersions.orgId, orgId), eq(vaultSecretVersions.secretId, secretId), eq(vaultSecretVersions.version, version)));
    return r;
  },

  /** Newest first, before the cursor version; metadata only (the ciphertext stays in the database). */
  listVersions(ex: Executor, orgId: string, secretId: string, opts: { before?: number; limit: number }) {
    return ex
      .select({
        version: vaultSecretVersions.version,
        kekVersion: vaultSecretVersions.kekVersion,
        createdBy: vaultSecretVersions.createdBy,
        createdAt: vaultSecretVersions.createdAt,
      })
      .from(vaultSecretVersions)
      .where(
        and(
          eq(vaultSecretVersions.orgId, orgId),
          eq(vaultSecretVersions.secretId, secretId),
          opts.before === undefined ? undefined : lt(vaultSecretVersions.version, opts.before),
        ),
      )
      .orderBy(desc(vaultSecretVersions.version))
      .limit(opts.limit);
  },
};

export type VaultRepo = typeof vaultRepo;
