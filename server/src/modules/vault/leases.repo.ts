import { and, asc, eq, gt, inArray, isNull, or, sql, type SQL } from "drizzle-orm";
import type { Executor } from "../../db/client.ts";
import { secretLeases } from "../../db/schema/vault-leases.ts";
import { vaultSecrets } from "../../db/schema/vault.ts";

export type LeaseRow = typeof secretLeases.$inferSelect;
export interface LeaseHolder {
  type: "user" | "api_key" | "service_account" | "service";
  id: string;
}

const heldBy = (holders: readonly LeaseHolder[]): SQL => or(...holders.map((h) => and(eq(secretLeases.holderType, h.type), eq(secretLeases.holderId, h.id))))!;

/** Secret leases. Row-level security limits every transaction to its org; each query names it too. */
export const leasesRepo = {
  async insert(tx: Executor, row: typeof secretLeases.$inferInsert): Promise<LeaseRow> {
    const [r] = await tx.insert(secretLeases).values(row).returning();
    return r;
  },

  async find(ex: Executor, orgId: string, id: string, lock = false): Promise<LeaseRow | undefined> {
    const q = ex
      .select()
      .from(secretLeases)
      .where(and(eq(secretLeases.orgId, orgId), eq(secretLeases.id, id)));
    const [r] = lock ? await q.for("update") : await q;
    return r;
  },

  /**
   * Counts a use of a lease that is live at `now` (not revoked, not expired), in one statement: the row lock it takes
   * lines a use up behind a concurrent revocation, so nothing is served once the revocation has committed.
   */
  async touchLive(tx: Executor, orgId: string, id: string, now: Date): Promise<LeaseRow | undefined> {
    const [r] = await tx
      .update(secretLeases)
      .set({ lastUsedAt: now, useCount: sql`${secretLeases.useCount} + 1` })
      .where(and(eq(secretLeases.orgId, orgId), eq(secretLeases.id, id), isNull(secretLeases.revokedAt), gt(secretLeases.expiresAt, now)))
      .returning();
    return r;
  },

  async update(tx: Executor, orgId: string, id: string, set: Partial<typeof secretLeases.$inferInsert>): Promise<LeaseRow> {
    const [r] = await tx
      .update(secretLeases)
      .set(set)
      .where(and(eq(secretLeases.orgId, orgId), eq(secretLeases.id, id)))
      .returning();
    return r;
  },

  /** Oldest first, after the cursor id; only those of `holders` unless undefined (all of the org's). */
  list(ex: Executor, orgId: string, holders: readonly LeaseHolder[] | undefined, opts: { after?: string; limit: number }): Promise<LeaseRow[]> {
    return ex
      .select()
      .from(secretLeases)
      .where(
        and(
          eq(secretLeases.orgId, orgId),
          holders === undefined ? undefined : heldBy(holders),
          opts.after === undefined ? undefined : gt(secretLeases.id, opts.after),
        ),
      )
      .orderBy(asc(secretLeases.id))
      .limit(opts.limit);
  },

  /**
   * The org and team secrets named `names` (personal secrets are leased by id): in `teamId`'s team and in the org,
   * so the service can take the team's over the org's. Ids only; every one still passes the vault's read check.
   */
  secretsNamed(ex: Executor, orgId: string, teamId: string | undefined, names: readonly string[]) {
    return ex
      .select({ id: vaultSecrets.id, name: vaultSecrets.name, scope: vaultSecrets.scope })
      .from(vaultSecrets)
      .where(
        and(
          eq(vaultSecrets.orgId, orgId),
          inArray(vaultSecrets.name, [...names]),
          teamId === undefined
            ? eq(vaultSecrets.scope, "org")
            : or(eq(vaultSecrets.scope, "org"), and(eq(vaultSecrets.scope, "team"), eq(vaultSecrets.teamId, teamId))),
        ),
      );
  },
};

export type LeasesRepo = typeof leasesRepo;
