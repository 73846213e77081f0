import { Type } from "typebox";
import { OrgIdParams, Timestamp } from "../../http/schemas.ts";
import { idPattern } from "../../lib/ids.ts";
import { Page, pageQuery } from "../../lib/pagination.ts";
import { KDF_BOUNDS, SALT_BYTES } from "../../zk/zk.kdf.ts";
import { KEY_BYTES, NONCE_BYTES, TAG_BYTES, X25519_KEY_BYTES } from "../../zk/zk.primitives.ts";
import { MAX_SHARES } from "../../zk/zk.recovery.ts";

/*
 * Everything these routes accept is what the client library (server/src/zk/) outputs: Base64 (RFC 4648 §4, with
 * padding) of an exact number of bytes, checked here so a wrong size is a 400 naming the field, never a stored blob
 * that no client can open.
 */

/** The Base64 text of exactly `bytes` bytes. */
function b64Pattern(bytes: number): string {
  const full = Math.floor(bytes / 3) * 4;
  const rest = bytes % 3;
  return `^[A-Za-z0-9+/]{${full + (rest ? rest + 1 : 0)}}${rest === 1 ? "==" : rest === 2 ? "=" : ""}$`;
}
const b64 = (bytes: number, description: string) =>
  Type.String({ pattern: b64Pattern(bytes), minLength: 4 * Math.ceil(bytes / 3), maxLength: 4 * Math.ceil(bytes / 3), description });

/** Largest entry value, in bytes of plaintext (as the secrets vault). */
export const MAX_ENTRY_BYTES = 64 * 1024;
const MAX_CIPHERTEXT_B64 = 4 * Math.ceil((MAX_ENTRY_BYTES + TAG_BYTES) / 3);

/** nonce ‖ ciphertext of a 32-byte key under XChaCha20-Poly1305. */
const WRAPPED_KEY_BYTES = NONCE_BYTES + KEY_BYTES + TAG_BYTES;
/** ephemeral public key ‖ nonce ‖ ciphertext of a 32-byte vault key sealed to a member. */
const SEALED_KEY_BYTES = X25519_KEY_BYTES + NONCE_BYTES + KEY_BYTES + TAG_BYTES;
/** ephemeral public key ‖ nonce ‖ ciphertext of a 33-byte Shamir share. */
const SEALED_SHARE_BYTES = X25519_KEY_BYTES + NONCE_BYTES + KEY_BYTES + 1 + TAG_BYTES;

const WrappedKey = (what: string) => b64(WRAPPED_KEY_BYTES, `The vault key wrapped under ${what}: Base64 of the 24-byte nonce and the 48-byte ciphertext`);
const PublicKey = b64(X25519_KEY_BYTES, "An X25519 public key (32 bytes, Base64)");
const SealedShare = (to: string) => b64(SEALED_SHARE_BYTES, `A Shamir share sealed to ${to}: ephemeral X25519 key, nonce, ciphertext (105 bytes, Base64)`);
const KeyVersion = Type.Integer({ minimum: 1, maximum: 999_999_999, description: "The vault key version" });
const VersionNumber = Type.Integer({ minimum: 1, maximum: 999_999_999, description: "The entry's current version the change is based on (or If-Match)" });

export const Kdf = Type.Object(
  {
    algorithm: Type.Literal("argon2id", { description: "Always argon2id" }),
    version: Type.Literal(19, { description: "Argon2 version 0x13" }),
    memory_kib: Type.Integer({ minimum: KDF_BOUNDS.memory_kib[0], maximum: KDF_BOUNDS.memory_kib[1], description: "Memory cost in KiB (OWASP: 19456)" }),
    iterations: Type.Integer({ minimum: KDF_BOUNDS.iterations[0], maximum: KDF_BOUNDS.iterations[1], description: "Time cost (OWASP: 2)" }),
    parallelism: Type.Integer({ minimum: KDF_BOUNDS.parallelism[0], maximum: KDF_BOUNDS.parallelism[1], description: "Lanes (OWASP: 1)" }),
    salt: b64(SALT_BYTES, "16 random bytes, Base64"),
  },
  { additionalProperties: false, description: "Argon2id parameters of a passphrase-derived key, chosen by the client" },
);

