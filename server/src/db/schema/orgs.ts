import { boolean, index, jsonb, pgTable, primaryKey, text, timestamp, uniqueIndex } from "drizzle-orm/pg-core";
import { users } from "./identity.ts";

const ts = (name: string) => timestamp(name, { withTimezone: true, mode: "date" });

/** The tenant. Row-level security lets a transaction see its own org and the orgs its user belongs to. */
export const orgs = pgTable(
  "orgs",
  {
    id: text("id").primaryKey(),
    name: text("name").notNull(),
    slug: text("slug").notNull(),
    personal: boolean("personal").notNull().default(false),
    displayName: text("display_name"),
    logoUrl: text("logo_url"),
    primaryColor: text("primary_color"),
    address: jsonb("address"),
    contactEmail: text("contact_email"),
    contactPhone: text("contact_phone"),
    /** Whether the org's owners may impersonate its members (platform admins may regardless). Off by default. */
    ownerImpersonation: boolean("owner_impersonation").notNull().default(false),
    /** Soft delete: unusable at once, restorable by an owner until purgeAfter, then purged by a job. */
    deletedAt: ts("deleted_at"),
    purgeAfter: ts("purge_after"),
    deletedBy: text("deleted_by"),
    createdAt: ts("created_at").notNull().defaultNow(),
    updatedAt: ts("updated_at").notNull().defaultNow(),
  },
  (t) => [uniqueIndex("orgs_slug_key").on(t.slug)],
);

export const memberships = pgTable(
  "memberships",
  {
    orgId: text("org_id")
      .notNull()
      .references(() => orgs.id, { onDelete: "cascade" }),
    userId: text("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    role: text("role").notNull(),
    createdAt: ts("created_at").notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.orgId, t.userId] }),
    index("memberships_user_idx").on(t.userId),
    // the members page: keyset on (created_at, user_id) within an org
    index("memberships_org_created_idx").on(t.orgId, t.createdAt, t.userId),
  ],
);
