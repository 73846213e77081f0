import { and, desc, eq } from "drizzle-orm";
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

  /** Inserts the row unless that version exists already (two first writes of one org race to make version 1). */
  async insertIfAbsent(tx: Executor, row: typeof vaultKeks.$inferInsert): Promise<void> {
    await tx.insert(vaultKeks).values(row).onConflictDoNothing();
  },
};

export type KekStore = typeof kekStore;
