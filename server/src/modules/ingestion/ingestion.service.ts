import type { Database } from "../../db/client.ts";
import type { JobQueue } from "../../jobs/queue.ts";
import type { Clock } from "../../lib/clock.ts";
import { platformError } from "../../lib/errors.ts";
import { newId } from "../../lib/ids.ts";
import type { OrgMembership } from "../access/access.service.ts";
import { ingestionError } from "./ingestion.errors.ts";
import { PROCESS_JOB } from "./ingestion.processing.ts";
import type { EventRow, IngestionRepo } from "./ingestion.repo.ts";
import { type IngestBatchInput, MAX_DATA_BYTES } from "./ingestion.schemas.ts";

/** The scheduled retention pass (once across instances). */
export const RETENTION_JOB = "ingestion.retention";
export const RETENTION_EVERY_MS = 10 * 60_000;
/** Orgs read per page of the retention pass, and events deleted per statement. */
const ORGS_PER_PAGE = 100;
const PURGE_CHUNK = 5000;

export interface IngestionBounds {
  maxLagSeconds: number;
  maxPending: number;
  retentionDays: number;
}

/**
 * Inbound events: a batch is stored (deduplicated per org by the sender's id) in one transaction with the job that
 * processes it, and only then acknowledged; a backlogged org is refused with 429 before anything is written.
 * Batches are not audited: they are data, not changes to the org's configuration, and would flood the audit log.
 */
export function createIngestionService(deps: {
  db: Database;
  clock: Clock;
  repo: IngestionRepo;
  jobs: Pick<JobQueue, "enqueue" | "kick">;
  bounds: IngestionBounds;
}) {
  const { db, clock, repo, jobs, bounds } = deps;
  // how long a refused sender waits: a third of the lag bound, between 1 s and a minute
  const retryAfter = Math.min(60, Math.max(1, Math.ceil(bounds.maxLagSeconds / 3)));

  return {
    async accept(m: OrgMembership, body: IngestBatchInput): Promise<{ accepted: number; duplicates: number; duplicate_ids: string[] }> {
      const orgId = m.orgId;
      // the schema bounds the shape; the serialized size of `data` only code can measure
      body.events.forEach((e, i) => {
        if (Buffer.byteLength(JSON.stringify(e.data)) > MAX_DATA_BYTES)
          throw platformError("VALIDATION_FAILED", `events.${i}.data is larger than 64 KiB serialized.`, { field: `events.${i}.data` });
      });
      const now = clock.now();
      const first = new Map<string, (typeof body.events)[number]>();
      const repeated = new Set<string>();
      for (const e of body.events) {
        if (first.has(e.id)) repeated.add(e.id);
        else first.set(e.id, e);
      }
      const stored = await db.tx({ orgId }, async (tx) => {
        const backlog = await repo.backlog(tx, orgId, bounds.maxPending + 1);
        const lag = backlog.oldest ? (now.getTime() - backlog.oldest.getTime()) / 1000 : 0;
        if (lag > bounds.maxLagSeconds)
          throw ingestionError(
            "INGESTION_BACKLOGGED",
            `Events of this organization wait ${Math.floor(lag)} s to be processed (the bound is ${bounds.maxLagSeconds} s): retry later.`,
            { retryAfter },
          );
        if (backlog.pending + first.size > bounds.maxPending)
          throw ingestionError(
            "INGESTION_BACKLOGGED",
            `This organization has ${backlog.pending} unprocessed events; the bound is ${bounds.maxPending}: retry later.`,
            { retryAfter },
          );
        const ids = await repo.insertEvents(
          tx,
          [...first.values()].map((e) => ({
            id: newId("ingestEvent"),
            orgId,
            eventId: e.id,
            type: e.type,
            occurredAt: e.occurred_at ? new Date(e.occurred_at) : null,
            data: e.data,
            receivedAt: now,
          })),
        );
        if (ids.length) {
          await repo.rememberOrg(tx, orgId, now);
          await jobs.enqueue(tx, PROCESS_JOB, { org_id: orgId });
        }
        return new Set(ids);
      });
      if (stored.size) jobs.kick();
      // in the batch's order, each once: ids stored before, and ids this batch repeats
      const dupes = new Set(body.events.map((e) => e.id).filter((id) => !stored.has(id) || repeated.has(id)));
      return { accepted: stored.size, duplicates: body.events.length - stored.size, duplicate_ids: [...dupes] };
    },

    list(m: OrgMembership, f: { before?: string; type?: string; processed?: boolean; limit: number }): Promise<EventRow[]> {
      return db.read({ orgId: m.orgId }, (ex) => repo.list(ex, m.orgId, f));
    },

    async stats(m: OrgMembership) {
      const { pending, oldest, byType } = await db.read({ orgId: m.orgId }, async (ex) => ({
        pending: await repo.pendingCount(ex, m.orgId),
        oldest: (await repo.backlog(ex, m.orgId, 1)).oldest,
        byType: await repo.typeCounts(ex, m.orgId),
      }));
      return {
        pending,
        oldest_pending_at: oldest?.toISOString() ?? null,
        lag_seconds: oldest ? Math.max(0, Math.floor((clock.now().getTime() - oldest.getTime()) / 1000)) : 0,
        max_lag_seconds: bounds.maxLagSeconds,
        max_pending: bounds.maxPending,
        processed_by_type: byType.map((r) => ({ type: r.type, processed: Number(r.processed) })),
      };
    },

    /**
     * The scheduled pass: for every org that has ingested events (ingest_orgs, readable across tenants), delete its
     * events older than the retention window in its own tenant transaction, and queue processing when some still
     * wait (a job that gave up, or a crash, must not leave an org refused with 429 forever). Returns what it purged.
     */
    async runRetention(): Promise<{ org_id: string; purged: number }[]> {
      const out: { org_id: string; purged: number }[] = [];
      const before = new Date(clock.now().getTime() - bounds.retentionDays * 86_400_000);
      let after: string | undefined;
      for (;;) {
        const orgs = await db.read((ex) => repo.orgsWithEvents(ex, after, ORGS_PER_PAGE));
        for (const orgId of orgs) {
          let purged = 0;
          for (;;) {
            const n = await db.tx({ orgId }, (tx) => repo.purgeBefore(tx, orgId, before, PURGE_CHUNK));
            purged += n;
            if (n < PURGE_CHUNK) break;
          }
          await db.tx({ orgId }, async (tx) => {
            if ((await repo.backlog(tx, orgId, 1)).pending) await jobs.enqueue(tx, PROCESS_JOB, { org_id: orgId });
          });
          if (purged) out.push({ org_id: orgId, purged });
        }
        if (orgs.length < ORGS_PER_PAGE) break;
        after = orgs[orgs.length - 1];
      }
      return out;
    },
  };
}

export type IngestionService = ReturnType<typeof createIngestionService>;
