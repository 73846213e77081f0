import { and, asc, count, desc, eq, gt, inArray, isNotNull, isNull, lt, min, sql } from "drizzle-orm";
import type { Executor } from "../../db/client.ts";
import { ingestEvents, ingestOrgs, ingestTypeCounts } from "../../db/schema/ingestion.ts";

export type EventRow = typeof ingestEvents.$inferSelect;

const pending = (orgId: string) => and(eq(ingestEvents.orgId, orgId), isNull(ingestEvents.processedAt));

/** Ingested events, the per-type rollup and the list of orgs with events: the org in every query but the purge's org scan. */
export const ingestionRepo = {
  /** One multi-row INSERT; a (org, event id) already stored is skipped. Returns the event ids stored now. */
  async insertEvents(tx: Executor, rows: (typeof ingestEvents.$inferInsert)[]): Promise<string[]> {
    if (!rows.length) return [];
    const got = await tx
      .insert(ingestEvents)
      .values(rows)
      .onConflictDoNothing({ target: [ingestEvents.orgId, ingestEvents.eventId] })
      .returning({ eventId: ingestEvents.eventId });
    return got.map((r) => r.eventId);
  },

  async rememberOrg(tx: Executor, orgId: string, now: Date): Promise<void> {
    await tx.insert(ingestOrgs).values({ orgId, firstEventAt: now }).onConflictDoNothing({ target: ingestOrgs.orgId });
  },

  /** The org's unprocessed events, counted up to `cap` (the bound needs no more), and the oldest one's arrival. */
  async backlog(ex: Executor, orgId: string, cap: number): Promise<{ pending: number; oldest: Date | null }> {
    const capped = ex.select({ one: sql`1` }).from(ingestEvents).where(pending(orgId)).limit(cap).as("capped");
    const [n] = await ex.select({ n: count() }).from(capped);
    const [o] = await ex
      .select({ oldest: min(ingestEvents.receivedAt) })
      .from(ingestEvents)
      .where(pending(orgId));
    return { pending: Number(n?.n ?? 0), oldest: o?.oldest ? new Date(o.oldest) : null };
  },

  async pendingCount(ex: Executor, orgId: string): Promise<number> {
    const [n] = await ex.select({ n: count() }).from(ingestEvents).where(pending(orgId));
    return Number(n?.n ?? 0);
  },

  /** Newest first, before the cursor id; by type and processed state. */
  list(ex: Executor, orgId: string, f: { before?: string; type?: string; processed?: boolean; limit: number }): Promise<EventRow[]> {
    return ex
      .select()
      .from(ingestEvents)
      .where(
        and(
          eq(ingestEvents.orgId, orgId),
          f.type === undefined ? undefined : eq(ingestEvents.type, f.type),
          f.processed === undefined ? undefined : f.processed ? isNotNull(ingestEvents.processedAt) : isNull(ingestEvents.processedAt),
          f.before === undefined ? undefined : lt(ingestEvents.id, f.before),
        ),
      )
      .orderBy(desc(ingestEvents.id))
      .limit(f.limit);
  },

  /** Up to `limit` unprocessed events, oldest first, locked; those another worker holds are skipped. */
  claimPending(tx: Executor, orgId: string, limit: number): Promise<EventRow[]> {
    return tx
      .select()
      .from(ingestEvents)
      .where(pending(orgId))
      .orderBy(asc(ingestEvents.receivedAt), asc(ingestEvents.id))
      .limit(limit)
      .for("update", { skipLocked: true });
  },

  async markProcessed(tx: Executor, orgId: string, ids: string[], now: Date): Promise<void> {
    if (ids.length)
      await tx
        .update(ingestEvents)
        .set({ processedAt: now })
        .where(and(eq(ingestEvents.orgId, orgId), inArray(ingestEvents.id, ids)));
  },

  async addTypeCounts(tx: Executor, orgId: string, counts: Map<string, number>, now: Date): Promise<void> {
    if (!counts.size) return;
    await tx
      .insert(ingestTypeCounts)
      .values([...counts].map(([type, n]) => ({ orgId, type, processed: n, updatedAt: now })))
      .onConflictDoUpdate({
        target: [ingestTypeCounts.orgId, ingestTypeCounts.type],
        set: { processed: sql`${ingestTypeCounts.processed} + excluded.processed`, updatedAt: now },
      });
  },

  typeCounts(ex: Executor, orgId: string): Promise<{ type: string; processed: number }[]> {
    return ex
      .select({ type: ingestTypeCounts.type, processed: ingestTypeCounts.processed })
      .from(ingestTypeCounts)
      .where(eq(ingestTypeCounts.orgId, orgId))
      .orderBy(ingestTypeCounts.type);
  },

  /** Orgs that have ingested events, by id after `after` (read across tenants: the rows hold an id and a date). */
  async orgsWithEvents(ex: Executor, after: string | undefined, limit: number): Promise<string[]> {
    const rows = await ex
      .select({ orgId: ingestOrgs.orgId })
      .from(ingestOrgs)
      .where(after === undefined ? undefined : gt(ingestOrgs.orgId, after))
      .orderBy(ingestOrgs.orgId)
      .limit(limit);
    return rows.map((r) => r.orgId);
  },

  /** Deletes up to `limit` of the org's events received before `before`; returns how many. */
  async purgeBefore(tx: Executor, orgId: string, before: Date, limit: number): Promise<number> {
    const old = tx
      .select({ id: ingestEvents.id })
      .from(ingestEvents)
      .where(and(eq(ingestEvents.orgId, orgId), lt(ingestEvents.receivedAt, before)))
      .limit(limit);
    const gone = await tx
      .delete(ingestEvents)
      .where(and(eq(ingestEvents.orgId, orgId), inArray(ingestEvents.id, old)))
      .returning({ id: ingestEvents.id });
    return gone.length;
  },
};

export type IngestionRepo = typeof ingestionRepo;
