import { integer, pgTable, text, timestamp } from "drizzle-orm/pg-core";

const ts = (name: string) => timestamp(name, { withTimezone: true, mode: "date" });

/**
 * The KMS layer's platform tier (server/src/kms/): key-encryption keys for records that belong to no org (the
 * token-signing keys), one row per version, wrapped under the root key exactly as an org's (vault_keks) are.
 * Not tenant data: no row-level security (decision 002).
 */
export const kmsPlatformKeks = pgTable("kms_platform_keks", {
  version: integer("version").primaryKey(),
  /** base64url(format | nonce | tag | ciphertext) of the 256-bit key, sealed under the root key. */
  wrappedKey: text("wrapped_key").notNull(),
  /** A fingerprint of the root key that wrapped it (derived for this purpose; reveals nothing of the key). */
  rootKeyId: text("root_key_id").notNull(),
  createdAt: ts("created_at").notNull().defaultNow(),
  retiredAt: ts("retired_at"),
});