const EntryName = Type.String({
  minLength: 1,
  maxLength: 128,
  pattern: "^[A-Za-z_][A-Za-z0-9_]*$",
  description: "Environment-variable friendly (letters, digits, _; not starting with a digit), unique in the vault; bound into the ciphertext",
});
const Nonce = b64(NONCE_BYTES, "The entry's 24-byte XChaCha20-Poly1305 nonce, Base64");
const Ciphertext = Type.String({
  minLength: 4 * Math.ceil(TAG_BYTES / 3),
  maxLength: MAX_CIPHERTEXT_B64,
  pattern: "^[A-Za-z0-9+/]*={0,2}$",
  description: "XChaCha20-Poly1305 ciphertext and tag of the value (at most 64 KiB of plaintext), Base64",
});

export const ZK_VAULT_ID_PATTERN = idPattern("zkVault");
export const VaultId = Type.String({ pattern: ZK_VAULT_ID_PATTERN, description: "zkv_… id" });
export const VaultParams = Type.Object({ orgId: OrgIdParams.properties.orgId, vaultId: VaultId }, { additionalProperties: false });
export const EntryParams = Type.Object({ ...VaultParams.properties, entryName: EntryName }, { additionalProperties: false });
export const ShareParams = Type.Object(
  { ...VaultParams.properties, shareId: Type.String({ pattern: idPattern("zkShare"), description: "zks_… id" }) },
  { additionalProperties: false },
);
export const RecoveryRequestParams = Type.Object(
  { ...VaultParams.properties, recoveryRequestId: Type.String({ pattern: idPattern("zkRecoveryRequest"), description: "zkr_… id" }) },
  { additionalProperties: false },
);
export const KeyUserParams = Type.Object(
  { orgId: OrgIdParams.properties.orgId, userId: Type.String({ pattern: idPattern("user"), description: "usr_… id of a member" }) },
  { additionalProperties: false },
);
/** Optimistic concurrency on entries, as on the secrets vault's secrets. */
export { IfMatchHeaders } from "../vault/vault.schemas.ts";
export const ListQuery = Type.Object(pageQuery, { additionalProperties: false });

// ---- user keys ----

export const PutUserKeyBody = Type.Object(
  {
    public_key: PublicKey,
    encrypted_private_key: b64(WRAPPED_KEY_BYTES, "Your X25519 private key sealed under your passphrase's Argon2id key: nonce ‖ ciphertext, Base64"),
    kdf: Kdf,
  },
  { additionalProperties: false },
);
export const UserKey = Type.Object(
  {
    user_id: Type.String({ description: "The member" }),
    public_key: PublicKey,
    encrypted_private_key: Type.String({ description: "The private key sealed under the member's passphrase (only the member's own record)" }),
    kdf: Kdf,
    updated_at: Timestamp("When it was last set"),
  },
  { description: "Your zero-knowledge key pair as stored: the private part only as ciphertext" },
);
export const MyUserKey = Type.Object(
  { user_id: Type.String({ description: "You" }), key: Type.Union([UserKey, Type.Null()], { description: "Your key; null until you PUT one" }) },
  { description: "Your zero-knowledge key, if you have one" },
);
export const PublicUserKey = Type.Object(
  { user_id: Type.String({ description: "The member" }), public_key: PublicKey, updated_at: Timestamp("When it was last set") },
  { description: "A member's public key: seal shares and vault keys to it" },
);

// ---- vaults ----

