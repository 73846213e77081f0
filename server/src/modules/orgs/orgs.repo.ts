import { and, asc, eq, isNull } from "drizzle-orm";
import type { Executor } from "../../db/client.ts";
import { memberships, orgs } from "../../db/schema/index.ts";

export type OrgRow = typeof orgs.$inferSelect;

/** Org queries. Row-level security already limits what a transaction sees; each query names its tenant as well. */
export const orgsRepo = {
  async insertOrg(tx: Executor, row: typeof orgs.$inferInsert): Promise<OrgRow> {
    const [org] = await tx.insert(orgs).values(row).returning();
    return org;
  },

  async insertMembership(tx: Executor, row: typeof memberships.$inferInsert): Promise<void> {
    await tx.insert(memberships).values(row);
  },

  /** The orgs a user belongs to, with the user's role in each. */
  async listForUser(ex: Executor, userId: string) {
    return ex
      .select({ org: orgs, role: memberships.role, joinedAt: memberships.createdAt })
      .from(memberships)
      .innerJoin(orgs, eq(orgs.id, memberships.orgId))
      .where(and(eq(memberships.userId, userId), isNull(orgs.deletedAt)))
      .orderBy(asc(orgs.createdAt));
  },
};

export type OrgsRepo = typeof orgsRepo;

/** Profile queries for one org; the caller's transaction is scoped to it. */
export const orgProfileRepo = {
  async findLive(ex: Executor, orgId: string): Promise<OrgRow | undefined> {
    const [row] = await ex.select().from(orgs).where(and(eq(orgs.id, orgId), isNull(orgs.deletedAt)));
    return row;
  },

  /** findLive, locking the row until the transaction ends: a change reads the state it replaces, not a stale copy. */
  async lockLive(tx: Executor, orgId: string): Promise<OrgRow | undefined> {
    const [row] = await tx.select().from(orgs).where(and(eq(orgs.id, orgId), isNull(orgs.deletedAt))).for("update");
    return row;
  },

  async update(tx: Executor, orgId: string, patch: Partial<typeof orgs.$inferInsert>): Promise<OrgRow | undefined> {
    const [row] = await tx.update(orgs).set(patch).where(and(eq(orgs.id, orgId), isNull(orgs.deletedAt))).returning();
    return row;
  },
};
