import { and, desc, eq, isNull, lt, type SQL } from "drizzle-orm";
import type { AnyPgColumn, PgTable } from "drizzle-orm/pg-core";
import type { Executor } from "../db/client.ts";
import { kmsPlatformKeks } from "../db/schema/kms.ts";
import { vaultKeks } from "../db/schema/vault.ts";

/** A key-encryption key row of either tier; a platform KEK's `orgId` is PLATFORM_OWNER. */
export type KekRow = typeof vaultKeks.$inferSelect;

/** The owner name of the platform tier's KEKs (records of no org): no org id looks like it (they start `org_`). */
export const PLATFORM_OWNER = "platform";

/**
 * Where one tier keeps its key-encryption keys by version. `owner` is the org (org tier) or PLATFORM_OWNER (platform
 * tier); every query of the org tier names the org (and RLS holds it).
 */
export interface KekStore {
  current(ex: Executor, owner: string): Promise<KekRow | undefined>;
  find(ex: Executor, owner: string, version: number): Promise<KekRow | undefined>;
  /** Every version of the owner's KEK, newest first. */
  all(ex: Executor, owner: string): Promise<KekRow[]>;
  /** Replaces a version's wrapping (root key rotation); the key itself is unchanged. */
  rewrap(tx: Executor, owner: string, version: number, wrappedKey: string, rootKeyId: string): Promise<void>;
  /** Marks the versions retired (the caller has checked that no data key uses them). */
  retire(tx: Executor, owner: string, versions: number[], at: Date): Promise<void>;
  /** Deletes the key material of versions retired before `before`; the foreign keys from the records keep any still used. */
  purgeRetired(tx: Executor, owner: string, before: Date): Promise<number>;
  /** Inserts the row unless that version exists already (two first writes of one owner race to make version 1). */
  insertIfAbsent(tx: Executor, row: Omit<KekRow, "retiredAt" | "createdAt"> & { createdAt?: Date }): Promise<void>;
}

/** One tier's table: its KEK columns, how a query names the owner, and the owner's columns of a new row. */
interface KekTable {
  table: PgTable;
  version: AnyPgColumn;
  wrappedKey: AnyPgColumn;
  rootKeyId: AnyPgColumn;
  createdAt: AnyPgColumn;
  retiredAt: AnyPgColumn;
  ownedBy(owner: string): SQL | undefined;
  ownerColumns(owner: string): Record<string, string>;
}

/** The KEK queries, once, over a tier's table. */
function kekStoreOn(t: KekTable): KekStore {
  const columns = { version: t.version, wrappedKey: t.wrappedKey, rootKeyId: t.rootKeyId, createdAt: t.createdAt, retiredAt: t.retiredAt };
  type Stored = Omit<KekRow, "orgId">;
  const rowOf = (owner: string, r: Stored): KekRow => ({ orgId: owner, ...r });
  const select = (ex: Executor, owner: string, where?: SQL) =>
    ex
      .select(columns)
      .from(t.table)
      .where(and(t.ownedBy(owner), where))
      .orderBy(desc(t.version)) as unknown as Promise<Stored[]>;
  // drizzle types a table's writes by its own columns; over either tier's table they are these, so typed here
  const update = (tx: Executor) => tx.update(t.table) as unknown as { set(v: Record<string, unknown>): { where(w: SQL | undefined): Promise<unknown> } };
  return {
    async current(ex, owner) {
      const [r] = await select(ex, owner);
      return r && rowOf(owner, r);
    },
    async find(ex, owner, version) {
      const [r] = await select(ex, owner, eq(t.version, version));
      return r && rowOf(owner, r);
    },
    async all(ex, owner) {
      return (await select(ex, owner)).map((r) => rowOf(owner, r));
    },
    async rewrap(tx, owner, version, wrappedKey, rootKeyId) {
      await update(tx)
        .set({ wrappedKey, rootKeyId })
        .where(and(t.ownedBy(owner), eq(t.version, version)));
    },
    async retire(tx, owner, versions, at) {
      for (const version of versions) {
        await update(tx)
          .set({ retiredAt: at })
          .where(and(t.ownedBy(owner), eq(t.version, version), isNull(t.retiredAt)));
      }
    },
    async purgeRetired(tx, owner, before) {
      const gone = await tx
        .delete(t.table)
        .where(and(t.ownedBy(owner), lt(t.retiredAt, before)))
        .returning({ version: t.version });
      return gone.length;
    },
    async insertIfAbsent(tx, row) {
      const { orgId: owner, ...kek } = row;
      await tx
        .insert(t.table)
        .values({ ...t.ownerColumns(owner), ...kek } as never)
        .onConflictDoNothing();
    },
  };
}

/** The org tier: an org's key-encryption keys (vault_keks). */
export const kekStore: KekStore = kekStoreOn({
  table: vaultKeks,
  version: vaultKeks.version,
  wrappedKey: vaultKeks.wrappedKey,
  rootKeyId: vaultKeks.rootKeyId,
  createdAt: vaultKeks.createdAt,
  retiredAt: vaultKeks.retiredAt,
  ownedBy: (orgId) => eq(vaultKeks.orgId, orgId),
  ownerColumns: (orgId) => ({ orgId }),
});

/** The platform tier: the key-encryption keys of records that belong to no org (kms_platform_keks). */
export const platformKekStore: KekStore = kekStoreOn({
  table: kmsPlatformKeks,
  version: kmsPlatformKeks.version,
  wrappedKey: kmsPlatformKeks.wrappedKey,
  rootKeyId: kmsPlatformKeks.rootKeyId,
  createdAt: kmsPlatformKeks.createdAt,
  retiredAt: kmsPlatformKeks.retiredAt,
  ownedBy: (owner) => {
    if (owner !== PLATFORM_OWNER) throw new Error(`the platform tier has no owner ${owner}`);
    return undefined;
  },
  ownerColumns: () => ({}),
});
