import { and, asc, eq, exists, gt, inArray, notInArray, or, sql } from "drizzle-orm";
import type { Executor } from "../../db/client.ts";
import { zkRecoveryRequests, zkShareReleases, zkUserKeys, zkVaultEntries, zkVaultMembers, zkVaults, zkVaultShares } from "../../db/schema/zk-vaults.ts";

export type UserKeyRow = typeof zkUserKeys.$inferSelect;
export type VaultRow = typeof zkVaults.$inferSelect;
export type EntryRow = typeof zkVaultEntries.$inferSelect;
export type ShareRow = typeof zkVaultShares.$inferSelect;
export type RecoveryRequestRow = typeof zkRecoveryRequests.$inferSelect;
export type ReleaseRow = typeof zkShareReleases.$inferSelect;
export type MemberRow = typeof zkVaultMembers.$inferSelect;

/**
 * Queries of the zero-knowledge vaults. Row-level security limits every transaction to its org; each query names the
 * org too, and a vault is always looked up with its owner, so another member's vault is simply not found.
 */
export const zkRepo = {
  async upsertUserKey(tx: Executor, row: typeof zkUserKeys.$inferInsert): Promise<UserKeyRow> {
    const [r] = await tx
      .insert(zkUserKeys)
      .values(row)
      .onConflictDoUpdate({
        target: [zkUserKeys.orgId, zkUserKeys.userId],
        set: { publicKey: row.publicKey, encryptedPrivateKey: row.encryptedPrivateKey, kdf: row.kdf, updatedAt: row.updatedAt },
      })
      .returning();
    return r;
  },

  async findUserKey(ex: Executor, orgId: string, userId: string): Promise<UserKeyRow | undefined> {
    const [r] = await ex
      .select()
      .from(zkUserKeys)
      .where(and(eq(zkUserKeys.orgId, orgId), eq(zkUserKeys.userId, userId)));
    return r;
  },

  async insertVault(tx: Executor, row: typeof zkVaults.$inferInsert): Promise<VaultRow> {
    const [r] = await tx.insert(zkVaults).values(row).returning();
    return r;
  },

  async findVault(ex: Executor, orgId: string, ownerId: string, id: string, lock = false): Promise<VaultRow | undefined> {
    const q = ex
      .select()
      .from(zkVaults)
      .where(and(eq(zkVaults.orgId, orgId), eq(zkVaults.ownerId, ownerId), eq(zkVaults.id, id)));
    const [r] = await (lock ? q.for("update") : q);
    return r;
  },

  /**
   * The vault `userId` owns, or is a member of at its current key version (with that membership). `share` locks the
   * vault's row against a concurrent rotation, so an entry is never written under a key version that is going away.
   */
  async findAccessibleVault(
    ex: Executor,
    orgId: string,
    userId: string,
    id: string,
    share = false,
  ): Promise<{ vault: VaultRow; member: MemberRow | null } | undefined> {
    const q = ex
      .select({ vault: zkVaults, member: zkVaultMembers })
      .from(zkVaults)
      .leftJoin(
        zkVaultMembers,
        and(eq(zkVaultMembers.vaultId, zkVaults.id), eq(zkVaultMembers.userId, userId), eq(zkVaultMembers.keyVersion, zkVaults.keyVersion)),
      )
      .where(and(eq(zkVaults.orgId, orgId), eq(zkVaults.id, id)));
    const [r] = await (share ? q.for("share", { of: zkVaults }) : q);
    if (!r || (r.vault.ownerId !== userId && !r.member)) return undefined;
    return { vault: r.vault, member: r.vault.ownerId === userId ? null : r.member };
  },

  /** The vaults `userId` owns or is a member of, oldest first. */
  listVaults(ex: Executor, orgId: string, userId: string, after: string | undefined, limit: number): Promise<VaultRow[]> {
    const member = ex
      .select({ one: sql`1` })
      .from(zkVaultMembers)
      .where(and(eq(zkVaultMembers.orgId, orgId), eq(zkVaultMembers.vaultId, zkVaults.id), eq(zkVaultMembers.userId, userId)));
    return ex
      .select()
      .from(zkVaults)
      .where(and(eq(zkVaults.orgId, orgId), or(eq(zkVaults.ownerId, userId), exists(member)), after === undefined ? undefined : gt(zkVaults.id, after)))
      .orderBy(asc(zkVaults.id))
      .limit(limit);
  },

  async upsertMember(tx: Executor, row: typeof zkVaultMembers.$inferInsert): Promise<MemberRow> {
    const [r] = await tx
      .insert(zkVaultMembers)
      .values(row)
      .onConflictDoUpdate({
        target: [zkVaultMembers.vaultId, zkVaultMembers.userId],
        set: { keyVersion: row.keyVersion, sealedKey: row.sealedKey, addedBy: row.addedBy, createdAt: row.createdAt },
      })
      .returning();
    return r;
  },

  listMembers(ex: Executor, orgId: string, vaultId: string): Promise<MemberRow[]> {
    return ex
      .select()
      .from(zkVaultMembers)
      .where(and(eq(zkVaultMembers.orgId, orgId), eq(zkVaultMembers.vaultId, vaultId)))
      .orderBy(asc(zkVaultMembers.userId));
  },

  /** Removes every member but `keep`; the removed user ids. */
  async removeMembersExcept(tx: Executor, orgId: string, vaultId: string, keep: string[]): Promise<string[]> {
    const gone = await tx
      .delete(zkVaultMembers)
      .where(and(eq(zkVaultMembers.orgId, orgId), eq(zkVaultMembers.vaultId, vaultId), keep.length ? notInArray(zkVaultMembers.userId, keep) : undefined))
      .returning({ userId: zkVaultMembers.userId });
    return gone.map((g) => g.userId);
  },

  /** Every entry name of the vault (a rotation must re-encrypt exactly these). */
  async entryNames(ex: Executor, orgId: string, vaultId: string): Promise<string[]> {
    const rows = await ex
      .select({ name: zkVaultEntries.name })
      .from(zkVaultEntries)
      .where(and(eq(zkVaultEntries.orgId, orgId), eq(zkVaultEntries.vaultId, vaultId)));
    return rows.map((r) => r.name);
  },

  async updateVault(tx: Executor, orgId: string, id: string, set: Partial<typeof zkVaults.$inferInsert>): Promise<VaultRow> {
    const [r] = await tx
      .update(zkVaults)
      .set(set)
      .where(and(eq(zkVaults.orgId, orgId), eq(zkVaults.id, id)))
      .returning();
    return r;
  },

  async deleteVault(tx: Executor, orgId: string, id: string): Promise<void> {
    await tx.delete(zkVaults).where(and(eq(zkVaults.orgId, orgId), eq(zkVaults.id, id)));
  },

  async insertEntry(tx: Executor, row: typeof zkVaultEntries.$inferInsert): Promise<EntryRow | undefined> {
    const [r] = await tx.insert(zkVaultEntries).values(row).onConflictDoNothing().returning();
    return r;
  },

  async findEntry(ex: Executor, orgId: string, vaultId: string, name: string): Promise<EntryRow | undefined> {
    const [r] = await ex
      .select()
      .from(zkVaultEntries)
      .where(and(eq(zkVaultEntries.orgId, orgId), eq(zkVaultEntries.vaultId, vaultId), eq(zkVaultEntries.name, name)));
    return r;
  },

  /** Entries by name (C collation: byte order, the same on PGlite and PostgreSQL). */
  listEntries(ex: Executor, orgId: string, vaultId: string, after: string | undefined, limit: number): Promise<EntryRow[]> {
    return ex
      .select()
      .from(zkVaultEntries)
      .where(
        and(
          eq(zkVaultEntries.orgId, orgId),
          eq(zkVaultEntries.vaultId, vaultId),
          after === undefined ? undefined : sql`${zkVaultEntries.name} collate "C" > ${after}`,
        ),
      )
      .orderBy(sql`${zkVaultEntries.name} collate "C"`)
      .limit(limit);
  },

  /** The entry moved from `expected` to the next version, or undefined when it is not (any longer) at `expected`. */
  async updateEntry(
    tx: Executor,
    orgId: string,
    vaultId: string,
    name: string,
    expected: number | undefined,
    set: Pick<EntryRow, "ciphertext" | "nonce" | "keyVersion" | "updatedBy" | "updatedAt">,
  ): Promise<EntryRow | undefined> {
    const [r] = await tx
      .update(zkVaultEntries)
      .set({ ...set, version: sql`${zkVaultEntries.version} + 1` })
      .where(
        and(
          eq(zkVaultEntries.orgId, orgId),
          eq(zkVaultEntries.vaultId, vaultId),
          eq(zkVaultEntries.name, name),
          expected === undefined ? undefined : eq(zkVaultEntries.version, expected),
        ),
      )
      .returning();
    return r;
  },

  async deleteEntry(tx: Executor, orgId: string, vaultId: string, name: string, expected: number | undefined): Promise<boolean> {
    const gone = await tx
      .delete(zkVaultEntries)
      .where(
        and(
          eq(zkVaultEntries.orgId, orgId),
          eq(zkVaultEntries.vaultId, vaultId),
          eq(zkVaultEntries.name, name),
          expected === undefined ? undefined : eq(zkVaultEntries.version, expected),
        ),
      )
      .returning({ name: zkVaultEntries.name });
    return gone.length > 0;
  },

  /** The vault's shares, replaced as a set (their releases and open requests go with the old set). */
  async replaceShares(tx: Executor, orgId: string, vaultId: string, rows: (typeof zkVaultShares.$inferInsert)[]): Promise<ShareRow[]> {
    await tx.delete(zkVaultShares).where(and(eq(zkVaultShares.orgId, orgId), eq(zkVaultShares.vaultId, vaultId)));
    return rows.length ? tx.insert(zkVaultShares).values(rows).returning() : [];
  },

  listVaultShares(ex: Executor, orgId: string, vaultId: string): Promise<ShareRow[]> {
    return ex
      .select()
      .from(zkVaultShares)
      .where(and(eq(zkVaultShares.orgId, orgId), eq(zkVaultShares.vaultId, vaultId)))
      .orderBy(asc(zkVaultShares.shareIndex));
  },

  /** The shares `holderId` holds, with each vault's owner, oldest first. */
  listHeldShares(ex: Executor, orgId: string, holderId: string, after: string | undefined, limit: number) {
    return ex
      .select({ share: zkVaultShares, ownerId: zkVaults.ownerId })
      .from(zkVaultShares)
      .innerJoin(zkVaults, and(eq(zkVaults.orgId, zkVaultShares.orgId), eq(zkVaults.id, zkVaultShares.vaultId)))
      .where(and(eq(zkVaultShares.orgId, orgId), eq(zkVaultShares.holderId, holderId), after === undefined ? undefined : gt(zkVaultShares.id, after)))
      .orderBy(asc(zkVaultShares.id))
      .limit(limit);
  },

  async findHeldShare(ex: Executor, orgId: string, holderId: string, vaultId: string, shareId: string): Promise<ShareRow | undefined> {
    const [r] = await ex
      .select()
      .from(zkVaultShares)
      .where(and(eq(zkVaultShares.orgId, orgId), eq(zkVaultShares.holderId, holderId), eq(zkVaultShares.vaultId, vaultId), eq(zkVaultShares.id, shareId)));
    return r;
  },

  /** Open requests of these vaults. */
  openRequestsOf(ex: Executor, orgId: string, vaultIds: string[]): Promise<RecoveryRequestRow[]> {
    if (!vaultIds.length) return Promise.resolve([]);
    return ex
      .select()
      .from(zkRecoveryRequests)
      .where(and(eq(zkRecoveryRequests.orgId, orgId), inArray(zkRecoveryRequests.vaultId, vaultIds), eq(zkRecoveryRequests.status, "open")))
      .orderBy(asc(zkRecoveryRequests.id));
  },

  async insertRequest(tx: Executor, row: typeof zkRecoveryRequests.$inferInsert): Promise<RecoveryRequestRow> {
    const [r] = await tx.insert(zkRecoveryRequests).values(row).returning();
    return r;
  },

  async findRequest(ex: Executor, orgId: string, vaultId: string, id: string, lock = false): Promise<RecoveryRequestRow | undefined> {
    const q = ex
      .select()
      .from(zkRecoveryRequests)
      .where(and(eq(zkRecoveryRequests.orgId, orgId), eq(zkRecoveryRequests.vaultId, vaultId), eq(zkRecoveryRequests.id, id)));
    const [r] = await (lock ? q.for("update") : q);
    return r;
  },

  /** Closes the vault's open requests (a new request supersedes them; a new passphrase completes them); their ids. */
  async closeOpenRequests(tx: Executor, orgId: string, vaultId: string, status: "completed" | "cancelled", at: Date): Promise<string[]> {
    const rows = await tx
      .update(zkRecoveryRequests)
      .set({ status, closedAt: at })
      .where(and(eq(zkRecoveryRequests.orgId, orgId), eq(zkRecoveryRequests.vaultId, vaultId), eq(zkRecoveryRequests.status, "open")))
      .returning({ id: zkRecoveryRequests.id });
    return rows.map((r) => r.id);
  },

  async insertRelease(tx: Executor, row: typeof zkShareReleases.$inferInsert): Promise<ReleaseRow | undefined> {
    const [r] = await tx.insert(zkShareReleases).values(row).onConflictDoNothing().returning();
    return r;
  },

  listReleases(ex: Executor, orgId: string, requestIds: string[]): Promise<ReleaseRow[]> {
    if (!requestIds.length) return Promise.resolve([]);
    return ex
      .select()
      .from(zkShareReleases)
      .where(and(eq(zkShareReleases.orgId, orgId), inArray(zkShareReleases.requestId, requestIds)))
      .orderBy(asc(zkShareReleases.shareIndex));
  },
};

export type ZkRepo = typeof zkRepo;
