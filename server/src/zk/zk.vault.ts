import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToUtf8, equalBytes } from "@noble/ciphers/utils.js";
import { randomBytes, utf8ToBytes } from "@noble/hashes/utils.js";
import { ZkError } from "./zk.errors.ts";
import { type KdfParams, newKdfParams, passphraseKey } from "./zk.kdf.ts";
import { aad, fromB64, KEY_BYTES, open, packSealed, seal, toB64, unpackSealed } from "./zk.primitives.ts";

/**
 * The parts of a stored vault the client reads to unlock it (the server's record, as it sends it). The wraps are made
 * before the server assigns the vault's id, so they are bound to the key check (a fingerprint of this vault key)
 * instead: another vault's wrap opens to another key, which the key check refuses.
 */
export interface VaultHeader {
  key_version: number;
  kdf: KdfParams;
  /** The vault key under the passphrase's key: nonce ‖ ciphertext, Base64. */
  passphrase_wrapped_key: string;
  /** HMAC-SHA256 of the key version under the vault key: tells this vault's key from any other. */
  key_check: string;
}

/** What a wrap is for: its associated data, so one wrap cannot stand in for another. */
export type WrapKind = "passphrase" | "recovery-phrase" | "hardware-key";

export const newVaultKey = (): Uint8Array => randomBytes(KEY_BYTES);

export function keyCheck(vaultKey: Uint8Array, keyVersion: number): string {
  return toB64(hmac(sha256, vaultKey, aad("key-check", keyVersion)));
}

/** Whether `candidate` is the vault's key (constant time). */
export function isVaultKey(candidate: Uint8Array, v: Pick<VaultHeader, "key_version" | "key_check">): boolean {
  return candidate.length === KEY_BYTES && equalBytes(fromB64(keyCheck(candidate, v.key_version), "key_check"), fromB64(v.key_check, "key_check"));
}

export function wrapVaultKey(wrappingKey: Uint8Array, vaultKey: Uint8Array, keyVersion: number, kind: WrapKind): string {
  return packSealed(seal(wrappingKey, vaultKey, aad("wrap", keyVersion, kind)));
}

export function unwrapVaultKey(
  wrappingKey: Uint8Array,
  wrapped: string,
  v: Pick<VaultHeader, "key_version" | "key_check">,
  kind: WrapKind,
  failure: () => ZkError,
): Uint8Array {
  const key = open(wrappingKey, unpackSealed(wrapped, `${kind} wrapped key`), aad("wrap", v.key_version, kind), failure);
  if (!isVaultKey(key, v)) throw failure();
  return key;
}

/** A new passphrase for a vault key (at creation, and after a recovery): fresh salt, fresh wrap. */
export async function wrapWithPassphrase(vaultKey: Uint8Array, keyVersion: number, passphrase: string) {
  const kdf = newKdfParams();
  const wrapped = wrapVaultKey(await passphraseKey(passphrase, kdf), vaultKey, keyVersion, "passphrase");
  return { kdf, passphrase_wrapped_key: wrapped };
}

export async function unlockWithPassphrase(v: VaultHeader, passphrase: string): Promise<Uint8Array> {
  const kek = await passphraseKey(passphrase, v.kdf);
  return unwrapVaultKey(kek, v.passphrase_wrapped_key, v, "passphrase", () => new ZkError("ZK_WRONG_PASSPHRASE", "Wrong passphrase for this vault."));
}

/** Where an entry's ciphertext belongs: moved to another vault, name or key version, it no longer decrypts. */
export interface EntryPlace {
  vaultId: string;
  name: string;
  keyVersion: number;
}

export interface EncryptedEntry {
  nonce: string;
  ciphertext: string;
}

export function encryptEntry(vaultKey: Uint8Array, place: EntryPlace, value: string): EncryptedEntry {
  const s = seal(vaultKey, utf8ToBytes(value), aad("entry", place.vaultId, place.name, place.keyVersion));
  return { nonce: toB64(s.nonce), ciphertext: toB64(s.ciphertext) };
}

export function decryptEntry(vaultKey: Uint8Array, place: EntryPlace, entry: EncryptedEntry): string {
  const failure = () =>
    new ZkError("ZK_DECRYPT_FAILED", `Entry ${place.name} does not decrypt: it was changed, moved from another vault or name, or the key is not this vault's.`);
  const sealed = { nonce: fromB64(entry.nonce, "nonce"), ciphertext: fromB64(entry.ciphertext, "ciphertext") };
  return bytesToUtf8(open(vaultKey, sealed, aad("entry", place.vaultId, place.name, place.keyVersion), failure));
}
