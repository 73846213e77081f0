import { sql } from "drizzle-orm";
import { boolean, index, integer, jsonb, pgTable, text, timestamp, uniqueIndex } from "drizzle-orm/pg-core";
import { kmsPlatformKeks } from "./kms.ts";

const ts = (name: string) => timestamp(name, { withTimezone: true, mode: "date" });

/** Platform-wide: a person. Not tenant-owned (a user belongs to many orgs). */
export const users = pgTable(
  "users",
  {
    id: text("id").primaryKey(),
    email: text("email").notNull(),
    emailVerifiedAt: ts("email_verified_at"),
    name: text("name").notNull(),
    avatarUrl: text("avatar_url"),
    locale: text("locale"),
    timezone: text("timezone"),
    isPlatformAdmin: boolean("is_platform_admin").notNull().default(false),
    disabledAt: ts("disabled_at"),
    createdAt: ts("created_at").notNull().defaultNow(),
    updatedAt: ts("updated_at").notNull().defaultNow(),
  },
  (t) => [uniqueIndex("users_email_key").on(sql`lower(${t.email})`)],
);

/** argon2id hash in PHC form; its parameters say when it needs an upgrade. */
export const passwordCredentials = pgTable("password_credentials", {
  userId: text("user_id")
    .primaryKey()
    .references(() => users.id, { onDelete: "cascade" }),
  hash: text("hash").notNull(),
  updatedAt: ts("updated_at").notNull().defaultNow(),
});

/** A sign-in session: one family of rotating refresh tokens. */
export const sessions = pgTable(
  "sessions",
  {
    id: text("id").primaryKey(),
    userId: text("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    method: text("method").notNull(),
    /** Set when the session was opened for one org (SSO, an org login): leaving that org ends it. */
    orgId: text("org_id"),
    ip: text("ip"),
    userAgent: text("user_agent"),
    createdAt: ts("created_at").notNull().defaultNow(),
    lastUsedAt: ts("last_used_at").notNull().defaultNow(),
    expiresAt: ts("expires_at").notNull(),
    revokedAt: ts("revoked_at"),
    revokedReason: text("revoked_reason"),
  },
  (t) => [
    index("sessions_user_idx").on(t.userId),
    // every instance reads the sessions revoked since its last look (identity/session-revocations.ts)
    index("sessions_revoked_at_idx").on(t.revokedAt).where(sql`revoked_at is not null`),
  ],
);

export const refreshTokens = pgTable(
  "refresh_tokens",
  {
    id: text("id").primaryKey(),
    sessionId: text("session_id")
      .notNull()
      .references(() => sessions.id, { onDelete: "cascade" }),
    tokenHash: text("token_hash").notNull(),
    createdAt: ts("created_at").notNull().defaultNow(),
    usedAt: ts("used_at"),
  },
  (t) => [uniqueIndex("refresh_tokens_hash_key").on(t.tokenHash), index("refresh_tokens_session_idx").on(t.sessionId)],
);

/** Single-use emailed tokens (verification, reset, magic link), stored hashed. */
export const emailTokens = pgTable(
  "email_tokens",
  {
    id: text("id").primaryKey(),
    userId: text("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    purpose: text("purpose").notNull(),
    email: text("email").notNull(),
    tokenHash: text("token_hash").notNull(),
    createdAt: ts("created_at").notNull().defaultNow(),
    expiresAt: ts("expires_at").notNull(),
    consumedAt: ts("consumed_at"),
  },
  (t) => [uniqueIndex("email_tokens_hash_key").on(t.tokenHash), index("email_tokens_user_idx").on(t.userId, t.purpose)],
);

export const loginAttempts = pgTable(
  "login_attempts",
  {
    id: text("id").primaryKey(),
    userId: text("user_id").references(() => users.id, { onDelete: "cascade" }),
    method: text("method").notNull(),
    ip: text("ip"),
    userAgent: text("user_agent"),
    result: text("result").notNull(),
    createdAt: ts("created_at").notNull().defaultNow(),
  },
  (t) => [index("login_attempts_user_idx").on(t.userId, t.id)],
);

/** Security-relevant events about a user that belong to no org (refresh-token reuse, password changes). */
export const securityEvents = pgTable(
  "security_events",
  {
    id: text("id").primaryKey(),
    userId: text("user_id").references(() => users.id, { onDelete: "cascade" }),
    kind: text("kind").notNull(),
    detail: jsonb("detail").notNull().default(sql`'{}'::jsonb`),
    ip: text("ip"),
    userAgent: text("user_agent"),
    createdAt: ts("created_at").notNull().defaultNow(),
  },
  (t) => [index("security_events_user_idx").on(t.userId, t.id)],
);

/**
 * Token-signing keys; the private JWK is a KMS envelope under the platform tier (ciphertext, nonce, wrapped_key,
 * kek_version), its associated data the key id (0020_platform_keks.sql).
 */
export const signingKeys = pgTable("signing_keys", {
  id: text("id").primaryKey(),
  alg: text("alg").notNull(),
  publicJwk: jsonb("public_jwk").notNull(),
  /** Legacy: the private JWK sealed under the master key by earlier versions; boot converts it and clears it. */
  privateJwkSealed: text("private_jwk_sealed"),
  ciphertext: text("ciphertext"),
  nonce: text("nonce"),
  wrappedKey: text("wrapped_key"),
  kekVersion: integer("kek_version").references(() => kmsPlatformKeks.version),
  createdAt: ts("created_at").notNull().defaultNow(),
  /** Set when a newer key took over signing; the key stays published until retireAfter. */
  supersededAt: ts("superseded_at"),
  retireAfter: ts("retire_after"),
  retiredAt: ts("retired_at"),
});

export const jobs = pgTable(
  "jobs",
  {
    id: text("id").primaryKey(),
    kind: text("kind").notNull(),
    payload: jsonb("payload").notNull(),
    runAt: ts("run_at").notNull().defaultNow(),
    attempts: integer("attempts").notNull().default(0),
    maxAttempts: integer("max_attempts").notNull().default(10),
    lockedUntil: ts("locked_until"),
    lastError: text("last_error"),
    createdAt: ts("created_at").notNull().defaultNow(),
    finishedAt: ts("finished_at"),
    failedAt: ts("failed_at"),
  },
  (t) => [index("jobs_due_idx").on(t.runAt).where(sql`finished_at is null and failed_at is null`)],
);

/** Mail kept for developers when no SMTP server is configured (`plinth mail list`). */
export const mailOutbox = pgTable("mail_outbox", {
  id: text("id").primaryKey(),
  to: text("to").notNull(),
  subject: text("subject").notNull(),
  text: text("text").notNull(),
  html: text("html"),
  createdAt: ts("created_at").notNull().defaultNow(),
});
