import type { Database } from "../../db/client.ts";
import type { JobQueue } from "../../jobs/queue.ts";
import type { Clock } from "../../lib/clock.ts";
import { createEventProcessing, PROCESS_JOB, typeCountsProcessor } from "./ingestion.processing.ts";
import { ingestionRepo } from "./ingestion.repo.ts";
import { ingestionRoutes } from "./ingestion.routes.ts";
import { createIngestionService, type IngestionBounds } from "./ingestion.service.ts";

export type { EventProcessor, IngestedEvent } from "./ingestion.processing.ts";
export { PROCESS_JOB } from "./ingestion.processing.ts";
export { RETENTION_EVERY_MS, RETENTION_JOB } from "./ingestion.service.ts";

/**
 * Inbound event ingestion (docs/ingestion.md): batches stored durably before the 202, deduplicated per org by the
 * sender's id, processed in batches by workers through the processors registered with `onEvents`, refused with 429
 * while processing lags, purged after the retention window by `service.runRetention` (a scheduled job, deps.ts).
 */
export function wire(deps: { db: Database; clock: Clock; jobs: JobQueue; bounds: IngestionBounds }) {
  const { db, clock, jobs } = deps;
  const service = createIngestionService({ db, clock, repo: ingestionRepo, jobs, bounds: deps.bounds });
  const processing = createEventProcessing({ db, clock, repo: ingestionRepo, jobs });
  processing.onEvents("", typeCountsProcessor({ repo: ingestionRepo, clock }));
  // the payload names the org; the worker reads its unprocessed events
  jobs.register(PROCESS_JOB, async (p) => {
    await processing.processOrg(String(p.org_id));
  });
  return { service, onEvents: processing.onEvents, processing, routes: [ingestionRoutes({ ingestion: service })] };
}
