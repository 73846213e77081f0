import type { RecordedAuditEvent } from "../audit/audit.service.ts";

/**
 * The webhook event types: each maps from the audit actions that produce it (the audit trail records every one of
 * them in the change's transaction), with its description, the JSON schema of its body and an example.
 * `audit.event` is the opt-in firehose: every audit event. `webhook.test` is sent only by `$test`.
 */
export const EVENT_TYPES = {
  "member.added": { actions: ["member.joined"], description: "Someone became a member of the organization (an invitation was accepted)" },
  "member.removed": { actions: ["member.removed", "member.left"], description: "A member was removed from the organization, or left it" },
  "member.role_changed": { actions: ["member.role_changed"], description: "A member's role changed" },
  "invitation.accepted": { actions: ["invitation.accepted"], description: "An invitation was accepted" },
  "key.created": { actions: ["key.created"], description: "An API key was created (never the key itself)" },
  "key.rotated": { actions: ["key.rotated"], description: "An API key was rotated (never the key itself)" },
  "key.revoked": { actions: ["key.revoked"], description: "An API key was revoked" },
  "service_account.created": { actions: ["service_account.created"], description: "A service account was created" },
  "service_account.updated": { actions: ["service_account.updated"], description: "A service account was changed (enabled, disabled, renamed, roles)" },
  "service_account.deleted": { actions: ["service_account.deleted"], description: "A service account was deleted" },
  "org.updated": { actions: ["org.updated"], description: "The organization's profile or settings changed" },
  "audit.event": { actions: [], description: "Every audit event of the organization (opt-in: an endpoint receives it only when it names it)" },
  "webhook.test": { actions: [], description: "A test event, sent by POST …/endpoints/{id}/$test" },
} as const satisfies Record<string, { actions: readonly string[]; description: string }>;

export type EventType = keyof typeof EVENT_TYPES;
export const EVENT_TYPE_NAMES = Object.keys(EVENT_TYPES) as EventType[];
/** What an endpoint may subscribe to (webhook.test always reaches the endpoint it is sent to). */
export const SUBSCRIBABLE = EVENT_TYPE_NAMES.filter((t) => t !== "webhook.test");

const BY_ACTION = new Map<string, EventType>();
for (const [type, def] of Object.entries(EVENT_TYPES)) for (const a of def.actions) BY_ACTION.set(a, type as EventType);

/** The event types an audit action produces: its own (if any) and the firehose. */
export function eventTypesOf(action: string): EventType[] {
  const own = BY_ACTION.get(action);
  return own ? [own, "audit.event"] : ["audit.event"];
}

/** Whether an endpoint subscribed to `subscribed` receives `type`: none named means every type but the firehose. */
export function subscribes(subscribed: readonly string[], type: EventType): boolean {
  return subscribed.length === 0 ? type !== "audit.event" : subscribed.includes(type);
}

/**
 * The body of an event, from the audit event's non-secret fields only (its diff is non-secret by the audit
 * contract; IP and user agent are left out). The Standard Webhooks shape: type, timestamp, data.
 */
export function eventBody(type: EventType, e: RecordedAuditEvent): Record<string, unknown> {
  return {
    type,
    timestamp: e.createdAt.toISOString(),
    data: {
      org_id: e.orgId,
      audit_event_id: e.id,
      action: e.action,
      actor: { type: e.actorType, id: e.actorId },
      target: { type: e.targetType, id: e.targetId },
      changes: e.diff,
    },
  };
}

const ref = (description: string) => ({
  type: "object",
  description,
  required: ["type", "id"],
  properties: { type: { type: "string" }, id: { type: ["string", "null"] } },
});

/** The JSON schema every event body follows; `type` is fixed per event type. */
export function eventSchema(type: EventType): Record<string, unknown> {
  return {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    type: "object",
    required: ["type", "timestamp", "data"],
    properties: {
      type: { const: type },
      timestamp: { type: "string", format: "date-time", description: "When the change happened" },
      data: {
        type: "object",
        required: ["org_id", "audit_event_id", "action", "actor", "target", "changes"],
        properties: {
          org_id: { type: "string", description: "org_… id" },
          audit_event_id: { type: ["string", "null"], description: "aud_… id of the audit event (null for webhook.test)" },
          action: { type: "string", description: "The audit action, e.g. member.joined" },
          actor: ref("Who did it (user, api_key, service_account, service, system)"),
          target: ref("What it was done to"),
          changes: { type: "object", description: "The audit event's non-secret diff: { field: [before, after] } or a summary" },
        },
      },
    },
  };
}

const EXAMPLE_TIME = new Date("2026-01-02T03:04:05.000Z");

/** An example body of the type, as a receiver gets it. */
export function eventExample(type: EventType): Record<string, unknown> {
  const action = EVENT_TYPES[type].actions[0] ?? (type === "webhook.test" ? "webhook.test" : "team.created");
  return eventBody(type, {
    id: "aud_01kbx4c3p8s2v0q9w7z5y1t6rm",
    orgId: "org_01kbx4c3p8s2v0q9w7z5y1t6rm",
    action,
    actorType: "user",
    actorId: "usr_01kbx4c3p8s2v0q9w7z5y1t6rm",
    targetType: type.split(".")[0],
    targetId: "usr_01kbx4c3p8s2v0q9w7z5y1t6rn",
    diff: type === "member.role_changed" ? { role: ["viewer", "developer"] } : {},
    createdAt: EXAMPLE_TIME,
  });
}
