import { sql } from "drizzle-orm";
import { check, foreignKey, index, integer, pgTable, primaryKey, text, timestamp, uniqueIndex } from "drizzle-orm/pg-core";
import { memberships, orgs } from "./orgs.ts";
import { teams } from "./tenancy.ts";

const ts = (name: string) => timestamp(name, { withTimezone: true, mode: "date" });
const orgRef = () =>
  text("org_id")
    .notNull()
    .references(() => orgs.id, { onDelete: "cascade" });

/**
 * An org's key-encryption keys (the KMS layer, server/src/kms/), one row per version: the key itself wrapped under
 * the root key (derived from the master key), with the root key's fingerprint so a wrong root key is named as such.
 */
export const vaultKeks = pgTable(
  "vault_keks",
  {
    orgId: orgRef(),
    version: integer("version").notNull(),
    /** base64url(format | nonce | tag | ciphertext) of the 256-bit key, sealed under the root key. */
    wrappedKey: text("wrapped_key").notNull(),
    /** A fingerprint of the root key that wrapped it (derived for this purpose; reveals nothing of the key). */
    rootKeyId: text("root_key_id").notNull(),
    createdAt: ts("created_at").notNull().defaultNow(),
    retiredAt: ts("retired_at"),
  },
  (t) => [primaryKey({ columns: [t.orgId, t.version] })],
);

/**
 * A secret's metadata: its scope (the org, one of its teams, or one member within it), env-var friendly name unique
 * in that scope, and its current version. The value lives only as ciphertext in vault_secret_versions.
 */
export const vaultSecrets = pgTable(
  "vault_secrets",
  {
    id: text("id").primaryKey(),
    orgId: orgRef(),
    /** org | team | user */
    scope: text("scope").notNull(),
    teamId: text("team_id").references(() => teams.id, { onDelete: "cascade" }),
    userId: text("user_id"),
    name: text("name").notNull(),
    description: text("description").notNull().default(""),
    tags: text("tags").array().notNull().default(sql`'{}'::text[]`),
    expiresAt: ts("expires_at"),
    /** Days before expires_at the expiry notice goes out (null: 7); modules/vault/lifecycle.service.ts. */
    notifyBeforeDays: integer("notify_before_days"),
    /** Remind when the current version is older than this many days (null: never). */
    rotationReminderDays: integer("rotation_reminder_days"),
    /** The expires_at whose notice went out (and when): a new expiry is due for its own. */
    expiryNotifiedFor: ts("expiry_notified_for"),
    expiryNotifiedAt: ts("expiry_notified_at"),
    /** The expires_at whose passing was audited as secret.expired. */
    expiredNotedFor: ts("expired_noted_for"),
    /** The version a rotation reminder went out for. */
    rotationRemindedVersion: integer("rotation_reminded_version"),
    currentVersion: integer("current_version").notNull(),
    /** generic (set by hand) | oauth_connection (an integration connection's token set, written by its module only) */
    kind: text("kind").notNull().default("generic"),
    createdBy: text("created_by"),
    createdAt: ts("created_at").notNull().defaultNow(),
    updatedBy: text("updated_by"),
    updatedAt: ts("updated_at").notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex("vault_secrets_scope_name_key").on(t.orgId, t.scope, sql`coalesce(${t.teamId}, ${t.userId}, '')`, t.name),
    index("vault_secrets_org_id_idx").on(t.orgId, t.id),
    // a member's secrets end with their membership
    foreignKey({ columns: [t.orgId, t.userId], foreignColumns: [memberships.orgId, memberships.userId], name: "vault_secrets_member_fk" }).onDelete("cascade"),
    check("vault_secrets_kind_check", sql`${t.kind} in ('generic', 'oauth_connection')`),
    check(
      "vault_secrets_scope_check",
      sql`(${t.scope} = 'org' and ${t.teamId} is null and ${t.userId} is null) or (${t.scope} = 'team' and ${t.teamId} is not null and ${t.userId} is null) or (${t.scope} = 'user' and ${t.userId} is not null and ${t.teamId} is null)`,
    ),
  ],
);

/**
 * Every value a secret has had: AES-256-GCM ciphertext under a fresh data key, the data key wrapped under the org's
 * key-encryption key of `kek_version`, the secret's identity as associated data of both. Never the plaintext.
 */
export const vaultSecretVersions = pgTable(
  "vault_secret_versions",
  {
    orgId: orgRef(),
    secretId: text("secret_id")
      .notNull()
      .references(() => vaultSecrets.id, { onDelete: "cascade" }),
    version: integer("version").notNull(),
    /** base64url(ciphertext | tag) */
    ciphertext: text("ciphertext").notNull(),
    /** base64url of the 96-bit nonce */
    nonce: text("nonce").notNull(),
    /** The data key, sealed under the KEK (base64url(format | nonce | tag | ciphertext)). */
    wrappedKey: text("wrapped_key").notNull(),
    kekVersion: integer("kek_version").notNull(),
    createdBy: text("created_by"),
    createdAt: ts("created_at").notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.secretId, t.version] }),
    foreignKey({ columns: [t.orgId, t.kekVersion], foreignColumns: [vaultKeks.orgId, vaultKeks.version], name: "vault_secret_versions_kek_fk" }),
    index("vault_secret_versions_org_idx").on(t.orgId, t.kekVersion),
    index("vault_secret_versions_org_secret_idx").on(t.orgId, t.secretId, t.version),
  ],
);

/**
 * An org's key rotation settings: rotate its KEK every `rotation_days` (null: only on request); `next_rotation_at` is
 * when the scheduled rotation (vault.rotate-due) takes it next. Readable across tenants (no secret in it), written by
 * the tenant only (0015_vault_rotation.sql).
 */
export const vaultSettings = pgTable("vault_settings", {
  orgId: orgRef().primaryKey(),
  rotationDays: integer("rotation_days"),
  nextRotationAt: ts("next_rotation_at"),
  /** Retention of old versions (the current one always stays): keep the newest N, and none older than D days. */
  keepVersions: integer("keep_versions"),
  keepDays: integer("keep_days"),
  /** When the org's lifecycle pass (vault.lifecycle) is next due: writers lower it, the pass sets it (0018). */
  lifecycleDueAt: ts("lifecycle_due_at"),
  updatedAt: ts("updated_at").notNull().defaultNow(),
});
