import { sql } from "drizzle-orm";
import { check, index, integer, pgTable, text, timestamp } from "drizzle-orm/pg-core";
import { orgs } from "./orgs.ts";

const ts = (name: string) => timestamp(name, { withTimezone: true, mode: "date" });

/**
 * A lease of some of an org's secrets to one principal (the vault's leases, modules/vault/leases.*): short-lived,
 * renewable up to `max_expires_at`, revocable. It holds secret ids only, never values: every use decrypts afresh
 * through the vault and reads this row, so a revocation or expiry stops the next read on every instance.
 */
export const secretLeases = pgTable(
  "secret_leases",
  {
    id: text("id").primaryKey(),
    orgId: text("org_id")
      .notNull()
      .references(() => orgs.id, { onDelete: "cascade" }),
    /** user | api_key | service_account | service: the principal that alone may use it */
    holderType: text("holder_type").notNull(),
    holderId: text("holder_id").notNull(),
    /** The leased secrets (1–100), by id: a deleted one makes the lease refuse, never silently shrink. */
    secretIds: text("secret_ids").array().notNull(),
    createdBy: text("created_by"),
    createdAt: ts("created_at").notNull().defaultNow(),
    expiresAt: ts("expires_at").notNull(),
    /** The renewal cap: no renewal moves expires_at past it. */
    maxExpiresAt: ts("max_expires_at").notNull(),
    revokedAt: ts("revoked_at"),
    revokedBy: text("revoked_by"),
    lastUsedAt: ts("last_used_at"),
    useCount: integer("use_count").notNull().default(0),
  },
  (t) => [
    index("secret_leases_org_id_idx").on(t.orgId, t.id),
    index("secret_leases_holder_idx").on(t.orgId, t.holderType, t.holderId, t.id),
    check("secret_leases_holder_type_check", sql`${t.holderType} in ('user', 'api_key', 'service_account', 'service')`),
    check("secret_leases_secret_ids_check", sql`cardinality(${t.secretIds}) between 1 and 100`),
    check("secret_leases_expiry_check", sql`${t.expiresAt} <= ${t.maxExpiresAt}`),
  ],
);
