import { sql } from "drizzle-orm";
import { bigint, boolean, index, integer, jsonb, pgTable, text, timestamp, uniqueIndex } from "drizzle-orm/pg-core";
import { orgs } from "./orgs.ts";

const ts = (name: string) => timestamp(name, { withTimezone: true, mode: "date" });
const orgRef = () =>
  text("org_id")
    .notNull()
    .references(() => orgs.id, { onDelete: "cascade" });

/** A non-human principal of one org (an agent runner, a CI job, a microservice), with roles like a member's. */
export const serviceAccounts = pgTable(
  "service_accounts",
  {
    id: text("id").primaryKey(),
    orgId: orgRef(),
    name: text("name").notNull(),
    description: text("description").notNull().default(""),
    /** Role names (built-in or the org's custom roles); the account holds their union. */
    roles: text("roles").array().notNull(),
    disabledAt: ts("disabled_at"),
    createdBy: text("created_by"),
    createdAt: ts("created_at").notNull().defaultNow(),
    updatedAt: ts("updated_at").notNull().defaultNow(),
  },
  (t) => [uniqueIndex("service_accounts_org_name_key").on(t.orgId, t.name)],
);

/**
 * An API key of one org, owned by a user (a member) or a service account. The secret is never stored: its sha256
 * lives in credential_index (for the lookup) and here (for rotation). Revocation is a soft delete.
 */
export const apiKeys = pgTable(
  "api_keys",
  {
    id: text("id").primaryKey(),
    orgId: orgRef(),
    name: text("name").notNull(),
    ownerType: text("owner_type").notNull(),
    ownerId: text("owner_id").notNull(),
    /** The first characters of the secret, shown in lists so people can tell keys apart (`plk_live_7fq2…`). */
    prefix: text("prefix").notNull(),
    secretHash: text("secret_hash").notNull(),
    roles: text("roles").array().notNull().default(sql`'{}'::text[]`),
    permissions: text("permissions").array().notNull().default(sql`'{}'::text[]`),
    /** Acts with its owner's current permissions in the org instead of its own list. */
    inherit: boolean("inherit").notNull().default(false),
    notBefore: ts("not_before"),
    expiresAt: ts("expires_at"),
    ipAllowlist: text("ip_allowlist").array().notNull().default(sql`'{}'::text[]`),
    rateLimitPerMinute: integer("rate_limit_per_minute"),
    createdBy: text("created_by"),
    createdAt: ts("created_at").notNull().defaultNow(),
    updatedAt: ts("updated_at").notNull().defaultNow(),
    lastUsedAt: ts("last_used_at"),
    usageCount: bigint("usage_count", { mode: "number" }).notNull().default(0),
    revokedAt: ts("revoked_at"),
    revokedBy: text("revoked_by"),
    revokedReason: text("revoked_reason"),
  },
  (t) => [
    uniqueIndex("api_keys_owner_name_key").on(t.orgId, t.ownerType, t.ownerId, t.name).where(sql`${t.revokedAt} is null`),
    index("api_keys_org_created_idx").on(t.orgId, t.createdAt),
  ],
);

/**
 * Platform routing for presented credentials: which org and record a secret's hash (an API key) or a client id
 * (OAuth client credentials) belongs to, read before any tenant is known. Holds no secret; `expires_at` ends a
 * rotated-out secret's grace period.
 */
export const credentialIndex = pgTable(
  "credential_index",
  {
    lookupKey: text("lookup_key").primaryKey(),
    kind: text("kind").notNull(),
    credentialId: text("credential_id").notNull(),
    orgId: text("org_id").notNull(),
    expiresAt: ts("expires_at"),
    createdAt: ts("created_at").notNull().defaultNow(),
  },
  (t) => [index("credential_index_credential_idx").on(t.credentialId)],
);

/** OAuth client credentials of a service account (client_credentials grant); the secret is stored hashed. */
export const oauthClients = pgTable(
  "oauth_clients",
  {
    id: text("id").primaryKey(),
    orgId: orgRef(),
    serviceAccountId: text("service_account_id")
      .notNull()
      .references(() => serviceAccounts.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    secretHash: text("secret_hash").notNull(),
    createdBy: text("created_by"),
    createdAt: ts("created_at").notNull().defaultNow(),
    lastUsedAt: ts("last_used_at"),
    revokedAt: ts("revoked_at"),
  },
  (t) => [index("oauth_clients_account_idx").on(t.orgId, t.serviceAccountId)],
);

/**
 * The service key registry: public keys (JWK) that microservices sign their own JWTs with. A registration belongs to
 * one org (`org_id`) or, registered by a platform admin, to the platform (`org_id` null). The tenant policy matches
 * exactly (`org_id IS NOT DISTINCT FROM` the transaction's org), so an org sees only its own registrations and the
 * platform scope only the platform's. A presented JWT is routed to its registration by `kid` through
 * credential_index (kind `service_key`). Holds no secret.
 */
export const serviceKeys = pgTable(
  "service_keys",
  {
    id: text("id").primaryKey(),
    orgId: text("org_id").references(() => orgs.id, { onDelete: "cascade" }),
    /** The service's name: the `iss` (and `sub`) its tokens carry; several keys of one service may be active. */
    service: text("service").notNull(),
    kid: text("kid").notNull(),
    alg: text("alg").notNull(),
    publicJwk: jsonb("public_jwk").notNull(),
    /** Role names the service acts with in the org (built-in or the org's custom roles). */
    roles: text("roles").array().notNull().default(sql`'{}'::text[]`),
    description: text("description").notNull().default(""),
    expiresAt: ts("expires_at"),
    createdBy: text("created_by"),
    createdAt: ts("created_at").notNull().defaultNow(),
    lastUsedAt: ts("last_used_at"),
    revokedAt: ts("revoked_at"),
    revokedBy: text("revoked_by"),
  },
  (t) => [uniqueIndex("service_keys_kid_key").on(t.kid), index("service_keys_org_service_idx").on(t.orgId, t.service)],
);

/**
 * A record of one impersonation: who (`impersonator_id`) acted as whom (`user_id`), where (`org_id`, null for a
 * platform admin's platform-wide session), why, and until when. A platform record about a person (they list their
 * own), like sessions: read by user id, not by tenant.
 */
export const impersonations = pgTable(
  "impersonations",
  {
    id: text("id").primaryKey(),
    impersonatorId: text("impersonator_id").notNull(),
    userId: text("user_id").notNull(),
    orgId: text("org_id"),
    reason: text("reason").notNull(),
    /** "platform_admin" or "org_owner": the authority it was granted under. */
    basis: text("basis").notNull(),
    createdAt: ts("created_at").notNull().defaultNow(),
    expiresAt: ts("expires_at").notNull(),
    endedAt: ts("ended_at"),
    ip: text("ip"),
    userAgent: text("user_agent"),
  },
  (t) => [index("impersonations_user_idx").on(t.userId, t.createdAt), index("impersonations_impersonator_idx").on(t.impersonatorId, t.createdAt)],
);
