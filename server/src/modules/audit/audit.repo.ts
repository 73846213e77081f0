import { and, asc, desc, eq, gt, gte, lt, lte, sql } from "drizzle-orm";
import type { Executor } from "../../db/client.ts";
import { preparedStatement, type BoundStatement } from "../../db/prepared.ts";
import { auditEvents, auditHeads } from "../../db/schema/index.ts";
import { GENESIS_HASH } from "./chain.ts";

export type AuditRow = typeof auditEvents.$inferSelect;

const v = (key: string) => sql.placeholder(key);
const appendEvent = preparedStatement<Omit<AppendedEvent, "diff" | "createdAt"> & { diff: string; createdAt: string; genesis: string }>(
  "audit_append",
  sql`with head as (
      select seq, hash from audit_heads where org_id = ${v("orgId")} for update
    ), next as (
      select coalesce((select seq from head), 0) + 1 as seq, coalesce((select hash from head), ${v("genesis")}::text) as prev_hash
    ), event as (
      insert into audit_events (id, org_id, seq, action, actor_type, actor_id, impersonator_id, via_key_id, target_type, target_id,
        ip, user_agent, request_id, diff, created_at, prev_hash, hash)
      select ${v("id")}, ${v("orgId")}, next.seq, ${v("action")}, ${v("actorType")}, ${v("actorId")}, ${v("impersonatorId")}, ${v("viaKeyId")},
        ${v("targetType")}, ${v("targetId")}, ${v("ip")}, ${v("userAgent")}, ${v("requestId")}, ${v("diff")}::jsonb,
        ${v("createdAt")}::timestamptz, next.prev_hash,
        encode(sha256(convert_to(next.prev_hash || chr(10) || ${v("bodyBefore")}::text || next.seq::text || ${v("bodyAfter")}::text, 'UTF8')), 'hex')
      from next
      returning seq, hash
    )
    insert into audit_heads (org_id, seq, hash) select ${v("orgId")}, seq, hash from event
    on conflict (org_id) do update set seq = excluded.seq, hash = excluded.hash`,
);

/** An event to append: its fields but seq, prev_hash and hash (the database assigns those), and its body's text. */
export interface AppendedEvent {
  id: string;
  orgId: string;
  action: string;
  actorType: string;
  actorId: string | null;
  impersonatorId: string | null;
  viaKeyId: string | null;
  targetType: string;
  targetId: string | null;
  ip: string | null;
  userAgent: string | null;
  requestId: string | null;
  diff: unknown;
  createdAt: Date;
  /** eventBodyParts(): the canonical body before and after its seq. */
  bodyBefore: string;
  bodyAfter: string;
}

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
   * One statement that appends an event to its org's chain: it locks the chain's head (audit_heads, one row per
   * org; FOR UPDATE waits for a concurrent append and then reads the head it left), numbers the event after it,
   * hashes it (sha256 over the previous hash, a newline and the canonical body, the seq put in between `before` and
   * `after`: chain.ts's eventHash, computed by PostgreSQL) and moves the head. Nothing comes back, so the statement
   * can travel with the transaction's COMMIT (db.atCommit); it is built once (db/prepared.ts). The first event of
   * an org (its creation, in the same transaction as the org) finds no head and starts from the genesis hash; two
   * first events racing would collide on (org_id, seq) rather than fork.
   */
  appendStatement(e: AppendedEvent): BoundStatement {
    return appendEvent({ ...e, diff: JSON.stringify(e.diff), createdAt: e.createdAt.toISOString(), genesis: GENESIS_HASH });
  },

  /** Where the chain should end: the anchor verification compares the last event with. */
  async head(ex: Executor, orgId: string): Promise<{ seq: number; hash: string } | undefined> {
    const [row] = await ex.select({ seq: auditHeads.seq, hash: auditHeads.hash }).from(auditHeads).where(eq(auditHeads.orgId, orgId));
    return row;
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