export const CreateVaultBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 100, description: "A label for the vault (yours to choose)" }),
    key_version: Type.Optional(Type.Literal(1, { description: "A new vault's key is at version 1" })),
    kdf: Kdf,
    passphrase_wrapped_key: WrappedKey("the passphrase's Argon2id key"),
    recovery_phrase_wrapped_key: WrappedKey("the BIP39 recovery phrase's key"),
    hardware_wrapped_key: WrappedKey("the hardware backup key's key"),
    key_check: b64(32, "HMAC-SHA256 of the key version under the vault key: lets a client tell the right key from a wrong one"),
  },
  { additionalProperties: false, description: "What the client made: wrapped copies of the vault key and parameters; never the key" },
);
export const SetPassphraseBody = Type.Object(
  {
    kdf: Kdf,
    passphrase_wrapped_key: WrappedKey("the new passphrase's Argon2id key"),
    recovered_with: Type.Optional(
      Type.Union([Type.Literal("recovery_phrase"), Type.Literal("hardware_key"), Type.Literal("shares")], {
        description: "How the key was recovered, for the audit log (a passphrase change says nothing)",
      }),
    ),
  },
  { additionalProperties: false },
);
const ShareSummary = Type.Object({
  id: Type.String({ description: "zks_… id" }),
  holder_id: Type.String({ description: "The member who holds it" }),
  index: Type.Integer({ description: "Its position, 1…n" }),
});
export const VaultSummary = Type.Object(
  {
    id: Type.String({ description: "zkv_… id" }),
    name: Type.String({ description: "Its label" }),
    owner_id: Type.String({ description: "The member who owns it" }),
    role: Type.Union([Type.Literal("owner"), Type.Literal("member")], { description: "Yours: its owner, or a member it is shared with" }),
    key_version: KeyVersion,
    created_at: Timestamp("When it was created"),
    updated_at: Timestamp("When its keys last changed"),
  },
  { description: "A zero-knowledge vault" },
);
export const Vault = Type.Object(
  {
    ...VaultSummary.properties,
    kdf: Type.Union([Kdf, Type.Null()], { description: "The passphrase's Argon2id parameters (null for a member)" }),
    passphrase_wrapped_key: Type.Union([Type.String(), Type.Null()], { description: "The vault key under the passphrase's key (null for a member)" }),
    recovery_phrase_wrapped_key: Type.Union([Type.String(), Type.Null()], { description: "The vault key under the recovery phrase's key (null for a member)" }),
    hardware_wrapped_key: Type.Union([Type.String(), Type.Null()], { description: "The vault key under the hardware backup key's key (null for a member)" }),
    key_check: Type.String({ description: "HMAC of the key version under the vault key" }),
    member_sealed_key: Type.Union([Type.String(), Type.Null()], {
      description: "A member's copy of the vault key, sealed to their public key (null for the owner)",
    }),
    share_threshold: Type.Union([Type.Integer(), Type.Null()], { description: "Shares needed for social recovery; null without shares" }),
    shares: Type.Array(ShareSummary, { description: "Who holds a share (not the shares; the owner's view)" }),
    members: Type.Array(Type.Object({ user_id: Type.String({ description: "The member" }), key_version: KeyVersion, added_at: Timestamp("When") }), {
      description: "Who the vault is shared with (the owner's view)",
    }),
  },
  { description: "A vault with what its owner's client needs to unlock or recover it: wrapped keys and parameters only" },
);
export const VaultPage = Page(VaultSummary);

// ---- entries ----

export const CreateEntryBody = Type.Object({ name: EntryName, nonce: Nonce, ciphertext: Ciphertext, key_version: KeyVersion }, { additionalProperties: false });
export const UpdateEntryBody = Type.Object(
  { nonce: Nonce, ciphertext: Ciphertext, key_version: KeyVersion, version: Type.Optional(VersionNumber) },
  { additionalProperties: false },
);
export const Entry = Type.Object(
  {
    name: Type.String({ description: "Its name" }),
    nonce: Type.String({ description: "Its nonce, Base64" }),
    ciphertext: Type.String({ description: "Its ciphertext, Base64" }),
    key_version: KeyVersion,
    version: Type.Integer({ description: "Its version (also the ETag)" }),
    updated_by: Type.Union([Type.String(), Type.Null()], { description: "Who changed it last" }),
    updated_at: Timestamp("When it last changed"),
  },
  { description: "An entry as stored: ciphertext only" },
);
export const EntryPage = Page(Entry);

// ---- shares and recovery ----

