import { and, asc, eq, gt, isNotNull, isNull, lt, lte, or } from "drizzle-orm";
import type { Executor } from "../../db/client.ts";
import { integrationConnections } from "../../db/schema/connections.ts";

export type ConnectionRow = typeof integrationConnections.$inferSelect;

export interface ConnectionFilter {
  provider?: string;
  status?: string;
  after?: string;
  limit: number;
}

const byId = (orgId: string, id: string) => and(eq(integrationConnections.orgId, orgId), eq(integrationConnections.id, id));

/**
 * Integration connections. Row-level security limits every write to its org and each query names the org; only
 * `due` reads across tenants (the rows hold no secret: 0019_integration_connections.sql opens SELECT for it).
 */
export const connectionsRepo = {
  async insert(tx: Executor, row: typeof integrationConnections.$inferInsert): Promise<ConnectionRow> {
    const [r] = await tx.insert(integrationConnections).values(row).returning();
    return r;
  },

  async find(ex: Executor, orgId: string, id: string, lock = false): Promise<ConnectionRow | undefined> {
    const q = ex.select().from(integrationConnections).where(byId(orgId, id));
    const [r] = await (lock ? q.for("update") : q);
    return r;
  },

  /** Oldest first (ids are time-ordered), after the cursor id. */
  list(ex: Executor, orgId: string, f: ConnectionFilter): Promise<ConnectionRow[]> {
    return ex
      .select()
      .from(integrationConnections)
      .where(
        and(
          eq(integrationConnections.orgId, orgId),
          f.provider === undefined ? undefined : eq(integrationConnections.provider, f.provider),
          f.status === undefined ? undefined : eq(integrationConnections.status, f.status),
          f.after === undefined ? undefined : gt(integrationConnections.id, f.after),
        ),
      )
      .orderBy(asc(integrationConnections.id))
      .limit(f.limit);
  },

  async update(tx: Executor, orgId: string, id: string, set: Partial<typeof integrationConnections.$inferInsert>): Promise<ConnectionRow> {
    const [r] = await tx.update(integrationConnections).set(set).where(byId(orgId, id)).returning();
    return r;
  },

  /**
   * Takes the refresh of an active connection until `until`, unless another refresh holds it: the row, or undefined
   * (held, or not active). One statement, so two workers cannot both take it.
   */
  async claimRefresh(tx: Executor, orgId: string, id: string, now: Date, until: Date): Promise<ConnectionRow | undefined> {
    const [r] = await tx
      .update(integrationConnections)
      .set({ refreshClaimedUntil: until })
      .where(
        and(
          byId(orgId, id),
          eq(integrationConnections.status, "active"),
          isNotNull(integrationConnections.secretId),
          or(isNull(integrationConnections.refreshClaimedUntil), lte(integrationConnections.refreshClaimedUntil, now)),
        ),
      )
      .returning();
    return r;
  },

  /** Active connections whose access token expires before `before` and that no pending refresh job covers (across tenants). */
  due(ex: Executor, before: Date, queuedBefore: Date, limit: number): Promise<Pick<ConnectionRow, "orgId" | "id">[]> {
    return ex
      .select({ orgId: integrationConnections.orgId, id: integrationConnections.id })
      .from(integrationConnections)
      .where(
        and(
          eq(integrationConnections.status, "active"),
          lt(integrationConnections.accessTokenExpiresAt, before),
          or(isNull(integrationConnections.refreshQueuedAt), lt(integrationConnections.refreshQueuedAt, queuedBefore)),
        ),
      )
      .orderBy(asc(integrationConnections.accessTokenExpiresAt))
      .limit(limit);
  },

  /** Marks a due connection queued (in the transaction that enqueues its job); false when another scan already did. */
  async markQueued(tx: Executor, orgId: string, id: string, now: Date, queuedBefore: Date): Promise<boolean> {
    const rows = await tx
      .update(integrationConnections)
      .set({ refreshQueuedAt: now })
      .where(
        and(
          byId(orgId, id),
          eq(integrationConnections.status, "active"),
          or(isNull(integrationConnections.refreshQueuedAt), lt(integrationConnections.refreshQueuedAt, queuedBefore)),
        ),
      )
      .returning({ id: integrationConnections.id });
    return rows.length > 0;
  },
};

export type ConnectionsRepo = typeof connectionsRepo;
