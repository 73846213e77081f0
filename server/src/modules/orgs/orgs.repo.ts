import { createHash } from "node:crypto";
import { and, asc, count, eq, getTableColumns, isNotNull, isNull, sql } from "drizzle-orm";
import type { Executor } from "../../db/client.ts";
import { preparedQuery } from "../../db/prepared.ts";
import { memberships, orgs, teams } from "../../db/schema/index.ts";

export type OrgRow = typeof orgs.$inferSelect;

/**
 * Org queries. Row-level security already limits what a transaction sees; each query names its tenant as well.
 * Memberships are read here but written by the members module only (a new org's first owner too).
 */
export const orgsRepo = {
  async insertOrg(tx: Executor, row: typeof orgs.$inferInsert): Promise<OrgRow> {
    const [org] = await tx.insert(orgs).values(row).returning();
    return org;
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

// every org route reads its org: built once (db/prepared.ts)
const liveOrg = (ex: Executor) =>
  ex
    .select()
    .from(orgs)
    .where(and(eq(orgs.id, sql.placeholder("orgId")), isNull(orgs.deletedAt)));
const findLive = preparedQuery<OrgRow[], { orgId: string }>("orgs_find_live", liveOrg);
const lockLive = preparedQuery<OrgRow[], { orgId: string }>("orgs_lock_live", (ex) => liveOrg(ex).for("update"));

const orgColumns = getTableColumns(orgs);
type OrgUpdate = (ex: Executor, values: Record<string, unknown>) => Promise<OrgRow[]>;
const updates = new Map<string, OrgUpdate>();
/** The profile update for one set of columns, built once per set (a profile has few columns, so few sets). */
function updateOf(columns: string[]): OrgUpdate {
  const key = columns.join(",");
  let update = updates.get(key);
  if (!update) {
    // values arrive encoded for the driver (update() does it, keeping NULL a NULL): sql wraps them as they are
    const set = Object.fromEntries(columns.map((c) => [c, sql`${sql.placeholder(c)}`])) as Partial<typeof orgs.$inferInsert>;
    const name = `orgs_update_${createHash("sha256").update(key).digest("hex").slice(0, 16)}`;
    update = preparedQuery<OrgRow[], Record<string, unknown>>(name, (ex) =>
      ex
        .update(orgs)
        .set(set)
        .where(and(eq(orgs.id, sql.placeholder("orgId")), isNull(orgs.deletedAt)))
        .returning(),
    );
    updates.set(key, update);
  }
  return update;
}

/** Profile queries for one org; the caller's transaction is scoped to it. */
export const orgProfileRepo = {
  async findLive(ex: Executor, orgId: string): Promise<OrgRow | undefined> {
    const [row] = await findLive(ex, { orgId });
    return row;
  },

  /** findLive, locking the row until the transaction ends: a change reads the state it replaces, not a stale copy. */
  async lockLive(tx: Executor, orgId: string): Promise<OrgRow | undefined> {
    const [row] = await lockLive(tx, { orgId });
    return row;
  },

  async update(tx: Executor, orgId: string, patch: Partial<typeof orgs.$inferInsert>): Promise<OrgRow | undefined> {
    const columns = Object.keys(patch)
      .filter((c) => c in orgColumns && patch[c as keyof typeof patch] !== undefined)
      .sort();
    const values: Record<string, unknown> = { orgId };
    for (const c of columns) {
      const v = patch[c as keyof typeof patch];
      values[c] = v === null ? null : orgColumns[c as keyof typeof orgColumns].mapToDriverValue(v as never);
    }
    const [row] = await updateOf(columns)(tx, values);
    return row;
  },
};

export interface DeletedOrg {
  org: OrgRow;
  role: string;
}

/** Queries on deleted orgs; the caller's transaction is scoped to the org (or, for the listing, to the user). */
export const deletedOrgsRepo = {
  async lockDeleted(tx: Executor, orgId: string): Promise<OrgRow | undefined> {
    const [row] = await tx
      .select()
      .from(orgs)
      .where(and(eq(orgs.id, orgId), isNotNull(orgs.deletedAt)))
      .for("update");
    return row;
  },

  async roleOf(tx: Executor, orgId: string, userId: string): Promise<string | undefined> {
    const [row] = await tx
      .select({ role: memberships.role })
      .from(memberships)
      .where(and(eq(memberships.orgId, orgId), eq(memberships.userId, userId)));
    return row?.role;
  },

  /** The deleted orgs the user is a member of (row-level security shows a user the orgs they belong to). */
  async listForUser(ex: Executor, userId: string): Promise<DeletedOrg[]> {
    return ex
      .select({ org: orgs, role: memberships.role })
      .from(memberships)
      .innerJoin(orgs, eq(orgs.id, memberships.orgId))
      .where(and(eq(memberships.userId, userId), isNotNull(orgs.deletedAt)))
      .orderBy(sql`${orgs.deletedAt} desc`, orgs.id);
  },

  async counts(tx: Executor, orgId: string): Promise<{ memberships: number; teams: number }> {
    const [m] = await tx.select({ n: count() }).from(memberships).where(eq(memberships.orgId, orgId));
    const [t] = await tx.select({ n: count() }).from(teams).where(eq(teams.orgId, orgId));
    return { memberships: Number(m.n), teams: Number(t.n) };
  },

  async restore(tx: Executor, orgId: string, now: Date): Promise<OrgRow> {
    const [row] = await tx.update(orgs).set({ deletedAt: null, deletedBy: null, purgeAfter: null, updatedAt: now }).where(eq(orgs.id, orgId)).returning();
    return row;
  },

  async purge(tx: Executor, orgId: string): Promise<void> {
    // memberships, teams, team members, custom roles, grants, grant requests and invitations go by ON DELETE CASCADE
    await tx.delete(orgs).where(and(eq(orgs.id, orgId), isNotNull(orgs.deletedAt)));
  },
};
