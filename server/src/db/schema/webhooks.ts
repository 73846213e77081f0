import { sql } from "drizzle-orm";
import { boolean, check, foreignKey, index, integer, jsonb, pgTable, text, timestamp } from "drizzle-orm/pg-core";
import { orgs } from "./orgs.ts";

const ts = (name: string) => timestamp(name, { withTimezone: true, mode: "date" });

/** A signing secret as the KMS layer keeps it (kms/kms.ts Envelope): ciphertext under a data key wrapped by the org's KEK. */
export interface SecretEnvelope {
  ciphertext: string;
  nonce: string;
  wrappedKey: string;
  kekVersion: number;
}

/**
 * An org's outbound webhook endpoint (modules/webhooks): where events go, which ones, and its signing secret, only
 * ever encrypted (the vault's KMS layer, associated data naming the endpoint). During a rotation's overlap the
 * previous secret signs too, until `previous_secret_until`.
 */
export const webhookEndpoints = pgTable(
  "webhook_endpoints",
  {
    id: text("id").primaryKey(),
    orgId: text("org_id")
      .notNull()
      .references(() => orgs.id, { onDelete: "cascade" }),
    url: text("url").notNull(),
    description: text("description").notNull().default(""),
    /** Event types it receives; empty: every type but the audit.event firehose. */
    eventTypes: text("event_types").array().notNull().default(sql`'{}'::text[]`),
    enabled: boolean("enabled").notNull().default(true),
    /** Why it was disabled by Plinth: gone (the receiver answered 410) or failing (5 days of failures); null when by hand. */
    disabledReason: text("disabled_reason"),
    rateLimitPerSecond: integer("rate_limit_per_second"),
    secret: jsonb("secret").$type<SecretEnvelope>().notNull(),
    /** The secret rotated away from, still signing until previous_secret_until. */
    previousSecret: jsonb("previous_secret").$type<SecretEnvelope>(),
    previousSecretUntil: ts("previous_secret_until"),
    /** Since when every attempt has failed (null after a success): 5 days of it disable the endpoint. */
    failingSince: ts("failing_since"),
    createdBy: text("created_by"),
    createdAt: ts("created_at").notNull().defaultNow(),
    updatedAt: ts("updated_at").notNull().defaultNow(),
  },
  (t) => [
    index("webhook_endpoints_org_id_idx").on(t.orgId, t.id),
    check("webhook_endpoints_rate_check", sql`${t.rateLimitPerSecond} is null or ${t.rateLimitPerSecond} between 1 and 10000`),
    check("webhook_endpoints_disabled_check", sql`${t.disabledReason} is null or ${t.disabledReason} in ('gone', 'failing')`),
  ],
);

/**
 * One event to one endpoint: the body that is sent (built from the audit event's non-secret fields: never a secret),
 * its webhook-id (`message_id`, the same on every attempt and replay), and where its attempts stand.
 */
export const webhookDeliveries = pgTable(
  "webhook_deliveries",
  {
    id: text("id").primaryKey(),
    orgId: text("org_id")
      .notNull()
      .references(() => orgs.id, { onDelete: "cascade" }),
    endpointId: text("endpoint_id").notNull(),
    messageId: text("message_id").notNull(),
    eventType: text("event_type").notNull(),
    payload: jsonb("payload").$type<Record<string, unknown>>().notNull(),
    /** pending | delivered | failed */
    status: text("status").notNull().default("pending"),
    attempts: integer("attempts").notNull().default(0),
    nextAttemptAt: ts("next_attempt_at"),
    lastAttemptAt: ts("last_attempt_at"),
    deliveredAt: ts("delivered_at"),
    createdAt: ts("created_at").notNull().defaultNow(),
  },
  (t) => [
    index("webhook_deliveries_endpoint_idx").on(t.orgId, t.endpointId, t.id),
    foreignKey({ columns: [t.endpointId], foreignColumns: [webhookEndpoints.id], name: "webhook_deliveries_endpoint_fk" }).onDelete("cascade"),
    check("webhook_deliveries_status_check", sql`${t.status} in ('pending', 'delivered', 'failed')`),
  ],
);

/** Every attempt of a delivery: the delivery log (status, response code, first 1 KiB of the answer, duration, why it failed). */
export const webhookAttempts = pgTable(
  "webhook_attempts",
  {
    id: text("id").primaryKey(),
    orgId: text("org_id")
      .notNull()
      .references(() => orgs.id, { onDelete: "cascade" }),
    deliveryId: text("delivery_id").notNull(),
    attempt: integer("attempt").notNull(),
    /** succeeded | failed */
    status: text("status").notNull(),
    responseStatus: integer("response_status"),
    responseBody: text("response_body"),
    durationMs: integer("duration_ms").notNull(),
    /** http_status | timeout | connection | blocked_address | unresolvable | invalid_url; null on success */
    errorKind: text("error_kind"),
    createdAt: ts("created_at").notNull().defaultNow(),
  },
  (t) => [
    index("webhook_attempts_delivery_idx").on(t.orgId, t.deliveryId, t.attempt),
    foreignKey({ columns: [t.deliveryId], foreignColumns: [webhookDeliveries.id], name: "webhook_attempts_delivery_fk" }).onDelete("cascade"),
    check("webhook_attempts_status_check", sql`${t.status} in ('succeeded', 'failed')`),
  ],
);
