import { sql } from "drizzle-orm";
import { bigint, foreignKey, index, integer, pgTable, primaryKey, text, timestamp, uniqueIndex } from "drizzle-orm/pg-core";
import { users } from "./identity.ts";
import { memberships, orgs } from "./orgs.ts";

const ts = (name: string) => timestamp(name, { withTimezone: true, mode: "date" });
const orgRef = () =>
  text("org_id")
    .notNull()
    .references(() => orgs.id, { onDelete: "cascade" });

/**
 * Teams form a tree inside one org (parent_id, no cycles). `path` is the chain of ancestor ids from the root down to
 * and including the team itself, so a subtree is `path @> ARRAY[id]` and a move rewrites the subtree's paths at once.
 */
export const teams = pgTable(
  "teams",
  {
    id: text("id").primaryKey(),
    orgId: orgRef(),
    name: text("name").notNull(),
    description: text("description"),
    parentId: text("parent_id"),
    path: text("path").array().notNull(),
    createdBy: text("created_by"),
    createdAt: ts("created_at").notNull().defaultNow(),
    updatedAt: ts("updated_at").notNull().defaultNow(),
  },
  (t) => [
    foreignKey({ columns: [t.parentId], foreignColumns: [t.id], name: "teams_parent_fk" }).onDelete("restrict"),
    uniqueIndex("teams_org_name_key").on(t.orgId, sql`lower(${t.name})`),
    index("teams_org_parent_idx").on(t.orgId, t.parentId, t.id),
    index("teams_org_id_idx").on(t.orgId, t.id),
    index("teams_path_idx").using("gin", t.path),
  ],
);

/** A member of the org in a team, as maintainer (manages the team and its sub-teams) or member. */
export const teamMembers = pgTable(
  "team_members",
  {
    teamId: text("team_id")
      .notNull()
      .references(() => teams.id, { onDelete: "cascade" }),
    orgId: text("org_id").notNull(),
    userId: text("user_id").notNull(),
    role: text("role").notNull(),
    createdAt: ts("created_at").notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.teamId, t.userId] }),
    // leaving the org leaves its teams
    foreignKey({ columns: [t.orgId, t.userId], foreignColumns: [memberships.orgId, memberships.userId], name: "team_members_membership_fk" }).onDelete(
      "cascade",
    ),
    index("team_members_org_user_idx").on(t.orgId, t.userId),
  ],
);

/** An org's own roles: a named subset of the permission catalog. Memberships name a role by its `name`. */
export const customRoles = pgTable(
  "custom_roles",
  {
    id: text("id").primaryKey(),
    orgId: orgRef(),
    name: text("name").notNull(),
    description: text("description").notNull().default(""),
    permissions: text("permissions").array().notNull(),
    createdBy: text("created_by"),
    createdAt: ts("created_at").notNull().defaultNow(),
    updatedAt: ts("updated_at").notNull().defaultNow(),
  },
  (t) => [uniqueIndex("custom_roles_org_name_key").on(t.orgId, t.name)],
);

/** An emailed invitation to join an org; the token is stored as a hash and dies when resent, revoked or used. */
export const invitations = pgTable(
  "invitations",
  {
    id: text("id").primaryKey(),
    orgId: orgRef(),
    email: text("email").notNull(),
    /** lower-cased, for matching against accounts and for one pending invitation per address */
    emailKey: text("email_key").notNull(),
    role: text("role").notNull(),
    teamIds: text("team_ids").array().notNull().default(sql`'{}'::text[]`),
    tokenHash: text("token_hash"),
    /** The person who invited (null when a service account or registered service did, or the person is gone). */
    invitedBy: text("invited_by").references(() => users.id, { onDelete: "set null" }),
    /** Who invited, of any principal kind: `user` (usr_…), `service_account` (sa_…) or `service` (svk_…, a service key's registration). */
    invitedByType: text("invited_by_type").notNull().default("user"),
    invitedById: text("invited_by_id"),
    expiresAt: ts("expires_at").notNull(),
    sentCount: integer("sent_count").notNull().default(0),
    lastSentAt: ts("last_sent_at"),
    acceptedAt: ts("accepted_at"),
    acceptedBy: text("accepted_by"),
    revokedAt: ts("revoked_at"),
    createdAt: ts("created_at").notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex("invitations_token_key").on(t.tokenHash),
    uniqueIndex("invitations_pending_key").on(t.orgId, t.emailKey).where(sql`${t.acceptedAt} is null and ${t.revokedAt} is null`),
    index("invitations_org_created_idx").on(t.orgId, t.createdAt),
  ],
);

/**
 * Relationship tuples: (subject, relation, object) in one org. Subjects are users, teams (reaching the members of the
 * team and of its sub-teams), the whole org, and later API keys and service accounts. Relations on a resource are
 * owner/admin/share/write/delete/read/list; a peer grant's object is the org itself and its relation a permission
 * (`secrets:read`) the grantor held.
 */
export const grants = pgTable(
  "grants",
  {
    id: text("id").primaryKey(),
    orgId: orgRef(),
    subjectType: text("subject_type").notNull(),
    subjectId: text("subject_id").notNull(),
    relation: text("relation").notNull(),
    objectType: text("object_type").notNull(),
    objectId: text("object_id").notNull(),
    /** `share` (a relation on a resource) or `peer` (a permission passed from one member to another) */
    kind: text("kind").notNull(),
    grantedBy: text("granted_by"),
    expiresAt: ts("expires_at"),
    createdAt: ts("created_at").notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex("grants_tuple_key").on(t.orgId, t.objectType, t.objectId, t.relation, t.subjectType, t.subjectId),
    index("grants_org_subject_idx").on(t.orgId, t.subjectType, t.subjectId),
  ],
);

/** A member asking another for a capability; approved (perhaps narrowed) into a peer grant, or denied. */
export const grantRequests = pgTable(
  "grant_requests",
  {
    id: text("id").primaryKey(),
    orgId: orgRef(),
    requesterId: text("requester_id").notNull(),
    grantorId: text("grantor_id").notNull(),
    permissions: text("permissions").array().notNull(),
    reason: text("reason"),
    requestedExpiresAt: ts("requested_expires_at"),
    status: text("status").notNull(),
    decidedAt: ts("decided_at"),
    decidedBy: text("decided_by"),
    grantIds: text("grant_ids").array().notNull().default(sql`'{}'::text[]`),
    createdAt: ts("created_at").notNull().defaultNow(),
  },
  (t) => [index("grant_requests_org_status_idx").on(t.orgId, t.status)],
);

/**
 * The head of each org's audit chain, kept beside the chain: appends lock this row instead of scanning for the newest
 * event, and `plinth audit verify` compares the chain's end with it, so a truncated tail no longer passes as whole.
 */
export const auditHeads = pgTable("audit_heads", {
  orgId: text("org_id").primaryKey(),
  seq: bigint("seq", { mode: "number" }).notNull(),
  hash: text("hash").notNull(),
});

export type TeamRow = typeof teams.$inferSelect;
export type GrantRow = typeof grants.$inferSelect;
