import { sql } from "drizzle-orm";
import { bigint, index, jsonb, pgTable, text, timestamp, uniqueIndex } from "drizzle-orm/pg-core";

const ts = (name: string) => timestamp(name, { withTimezone: true, mode: "date" });

/**
 * The append-only audit log. Events are chained per org: each carries the hash of the previous one, so an edited or
 * deleted event breaks the chain (`plinth audit verify --org`). The app role may only insert and read.
 */
export const auditEvents = pgTable(
  "audit_events",
  {
    id: text("id").primaryKey(),
    orgId: text("org_id").notNull(),
    seq: bigint("seq", { mode: "number" }).notNull(),
    action: text("action").notNull(),
    actorType: text("actor_type").notNull(),
    actorId: text("actor_id"),
    /** Set when someone acted as the actor (impersonation). */
    impersonatorId: text("impersonator_id"),
    /** The API key a token was exchanged from, when the actor acted through such a token (null otherwise). */
    viaKeyId: text("via_key_id"),
    targetType: text("target_type").notNull(),
    targetId: text("target_id"),
    ip: text("ip"),
    userAgent: text("user_agent"),
    requestId: text("request_id"),
    /** Non-secret fields before and after the change. */
    diff: jsonb("diff").notNull().default(sql`'{}'::jsonb`),
    createdAt: ts("created_at").notNull(),
    prevHash: text("prev_hash").notNull(),
    hash: text("hash").notNull(),
  },
  (t) => [
    uniqueIndex("audit_events_org_seq_key").on(t.orgId, t.seq),
    index("audit_events_org_created_idx").on(t.orgId, t.createdAt),
    index("audit_events_org_action_idx").on(t.orgId, t.action),
  ],
);
