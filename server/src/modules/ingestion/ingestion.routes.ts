import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { BODY_ERRORS, OrgIdParams, bearerSecurity, errors } from "../../http/schemas.ts";
import { idCursor, page, pageRequest } from "../../lib/pagination.ts";
import { requireTenant } from "../access/request.ts";
import { BATCH_BODY_LIMIT, EventPage, IngestBatchBody, IngestionStats, IngestResult, ListEventsQuery, toStoredEvent } from "./ingestion.schemas.ts";
import type { IngestionService } from "./ingestion.service.ts";

/**
 * Inbound event ingestion: POST /v1/orgs/:orgId/events:batch (events:write) and the reads, …/events and
 * …/events/stats (events:read). `::` is find-my-way's escape for a literal colon in a path.
 */
export function ingestionRoutes(s: { ingestion: IngestionService }): FastifyPluginAsyncTypebox {
  const tags = ["events"];
  const base = "/v1/orgs/:orgId/events";
  return async (app) => {
    app.post(
      `${base}::batch`,
      {
        bodyLimit: BATCH_BODY_LIMIT,
        config: { permission: "events:write" },
        schema: {
          operationId: "ingestEvents",
          tags,
          summary: "Send a batch of events; answered once they are durably stored",
          description:
            "1 to 1000 events, body at most 5 MiB, each event's data at most 64 KiB serialized. The 202 comes after the events are " +
            "committed; an id the organization sent before (or earlier in the batch) is a duplicate: stored once, named in duplicate_ids. " +
            "Workers process the events in batches, at least once, after the answer. While the organization's processing lags " +
            "(PLINTH_INGEST_MAX_LAG_SECONDS, PLINTH_INGEST_MAX_PENDING) the answer is 429 INGESTION_BACKLOGGED with Retry-After and " +
            "nothing is stored: send the same batch again later. An invalid event is a 400 naming events.<index>.<field>.",
          security: bearerSecurity,
          params: OrgIdParams,
          body: IngestBatchBody,
          response: { 202: IngestResult, ...errors(...BODY_ERRORS, 401, 403, 404, 429) },
        },
      },
      async (req, reply) => reply.code(202).send(await s.ingestion.accept(requireTenant(req), req.body)),
    );

    app.get(
      base,
      {
        config: { permission: "events:read" },
        schema: {
          operationId: "listEvents",
          tags,
          summary: "The organization's ingested events, newest first",
          security: bearerSecurity,
          params: OrgIdParams,
          querystring: ListEventsQuery,
          response: { 200: EventPage, ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => {
        const { limit, fetch, cursor } = pageRequest(req.query, idCursor("ingestEvent"));
        const rows = await s.ingestion.list(requireTenant(req), { before: cursor, type: req.query.type, processed: req.query.processed, limit: fetch });
        return page(rows, limit, (r) => r.id, toStoredEvent);
      },
    );

    app.get(
      `${base}/stats`,
      {
        config: { permission: "events:read" },
        schema: {
          operationId: "getEventStats",
          tags,
          summary: "How far processing is behind, and how many events of each type were processed",
          security: bearerSecurity,
          params: OrgIdParams,
          response: { 200: IngestionStats, ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => s.ingestion.stats(requireTenant(req)),
    );
  };
}
