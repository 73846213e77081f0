import { and, desc, eq, isNull, lt } from "drizzle-orm";
import type { Executor } from "../../db/client.ts";
import { impersonations, orgs } from "../../db/schema/index.ts";

export type ImpersonationRow = typeof impersonations.$inferSelect;

/**
 * Impersonation queries. The records are the platform's (an impersonation may span orgs); an org's own setting is
 * read in that org's scope (orgs is a tenant table).
 */
export const impersonationRepo = {
  async findById(ex: Executor, id: string): Promise<ImpersonationRow | undefined> {
    const [row] = await ex.select().from(impersonations).where(eq(impersonations.id, id)).limit(1);
    return row;
  },

  /** Whether the org lets its owners impersonate members, and whether it is deleted; undefined when there is none. */
  async ownerImpersonation(tx: Executor, orgId: string): Promise<{ allowed: boolean; deletedAt: Date | null } | undefined> {
    const [org] = await tx.select({ allowed: orgs.ownerImpersonation, deletedAt: orgs.deletedAt }).from(orgs).where(eq(orgs.id, orgId)).limit(1);
    return org;
  },

  async insert(tx: Executor, row: ImpersonationRow): Promise<void> {
    await tx.insert(impersonations).values(row);
  },

  /** Ends the impersonation unless it has ended already: the ended row, or undefined. */
  async end(tx: Executor, id: string, now: Date): Promise<ImpersonationRow | undefined> {
    const [row] = await tx
      .update(impersonations)
      .set({ endedAt: now })
      .where(and(eq(impersonations.id, id), isNull(impersonations.endedAt)))
      .returning();
    return row;
  },

  /** Impersonations of `userId`, newest first; `before` pages by id. */
  ofUser(ex: Executor, userId: string, limit: number, before?: string): Promise<ImpersonationRow[]> {
    return ex
      .select()
      .from(impersonations)
      .where(and(eq(impersonations.userId, userId), before ? lt(impersonations.id, before) : undefined))
      .orderBy(desc(impersonations.id))
      .limit(limit);
  },

  /** Impersonations started by `userId`, newest first; `before` pages by id. */
  byUser(ex: Executor, userId: string, limit: number, before?: string): Promise<ImpersonationRow[]> {
    return ex
      .select()
      .from(impersonations)
      .where(and(eq(impersonations.impersonatorId, userId), before ? lt(impersonations.id, before) : undefined))
      .orderBy(desc(impersonations.id))
      .limit(limit);
  },
};

export type ImpersonationRepo = typeof impersonationRepo;
