import { randomBytes } from "node:crypto";
import type { Executor } from "../db/client.ts";
import type { Clock } from "../lib/clock.ts";
import { deriveKey, open, seal } from "../lib/crypto.ts";
import { gcmDecrypt, gcmEncrypt } from "./aes-gcm.ts";
import { kekStore as defaultKekStore, type KekRow, type KekStore } from "./kek-store.ts";
import { kmsError } from "./kms.errors.ts";

/** What a record keeps of an encrypted value: all of it safe to store, none of it enough without the root key. */
export interface Envelope {
  /** base64url(ciphertext | tag) of the value under its data key */
  ciphertext: string;
  /** base64url of the value's 96-bit nonce */
  nonce: string;
  /** The data key, sealed under the org's key-encryption key (lib/crypto seal format) */
  wrappedKey: string;
  /** Which of the org's key-encryption keys wrapped the data key */
  kekVersion: number;
}

/**
 * The one KMS layer: envelope encryption with three tiers. The root key (derived from the master key) wraps a
 * key-encryption key per org (versioned rows in vault_keks), which wraps a fresh data key per encrypted record.
 * AES-256-GCM throughout, with a fresh 96-bit nonce; `aad` is the record's identity and authenticates both the value
 * and its wrapped data key, so a ciphertext moved to another record (or another org) fails to decrypt.
 * Both functions run inside the caller's tenant transaction: the org's KEK row is read (and, on first use, made) there.
 */
export interface Kms {
  encrypt(tx: Executor, orgId: string, plaintext: Buffer, aad: string): Promise<Envelope>;
  decrypt(tx: Executor, orgId: string, envelope: Envelope, aad: string): Promise<Buffer>;
}

const KEK_AAD = (orgId: string, version: number) => `plinth:kms:kek:${orgId}:${version}`;
const DEK_AAD = (aad: string) => `plinth:kms:dek:${aad}`;

/** A fingerprint of the root key, so a KEK wrapped under another one is reported as that, not as tampering. */
export function rootKeyIdOf(masterKey: Buffer): string {
  return deriveKey(masterKey, "kms-root-key-id", 12).toString("base64url");
}

export function createKms(deps: { masterKey: Buffer; clock: Clock; store?: KekStore }): Kms {
  const rootKey = deriveKey(deps.masterKey, "kms-root-key");
  const rootKeyId = rootKeyIdOf(deps.masterKey);
  const store = deps.store ?? defaultKekStore;

  function unwrapKek(row: KekRow): Buffer {
    if (row.rootKeyId !== rootKeyId) {
      throw kmsError(
        "KMS_ROOT_KEY_MISMATCH",
        `The organization's key-encryption key v${row.version} was wrapped under another root key: this server runs with a different PLINTH_MASTER_KEY (or key file) than the one that wrote it.`,
      );
    }
    try {
      return open(rootKey, row.wrappedKey, KEK_AAD(row.orgId, row.version));
    } catch {
      throw kmsError("KMS_DECRYPT_FAILED", `The organization's key-encryption key v${row.version} does not authenticate: its row was altered.`);
    }
  }

  /** The org's newest KEK; an org's first encryption makes version 1. */
  async function currentKek(tx: Executor, orgId: string): Promise<KekRow> {
    const existing = await store.current(tx, orgId);
    if (existing) return existing;
    const kek = randomBytes(32);
    await store.insertIfAbsent(tx, { orgId, version: 1, wrappedKey: seal(rootKey, kek, KEK_AAD(orgId, 1)), rootKeyId, createdAt: deps.clock.now() });
    kek.fill(0);
    const made = await store.current(tx, orgId);
    if (!made) throw kmsError("KMS_KEY_MISSING", "The organization's key-encryption key could not be created.");
    return made;
  }

  return {
    async encrypt(tx, orgId, plaintext, aad) {
      const kekRow = await currentKek(tx, orgId);
      const kek = unwrapKek(kekRow);
      const dek = randomBytes(32);
      try {
        const box = gcmEncrypt(dek, plaintext, aad);
        return {
          ciphertext: box.ciphertext.toString("base64url"),
          nonce: box.nonce.toString("base64url"),
          wrappedKey: seal(kek, dek, DEK_AAD(aad)),
          kekVersion: kekRow.version,
        };
      } finally {
        dek.fill(0);
        kek.fill(0);
      }
    },

    async decrypt(tx, orgId, envelope, aad) {
      const kekRow = await store.find(tx, orgId, envelope.kekVersion);
      if (!kekRow) throw kmsError("KMS_KEY_MISSING", `The organization has no key-encryption key v${envelope.kekVersion}.`);
      const kek = unwrapKek(kekRow);
      let dek: Buffer | undefined;
      try {
        dek = open(kek, envelope.wrappedKey, DEK_AAD(aad));
        return gcmDecrypt(dek, { nonce: Buffer.from(envelope.nonce, "base64url"), ciphertext: Buffer.from(envelope.ciphertext, "base64url") }, aad);
      } catch {
        throw kmsError(
          "KMS_DECRYPT_FAILED",
          "The stored ciphertext does not authenticate under its record's identity: it was altered or moved to another record.",
        );
      } finally {
        dek?.fill(0);
        kek.fill(0);
      }
    },
  };
}
