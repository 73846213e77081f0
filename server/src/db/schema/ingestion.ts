import { sql } from "drizzle-orm";
import { bigint, index, jsonb, pgTable, primaryKey, text, timestamp, uniqueIndex } from "drizzle-orm/pg-core";
import { orgs } from "./orgs.ts";

const ts = (name: string) => timestamp(name, { withTimezone: true, mode: "date" });

/**
 * An event an org sent to its ingestion endpoint (modules/ingestion): stored before the 202, once per (org, the
 * sender's id), and processed by workers, who set `processed_at` in the transaction that runs the processors.
 */
export const ingestEvents = pgTable(
  "ingest_events",
  {
    /** evt_…, time-ordered: the list's order and cursor. */
    id: text("id").primaryKey(),
    orgId: text("org_id")
      .notNull()
      .references(() => orgs.id, { onDelete: "cascade" }),
    /** The sender's idempotency key. */
    eventId: text("event_id").notNull(),
    type: text("type").notNull(),
    occurredAt: ts("occurred_at"),
    data: jsonb("data").$type<Record<string, unknown>>().notNull(),
    receivedAt: ts("received_at").notNull(),
    processedAt: ts("processed_at"),
  },
  (t) => [
    uniqueIndex("ingest_events_org_event_idx").on(t.orgId, t.eventId),
    index("ingest_events_org_id_idx").on(t.orgId, t.id),
    index("ingest_events_pending_idx").on(t.orgId, t.receivedAt, t.id).where(sql`${t.processedAt} is null`),
    index("ingest_events_received_idx").on(t.orgId, t.receivedAt),
  ],
);

/** The built-in processor's rollup: how many events of each type the org's workers processed. */
export const ingestTypeCounts = pgTable(
  "ingest_type_counts",
  {
    orgId: text("org_id")
      .notNull()
      .references(() => orgs.id, { onDelete: "cascade" }),
    type: text("type").notNull(),
    processed: bigint("processed", { mode: "number" }).notNull().default(0),
    updatedAt: ts("updated_at").notNull(),
  },
  (t) => [primaryKey({ name: "ingest_type_counts_pk", columns: [t.orgId, t.type] })],
);

/** The orgs that have ingested events: what the retention purge reads across tenants (an id and a date, nothing else). */
export const ingestOrgs = pgTable("ingest_orgs", {
  orgId: text("org_id")
    .primaryKey()
    .references(() => orgs.id, { onDelete: "cascade" }),
  firstEventAt: ts("first_event_at").notNull(),
});
