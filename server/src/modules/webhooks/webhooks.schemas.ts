import { type Static, Type } from "typebox";
import { NullableTimestamp, OrgIdParams, Timestamp } from "../../http/schemas.ts";
import { idPattern } from "../../lib/ids.ts";
import { Page, pageQuery } from "../../lib/pagination.ts";
import { EVENT_TYPE_NAMES, SUBSCRIBABLE } from "./webhooks.events.ts";
import type { AttemptRow, DeliveryRow, EndpointRow } from "./webhooks.repo.ts";

export const DELIVERY_STATUSES = ["pending", "delivered", "failed"] as const;

const EndpointId = Type.String({ pattern: idPattern("webhookEndpoint"), description: "whe_… id" });
const DeliveryId = Type.String({ pattern: idPattern("webhookDelivery"), description: "whd_… id" });

export const EndpointParams = Type.Object({ orgId: OrgIdParams.properties.orgId, endpointId: EndpointId }, { additionalProperties: false });
export const DeliveryParams = Type.Object({ orgId: OrgIdParams.properties.orgId, deliveryId: DeliveryId }, { additionalProperties: false });

const Url = Type.String({
  format: "uri",
  minLength: 8,
  maxLength: 2000,
  description: "Where events are POSTed: https (http only to a host the operator allowlisted); never a loopback, private, link-local or metadata address",
});
const Description = Type.String({ maxLength: 500, description: "What the endpoint is for (never a secret)" });
const EventTypes = Type.Array(Type.Enum([...SUBSCRIBABLE], { description: "An event type (GET /v1/webhook-event-types)" }), {
  maxItems: SUBSCRIBABLE.length,
  uniqueItems: true,
  description: "The event types it receives; empty or absent: every type but the audit.event firehose",
});
const RateLimit = Type.Integer({ minimum: 1, maximum: 10_000, description: "At most this many attempts a second (absent: no limit)" });

export const CreateEndpointBody = Type.Object(
  {
    url: Url,
    description: Type.Optional(Description),
    event_types: Type.Optional(EventTypes),
    enabled: Type.Optional(Type.Boolean({ description: "Whether it receives deliveries (default true)" })),
    rate_limit_per_second: Type.Optional(RateLimit),
  },
  { additionalProperties: false },
);
export type CreateEndpointInput = Static<typeof CreateEndpointBody>;

export const UpdateEndpointBody = Type.Object(
  {
    url: Type.Optional(Url),
    description: Type.Optional(Description),
    event_types: Type.Optional(EventTypes),
    enabled: Type.Optional(Type.Boolean({ description: "Enable (again, after Plinth disabled it) or disable" })),
    rate_limit_per_second: Type.Optional(Type.Union([RateLimit, Type.Null()], { description: "At most this many attempts a second; null: no limit" })),
  },
  { additionalProperties: false, minProperties: 1 },
);
export type UpdateEndpointInput = Static<typeof UpdateEndpointBody>;

export const ReplayFailedBody = Type.Object(
  { since: Type.String({ format: "date-time", description: "Replay the endpoint's failed deliveries created at or after this time" }) },
  { additionalProperties: false },
);

export const Endpoint = Type.Object(
  {
    id: Type.String({ description: "whe_… id" }),
    url: Type.String({ description: "Where events are POSTed" }),
    description: Type.String({ description: "What it is for" }),
    event_types: Type.Array(Type.String(), { description: "The event types it receives (empty: every type but audit.event)" }),
    enabled: Type.Boolean({ description: "Whether it receives deliveries" }),
    disabled_reason: Type.Union([Type.Literal("gone"), Type.Literal("failing"), Type.Null()], {
      description: "Why Plinth disabled it: gone (the receiver answered 410), failing (every attempt failed for 5 days); null otherwise",
    }),
    rate_limit_per_second: Type.Union([Type.Integer(), Type.Null()], { description: "At most this many attempts a second" }),
    previous_secret_expires_at: NullableTimestamp("Until when deliveries are also signed with the secret before the last rotation"),
    failing_since: NullableTimestamp("Since when every attempt has failed (null after a success)"),
    created_by: Type.Union([Type.String(), Type.Null()], { description: "Who created it" }),
    created_at: Timestamp("When it was created"),
    updated_at: Timestamp("When it last changed"),
  },
  { description: "A webhook endpoint: never its signing secret" },
);
export const EndpointPage = Page(Endpoint);

