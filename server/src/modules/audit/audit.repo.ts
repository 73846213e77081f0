import { and, asc, desc, eq, gt, gte, lt, lte, sql } from "drizzle-orm";
import type { Executor } from "../../db/client.ts";
import { auditEvents, auditHeads } from "../../db/schema/index.ts";

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
  /**
   * The chain's head, taken under a per-org transaction lock so concurrent appends queue up instead of forking. The
   * head lives in audit_heads (one row per org), so an append reads one row instead of searching the chain.
   */
  async lockHead(tx: Executor, orgId: string): Promise<{ seq: number; hash: string } | undefined> {
    await tx.execute(sql`select pg_advisory_xact_lock(hashtextextended(${`audit:${orgId}`}, 0))`);
    const [row] = await tx.select({ seq: auditHeads.seq, hash: auditHeads.hash }).from(auditHeads).where(eq(auditHeads.orgId, orgId));
    return row;
  },

  /** Where the chain should end: the anchor verification compares the last event with. */
  async head(ex: Executor, orgId: string): Promise<{ seq: number; hash: string } | undefined> {
    const [row] = await ex.select({ seq: auditHeads.seq, hash: auditHeads.hash }).from(auditHeads).where(eq(auditHeads.orgId, orgId));
    return row;
  },

  async setHead(tx: Executor, orgId: string, seq: number, hash: string): Promise<void> {
    await tx
      .insert(auditHeads)
      .values({ orgId, seq, hash })
      .onConflictDoUpdate({ target: auditHeads.orgId, set: { seq, hash } });
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
