import { and, desc, eq, isNull, lt } from "drizzle-orm";
import type { Executor } from "../db/client.ts";
import { vaultKeks } from "../db/schema/vault.ts";

export type KekRow = typeof vaultKeks.$inferSelect;

/** The KMS layer's own table: an org's key-encryption keys by version. Every query names the org (and RLS holds it). */
export const kekStore = {
  async current(ex: Executor, orgId: string): Promise<KekRow | undefined> {
    const [r] = await ex.select().from(vaultKeks).where(eq(vaultKeks.orgId, orgId)).orderBy(desc(vaultKeks.version)).limit(1);
    return r;
  },

  async find(ex: Executor, orgId: string, version: number): Promise<KekRow | undefined> {
    const [r] = await ex
      .select()
      .from(vaultKeks)
      .where(and(eq(vaultKeks.orgId, orgId), eq(vaultKeks.version, version)));
    return r;
  },

  /** Every version of the org's KEK, newest first. */
  async all(ex: Executor, orgId: string): Promise<KekRow[]> {
    return ex.select().from(vaultKeks).where(eq(vaultKeks.orgId, orgId)).orderBy(desc(vaultKeks.version));
  },

  /** Replaces a version's wrapping (root key rotation); the key itself is unchanged. */
  async rewrap(tx: Executor, orgId: string, version: number, wrappedKey: string, rootKeyId: string): Promise<void> {
    await tx
      .update(vaultKeks)
      .set({ wrappedKey, rootKeyId })
      .where(and(eq(vaultKeks.orgId, orgId), eq(vaultKeks.version, version)));
  },

  /** Marks versions below `below` retired (the caller has checked that no data key uses them). */
  async retire(tx: Executor, orgId: string, versions: number[], at: Date): Promise<void> {
    for (const version of versions) {
      await tx
        .update(vaultKeks)
        .set({ retiredAt: at })
        .where(and(eq(vaultKeks.orgId, orgId), eq(vaultKeks.version, version), isNull(vaultKeks.retiredAt)));
    }
  },

  /** Deletes the key material of versions retired before `before`; the foreign key from secret versions keeps any still used. */
  async purgeRetired(tx: Executor, orgId: string, before: Date): Promise<number> {
    const gone = await tx
      .delete(vaultKeks)
      .where(and(eq(vaultKeks.orgId, orgId), lt(vaultKeks.retiredAt, before)))
      .returning({ version: vaultKeks.version });
    return gone.length;
  },

  /** Inserts the row unless that version exists already (two first writes of one org race to make version 1). */
  async insertIfAbsent(tx: Executor, row: typeof vaultKeks.$inferInsert): Promise<void> {
    await tx.insert(vaultKeks).values(row).onConflictDoNothing();
  },
};

export type KekStore = typeof kekStore;