const Secret = Type.String({ description: "The signing secret (whsec_…): shown only now; Plinth keeps it encrypted and never shows it again" });
export const CreatedEndpoint = Type.Object({ ...Endpoint.properties, secret: Secret }, { description: "The new endpoint, with its secret shown once" });
export const RotatedSecret = Type.Object(
  {
    endpoint_id: Type.String({ description: "whe_… id" }),
    secret: Secret,
    previous_secret_expires_at: Timestamp("Until when deliveries carry a signature with the previous secret too"),
  },
  { description: "The endpoint's new signing secret, shown once" },
);

export const Attempt = Type.Object({
  attempt: Type.Integer({ description: "1 for the first attempt" }),
  status: Type.Union([Type.Literal("succeeded"), Type.Literal("failed")]),
  response_status: Type.Union([Type.Integer(), Type.Null()], { description: "The receiver's HTTP status (null: no answer)" }),
  response_body: Type.Union([Type.String(), Type.Null()], { description: "The first 1 KiB of the receiver's answer" }),
  duration_ms: Type.Integer({ description: "How long the attempt took" }),
  error_kind: Type.Union([Type.String(), Type.Null()], {
    description: "Why it failed: http_status, timeout, connection, blocked_address, unresolvable, invalid_url; null on success",
  }),
  created_at: Timestamp("When it was made"),
});

export const Delivery = Type.Object(
  {
    id: Type.String({ description: "whd_… id" }),
    endpoint_id: Type.String({ description: "whe_… id" }),
    message_id: Type.String({ description: "The webhook-id header: the same on every attempt and replay (deduplicate on it)" }),
    event_type: Type.Enum([...EVENT_TYPE_NAMES]),
    payload: Type.Record(Type.String(), Type.Unknown(), { description: "The body sent (JSON)" }),
    status: Type.Enum([...DELIVERY_STATUSES], { description: "pending (an attempt is due), delivered, failed (no retry left)" }),
    attempts: Type.Integer({ description: "Attempts made so far" }),
    next_attempt_at: NullableTimestamp("When the next attempt is due"),
    last_attempt_at: NullableTimestamp("When the last attempt was made"),
    delivered_at: NullableTimestamp("When a 2xx answered"),
    created_at: Timestamp("When the event happened"),
  },
  { description: "One event to one endpoint" },
);
export const DeliveryPage = Page(Delivery);
export const DeliveryWithAttempts = Type.Object(
  { ...Delivery.properties, attempt_log: Type.Array(Attempt, { description: "Every attempt, first first" }) },
  { description: "A delivery and its attempts" },
);
export const ListDeliveriesQuery = Type.Object(
  { ...pageQuery, status: Type.Optional(Type.Enum([...DELIVERY_STATUSES], { description: "Only deliveries in this state" })) },
  { additionalProperties: false },
);

export const EventTypeList = Type.Object({
  items: Type.Array(
    Type.Object({
      name: Type.String({ description: "The event type, e.g. member.added" }),
      description: Type.String(),
      schema: Type.Record(Type.String(), Type.Unknown(), { description: "JSON schema of the body" }),
      example: Type.Record(Type.String(), Type.Unknown(), { description: "An example body" }),
    }),
  ),
});

export function toEndpoint(r: EndpointRow) {
  return {
    id: r.id,
    url: r.url,
    description: r.description,
    event_types: r.eventTypes,
    enabled: r.enabled,
    disabled_reason: r.disabledReason as "gone" | "failing" | null,
    rate_limit_per_second: r.rateLimitPerSecond,
    previous_secret_expires_at: r.previousSecret && r.previousSecretUntil ? r.previousSecretUntil.toISOString() : null,
    failing_since: r.failingSince?.toISOString() ?? null,
    created_by: r.createdBy,
    created_at: r.createdAt.toISOString(),
    updated_at: r.updatedAt.toISOString(),
  };
}

export function toDelivery(r: DeliveryRow) {
  return {
    id: r.id,
    endpoint_id: r.endpointId,
    message_id: r.messageId,
    event_type: r.eventType as (typeof EVENT_TYPE_NAMES)[number],
    payload: r.payload,
    status: r.status as (typeof DELIVERY_STATUSES)[number],
    attempts: r.attempts,
    next_attempt_at: r.nextAttemptAt?.toISOString() ?? null,
    last_attempt_at: r.lastAttemptAt?.toISOString() ?? null,
    delivered_at: r.deliveredAt?.toISOString() ?? null,
    created_at: r.createdAt.toISOString(),
  };
}

export function toAttempt(r: AttemptRow) {
  return {
    attempt: r.attempt,
    status: r.status as "succeeded" | "failed",
    response_status: r.responseStatus,
    response_body: r.responseBody,
    duration_ms: r.durationMs,
    error_kind: r.errorKind,
    created_at: r.createdAt.toISOString(),
  };
}