export const SetSharesBody = Type.Object(
  {
    threshold: Type.Integer({ minimum: 2, maximum: MAX_SHARES, description: "Shares needed to recover (3 for 3-of-5)" }),
    key_version: KeyVersion,
    shares: Type.Array(
      Type.Object(
        {
          holder_user_id: Type.String({ pattern: idPattern("user"), description: "usr_… id of the member who holds it (not you)" }),
          index: Type.Integer({ minimum: 1, maximum: MAX_SHARES, description: "Its position, 1…n, as the client split them" }),
          sealed_share: SealedShare("the holder's public key"),
        },
        { additionalProperties: false },
      ),
      { minItems: 2, maxItems: MAX_SHARES, description: "One share per holder" },
    ),
  },
  { additionalProperties: false, description: "Replaces the vault's shares (all of them: a new split makes the old ones useless)" },
);
export const OpenRecoveryBody = Type.Object(
  { public_key: b64(X25519_KEY_BYTES, "The fresh X25519 public key holders seal your shares to (your new key's)") },
  { additionalProperties: false },
);
export const ReleaseShareBody = Type.Object(
  {
    request_id: Type.String({ pattern: idPattern("zkRecoveryRequest"), description: "zkr_… id of the open recovery request" }),
    sealed_share: SealedShare("the request's public key"),
  },
  { additionalProperties: false },
);
const Release = Type.Object({
  share_id: Type.String({ description: "zks_… id" }),
  index: Type.Integer({ description: "The share's position" }),
  sealed_share: Type.String({ description: "The share sealed to the request's public key" }),
  released_by: Type.String({ description: "The holder who released it" }),
  released_at: Timestamp("When"),
});
export const RecoveryRequest = Type.Object(
  {
    id: Type.String({ description: "zkr_… id" }),
    vault_id: Type.String({ description: "The vault" }),
    requester_id: Type.String({ description: "Its owner, who asked" }),
    public_key: Type.String({ description: "The key holders seal shares to" }),
    status: Type.Union([Type.Literal("open"), Type.Literal("completed"), Type.Literal("cancelled")], { description: "open until a new passphrase is set" }),
    threshold: Type.Union([Type.Integer(), Type.Null()], { description: "Shares needed" }),
    releases: Type.Array(Release, { description: "The shares released so far" }),
    created_at: Timestamp("When it was opened"),
  },
  { description: "A request to get a vault's shares back" },
);
export const ShareRelease = Type.Object(
  { request_id: Type.String({ description: "The request" }), share_id: Type.String({ description: "The share" }), released_at: Timestamp("When") },
  { description: "A release: the share, re-sealed to the requester, is relayed" },
);
export const HeldShare = Type.Object(
  {
    id: Type.String({ description: "zks_… id" }),
    vault_id: Type.String({ description: "The vault it is a share of" }),
    owner_id: Type.String({ description: "The vault's owner" }),
    key_version: KeyVersion,
    index: Type.Integer({ description: "Its position" }),
    sealed_share: Type.String({ description: "The share sealed to your public key" }),
    open_requests: Type.Array(
      Type.Object({
        id: Type.String({ description: "zkr_… id" }),
        public_key: Type.String({ description: "Seal the share to this key" }),
        created_at: Timestamp("When the owner asked"),
        released: Type.Boolean({ description: "Whether you released this share for it already" }),
      }),
      { description: "The owner's open recovery requests: confirm with the owner out of band before releasing" },
    ),
  },
  { description: "A share you hold for someone else's vault" },
);
export const HeldSharePage = Page(HeldShare);

// ---- shared vaults ----

export const MemberParams = Type.Object({ ...VaultParams.properties, userId: KeyUserParams.properties.userId }, { additionalProperties: false });
const SealedKey = b64(SEALED_KEY_BYTES, "The vault key sealed to the member's public key: ephemeral X25519 key, nonce, ciphertext (104 bytes, Base64)");
export const PutMemberBody = Type.Object({ key_version: KeyVersion, sealed_key: SealedKey }, { additionalProperties: false });
export const VaultMember = Type.Object(
  { user_id: Type.String({ description: "The member" }), key_version: KeyVersion, added_at: Timestamp("When") },
  { description: "A member of a shared vault" },
);
export const RotateBody = Type.Object(
  {
    key_version: Type.Integer({ minimum: 2, maximum: 999_999_999, description: "The next key version (the current one + 1)" }),
    kdf: Kdf,
    passphrase_wrapped_key: WrappedKey("the passphrase's Argon2id key"),
    recovery_phrase_wrapped_key: WrappedKey("the NEW recovery phrase's key"),
    hardware_wrapped_key: WrappedKey("the NEW hardware backup key's key"),
    key_check: b64(32, "HMAC-SHA256 of the new key version under the new vault key"),
    entries: Type.Array(Type.Object({ name: EntryName, nonce: Nonce, ciphertext: Ciphertext }, { additionalProperties: false }), {
      maxItems: 10_000,
      description: "Every entry of the vault, re-encrypted under the new key and version",
    }),
    members: Type.Array(
      Type.Object({ user_id: Type.String({ pattern: idPattern("user"), description: "usr_… id" }), sealed_key: SealedKey }, { additionalProperties: false }),
      {
        maxItems: 200,
        description: "The members who keep access, each with the new key sealed to them; anyone not listed is removed",
      },
    ),
    shares: Type.Optional(
      Type.Object(
        { threshold: SetSharesBody.properties.threshold, shares: SetSharesBody.properties.shares },
        { additionalProperties: false, description: "New social-recovery shares of the new key (the old ones go in any case)" },
      ),
    ),
  },
  { additionalProperties: false, description: "A rotation, as the owner's client made it" },
);
