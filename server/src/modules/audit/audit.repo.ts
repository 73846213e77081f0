import { and, asc, desc, eq, gt, gte, lt, lte, sql } from "drizzle-orm";
import type { Executor } from "../../db/client.ts";
import { auditEvents } from "../../db/schema/index.ts";

export type AuditRow = typeof auditEvents.$inferSelect;

export interface AuditFilter {
  actorId?: string;
  action?: string;
  targetType?: string;
  targetId?: string;
  from?: Date;
  to?: Date;
}

/** Audit queries; every one names its org (row-level security is the floor, this filter the wall). */
export const auditRepo = {
  /** The chain's head, taken under a per-org transaction lock so concurrent appends queue up instead of forking. */
  async lockHead(tx: Executor, orgId: string): Promise<{ seq: number; hash: string } | undefined> {
    await tx.execute(sql`select pg_advisory_xact_lock(hashtextextended(${`audit:${orgId}`}, 0))`);
    const [row] = await tx
      .select({ seq: auditEvents.seq, hash: auditEvents.hash })
      .from(auditEvents)
      .where(eq(auditEvents.orgId, orgId))
      .orderBy(desc(auditEvents.seq))
      .limit(1);
    return row;
  },

  async insert(tx: Executor, row: typeof auditEvents.$inferInsert): Promise<void> {
    await tx.insert(auditEvents).values(row);
  },

  /** Newest first, `limit` rows after the cursor (a seq). */
  async list(ex: Executor, orgId: string, f: AuditFilter, limit: number, beforeSeq?: number): Promise<AuditRow[]> {
    return ex
      .select()
      .from(auditEvents)
      .where(
        and(
          eq(auditEvents.orgId, orgId),
          f.actorId ? eq(auditEvents.actorId, f.actorId) : undefined,
          f.action ? eq(auditEvents.action, f.action) : undefined,
          f.targetType ? eq(auditEvents.targetType, f.targetType) : undefined,
          f.targetId ? eq(auditEvents.targetId, f.targetId) : undefined,
          f.from ? gte(auditEvents.createdAt, f.from) : undefined,
          f.to ? lte(auditEvents.createdAt, f.to) : undefined,
          beforeSeq !== undefined ? lt(auditEvents.seq, beforeSeq) : undefined,
        ),
      )
      .orderBy(desc(auditEvents.seq))
      .limit(limit);
  },

  /** Oldest first from `afterSeq`, for verification and export in batches. */
  async chainFrom(ex: Executor, orgId: string, afterSeq: number, limit: number): Promise<AuditRow[]> {
    return ex
      .select()
      .from(auditEvents)
      .where(and(eq(auditEvents.orgId, orgId), gt(auditEvents.seq, afterSeq)))
      .orderBy(asc(auditEvents.seq))
      .limit(limit);
  },
};

export type AuditRepo = typeof auditRepo;
