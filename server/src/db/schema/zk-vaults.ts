import { sql } from "drizzle-orm";
import { check, foreignKey, index, integer, jsonb, pgTable, primaryKey, text, timestamp, uniqueIndex } from "drizzle-orm/pg-core";
import type { KdfParams } from "../../zk/zk.kdf.ts";
import { memberships, orgs } from "./orgs.ts";

const ts = (name: string) => timestamp(name, { withTimezone: true, mode: "date" });
const orgRef = () =>
  text("org_id")
    .notNull()
    .references(() => orgs.id, { onDelete: "cascade" });

/*
 * Zero-knowledge vaults (modules/zk-vaults/): the client encrypts; these tables hold only what it uploads —
 * ciphertext, nonces, wrapped keys, sealed shares, public keys and key-derivation parameters. Nothing here, nor the
 * master key, decrypts any of it: the keys that do are derived from a passphrase, a recovery phrase, a hardware key
 * or a member's private key, none of which reaches the server.
 */

/** A member's X25519 key pair for this org: the public key, and the private key sealed under their passphrase. */
export const zkUserKeys = pgTable(
  "zk_user_keys",
  {
    orgId: orgRef(),
    userId: text("user_id").notNull(),
    publicKey: text("public_key").notNull(),
    encryptedPrivateKey: text("encrypted_private_key").notNull(),
    kdf: jsonb("kdf").$type<KdfParams>().notNull(),
    createdAt: ts("created_at").notNull().defaultNow(),
    updatedAt: ts("updated_at").notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.orgId, t.userId] }),
    foreignKey({ columns: [t.orgId, t.userId], foreignColumns: [memberships.orgId, memberships.userId], name: "zk_user_keys_member_fk" }).onDelete("cascade"),
  ],
);

/** A vault: its owner, key version, and the vault key wrapped three ways (passphrase, recovery phrase, hardware key). */
export const zkVaults = pgTable(
  "zk_vaults",
  {
    id: text("id").primaryKey(),
    orgId: orgRef(),
    ownerId: text("owner_id").notNull(),
    name: text("name").notNull(),
    keyVersion: integer("key_version").notNull(),
    kdf: jsonb("kdf").$type<KdfParams>().notNull(),
    passphraseWrappedKey: text("passphrase_wrapped_key").notNull(),
    recoveryPhraseWrappedKey: text("recovery_phrase_wrapped_key").notNull(),
    hardwareWrappedKey: text("hardware_wrapped_key").notNull(),
    /** HMAC of the key version under the vault key: lets the client tell the right key from a wrong one. */
    keyCheck: text("key_check").notNull(),
    /** Shares needed for social recovery; null until shares are set. */
    shareThreshold: integer("share_threshold"),
    createdAt: ts("created_at").notNull().defaultNow(),
    updatedAt: ts("updated_at").notNull().defaultNow(),
  },
  (t) => [
    index("zk_vaults_owner_idx").on(t.orgId, t.ownerId, t.id),
    foreignKey({ columns: [t.orgId, t.ownerId], foreignColumns: [memberships.orgId, memberships.userId], name: "zk_vaults_owner_fk" }).onDelete("cascade"),
  ],
);

/** A member of a shared vault: the vault key (at `key_version`) sealed to their public key. */
export const zkVaultMembers = pgTable(
  "zk_vault_members",
  {
    orgId: orgRef(),
    vaultId: text("vault_id")
      .notNull()
      .references(() => zkVaults.id, { onDelete: "cascade" }),
    userId: text("user_id").notNull(),
    keyVersion: integer("key_version").notNull(),
    sealedKey: text("sealed_key").notNull(),
    addedBy: text("added_by"),
    createdAt: ts("created_at").notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.vaultId, t.userId] }),
    index("zk_vault_members_user_idx").on(t.orgId, t.userId, t.vaultId),
    foreignKey({ columns: [t.orgId, t.userId], foreignColumns: [memberships.orgId, memberships.userId], name: "zk_vault_members_member_fk" }).onDelete(
      "cascade",
    ),
  ],
);

/** An entry: its name, ciphertext and nonce, the vault key version it is under, and its own version (If-Match). */
export const zkVaultEntries = pgTable(
  "zk_vault_entries",
  {
    orgId: orgRef(),
    vaultId: text("vault_id")
      .notNull()
      .references(() => zkVaults.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    ciphertext: text("ciphertext").notNull(),
    nonce: text("nonce").notNull(),
    keyVersion: integer("key_version").notNull(),
    version: integer("version").notNull(),
    createdBy: text("created_by"),
    createdAt: ts("created_at").notNull().defaultNow(),
    updatedBy: text("updated_by"),
    updatedAt: ts("updated_at").notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.vaultId, t.name] }), index("zk_vault_entries_org_idx").on(t.orgId, t.vaultId)],
);

/** One Shamir share of a vault key, sealed to its holder's public key. */
export const zkVaultShares = pgTable(
  "zk_vault_shares",
  {
    id: text("id").primaryKey(),
    orgId: orgRef(),
    vaultId: text("vault_id")
      .notNull()
      .references(() => zkVaults.id, { onDelete: "cascade" }),
    keyVersion: integer("key_version").notNull(),
    shareIndex: integer("share_index").notNull(),
    holderId: text("holder_id").notNull(),
    sealedShare: text("sealed_share").notNull(),
    createdAt: ts("created_at").notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex("zk_vault_shares_index_key").on(t.vaultId, t.shareIndex),
    index("zk_vault_shares_holder_idx").on(t.orgId, t.holderId, t.id),
    foreignKey({ columns: [t.orgId, t.holderId], foreignColumns: [memberships.orgId, memberships.userId], name: "zk_vault_shares_holder_fk" }).onDelete(
      "cascade",
    ),
  ],
);

/** A vault owner's request to get shares back, with the fresh public key holders seal them to. */
export const zkRecoveryRequests = pgTable(
  "zk_recovery_requests",
  {
    id: text("id").primaryKey(),
    orgId: orgRef(),
    vaultId: text("vault_id")
      .notNull()
      .references(() => zkVaults.id, { onDelete: "cascade" }),
    requesterId: text("requester_id").notNull(),
    publicKey: text("public_key").notNull(),
    /** open | completed | cancelled */
    status: text("status").notNull(),
    createdAt: ts("created_at").notNull().defaultNow(),
    closedAt: ts("closed_at"),
  },
  (t) => [
    index("zk_recovery_requests_vault_idx").on(t.orgId, t.vaultId, t.id),
    check("zk_recovery_requests_status_check", sql`${t.status} in ('open', 'completed', 'cancelled')`),
  ],
);

/** A share released by its holder for a request: re-sealed to the request's public key (the server only relays it). */
export const zkShareReleases = pgTable(
  "zk_share_releases",
  {
    orgId: orgRef(),
    requestId: text("request_id")
      .notNull()
      .references(() => zkRecoveryRequests.id, { onDelete: "cascade" }),
    shareId: text("share_id")
      .notNull()
      .references(() => zkVaultShares.id, { onDelete: "cascade" }),
    shareIndex: integer("share_index").notNull(),
    sealedShare: text("sealed_share").notNull(),
    releasedBy: text("released_by").notNull(),
    createdAt: ts("created_at").notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.requestId, t.shareId] })],
);
