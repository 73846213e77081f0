import type { Database, Executor } from "../../db/client.ts";
import type { JobQueue } from "../../jobs/queue.ts";
import type { Clock } from "../../lib/clock.ts";
import type { EventRow, IngestionRepo } from "./ingestion.repo.ts";

/** The processing job: payload `{ org_id }` only, never event data (the worker reads the org's unprocessed events). */
export const PROCESS_JOB = "ingestion.process";
/** Events one transaction claims, processes and marks. */
export const PROCESS_BATCH = 500;
/** Batches one job runs before it hands the rest to a follow-up job (so one busy org does not hold a worker). */
export const BATCHES_PER_JOB = 20;

export interface IngestedEvent {
  id: string;
  type: string;
  occurredAt: Date | null;
  receivedAt: Date;
  data: Record<string, unknown>;
}

/**
 * A processor gets the events whose type is its prefix or starts with `<prefix>.` ("" takes every event), inside the
 * transaction that marks them processed: its writes through `tx` commit with the marking or not at all, so a crash
 * never counts an event twice. Anything it does outside `tx` may happen again on a retry: make that idempotent.
 */
export type EventProcessor = (tx: Executor, events: IngestedEvent[], ctx: { orgId: string }) => Promise<void>;

const matches = (prefix: string, type: string) => prefix === "" || type === prefix || type.startsWith(`${prefix}.`);

const toEvent = (r: EventRow): IngestedEvent => ({ id: r.eventId, type: r.type, occurredAt: r.occurredAt, receivedAt: r.receivedAt, data: r.data });

/** The processor registry and the worker side: batches of an org's unprocessed events through every processor. */
export function createEventProcessing(deps: { db: Database; clock: Clock; repo: IngestionRepo; jobs: Pick<JobQueue, "enqueue"> }) {
  const { db, clock, repo, jobs } = deps;
  const processors: { prefix: string; run: EventProcessor }[] = [];

  /** One batch in one transaction: claim (SKIP LOCKED, so workers on the same org share the work), process, mark. */
  async function processBatch(orgId: string, followUp: boolean): Promise<number> {
    return db.tx({ orgId }, async (tx) => {
      const rows = await repo.claimPending(tx, orgId, PROCESS_BATCH);
      if (!rows.length) return 0;
      const events = rows.map(toEvent);
      for (const p of processors) {
        const mine = events.filter((e) => matches(p.prefix, e.type));
        if (mine.length) await p.run(tx, mine, { orgId });
      }
      await repo.markProcessed(
        tx,
        orgId,
        rows.map((r) => r.id),
        clock.now(),
      );
      // the last batch this job may run was full: a follow-up job takes the rest, committed with this batch
      if (followUp && rows.length === PROCESS_BATCH) await jobs.enqueue(tx, PROCESS_JOB, { org_id: orgId });
      return rows.length;
    });
  }

  return {
    /** Registers a processor for the event types under `prefix` ("" for all), in the order processors run. */
    onEvents(prefix: string, run: EventProcessor): void {
      processors.push({ prefix, run });
    },
    /** What one processing job does: batches until the org has no unprocessed events (or BATCHES_PER_JOB). */
    async processOrg(orgId: string): Promise<number> {
      let total = 0;
      for (let i = 0; i < BATCHES_PER_JOB; i++) {
        const n = await processBatch(orgId, i === BATCHES_PER_JOB - 1);
        total += n;
        if (n < PROCESS_BATCH) break;
      }
      return total;
    },
  };
}

export type EventProcessing = ReturnType<typeof createEventProcessing>;

/** The built-in processor: counts processed events per type per org (ingest_type_counts), what GET …/events/stats shows. */
export function typeCountsProcessor(deps: { repo: Pick<IngestionRepo, "addTypeCounts">; clock: Clock }): EventProcessor {
  return async (tx, events, { orgId }) => {
    const counts = new Map<string, number>();
    for (const e of events) counts.set(e.type, (counts.get(e.type) ?? 0) + 1);
    await deps.repo.addTypeCounts(tx, orgId, counts, deps.clock.now());
  };
}
