import { type Static, Type } from "typebox";
import { NullableTimestamp, Timestamp } from "../../http/schemas.ts";
import { Page, pageQuery } from "../../lib/pagination.ts";
import type { EventRow } from "./ingestion.repo.ts";

/** At most this many events a batch. */
export const MAX_BATCH = 1000;
/** The largest `data` of one event, serialized as JSON (bytes). */
export const MAX_DATA_BYTES = 64 * 1024;
/** The largest batch body: 1000 events of a few KiB each; bigger data belongs in fewer, smaller batches. */
export const BATCH_BODY_LIMIT = 5 * 1024 * 1024;

const EventId = Type.String({
  minLength: 1,
  maxLength: 200,
  pattern: "^[A-Za-z0-9._:-]+$",
  description: "The sender's idempotency key: an event with an id the org already sent is a duplicate, stored once",
});
export const EventType = Type.String({
  minLength: 1,
  maxLength: 100,
  pattern: "^[A-Za-z][A-Za-z0-9_-]*(\\.[A-Za-z][A-Za-z0-9_-]*)*$",
  description: "A dotted name (order.created); processors subscribe by prefix",
});

export const InboundEvent = Type.Object(
  {
    id: EventId,
    type: EventType,
    occurred_at: Type.Optional(Type.String({ format: "date-time", description: "When it happened at the sender (absent: unknown)" })),
    data: Type.Record(Type.String(), Type.Unknown(), { description: "The event's body, a JSON object of at most 64 KiB serialized" }),
  },
  { additionalProperties: false },
);
export type InboundEventInput = Static<typeof InboundEvent>;

export const IngestBatchBody = Type.Object(
  { events: Type.Array(InboundEvent, { minItems: 1, maxItems: MAX_BATCH, description: "1 to 1000 events" }) },
  { additionalProperties: false },
);
export type IngestBatchInput = Static<typeof IngestBatchBody>;

export const IngestResult = Type.Object({
  accepted: Type.Integer({ description: "Events stored now (new ids)" }),
  duplicates: Type.Integer({ description: "Events not stored again: their id was sent before, or earlier in this batch" }),
  duplicate_ids: Type.Array(Type.String(), { description: "The ids of the duplicates, each once, in the batch's order" }),
});

export const ListEventsQuery = Type.Object(
  {
    ...pageQuery,
    type: Type.Optional(EventType),
    processed: Type.Optional(Type.Boolean({ description: "true: processed events only; false: those still waiting" })),
  },
  { additionalProperties: false },
);

export const StoredEvent = Type.Object({
  id: Type.String({ description: "The sender's id (idempotency key)" }),
  type: Type.String(),
  occurred_at: NullableTimestamp("When it happened at the sender, if it said"),
  received_at: Timestamp("When Plinth stored it"),
  processed_at: NullableTimestamp("When a worker processed it (null: waiting)"),
  data: Type.Record(Type.String(), Type.Unknown(), { description: "The event's body as sent" }),
});
export const EventPage = Page(StoredEvent);

export const IngestionStats = Type.Object({
  pending: Type.Integer({ description: "Events stored and not yet processed" }),
  oldest_pending_at: NullableTimestamp("When the oldest unprocessed event was received"),
  lag_seconds: Type.Integer({ description: "How long the oldest unprocessed event has waited (0 when none waits)" }),
  max_lag_seconds: Type.Integer({ description: "Above this lag new batches are answered 429" }),
  max_pending: Type.Integer({ description: "Batches that would take pending above this are answered 429" }),
  processed_by_type: Type.Array(Type.Object({ type: Type.String(), processed: Type.Integer({ description: "Events of this type processed so far" }) }), {
    description: "The built-in rollup, by type name",
  }),
});

export function toStoredEvent(r: EventRow): Static<typeof StoredEvent> {
  return {
    id: r.eventId,
    type: r.type,
    occurred_at: r.occurredAt?.toISOString() ?? null,
    received_at: r.receivedAt.toISOString(),
    processed_at: r.processedAt?.toISOString() ?? null,
    data: r.data,
  };
}
