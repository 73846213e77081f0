import { createSecretKey, type KeyObject, randomBytes } from "node:crypto";
import type { Executor } from "../db/client.ts";
import { createCache } from "../lib/cache.ts";
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
  /** Makes the org's next KEK version, the one new data keys are wrapped under from now on; returns its version. */
  rotateKek(tx: Executor, orgId: string): Promise<number>;
  /**
   * The envelope's data key re-wrapped under the org's newest KEK (the ciphertext and nonce are unchanged), or
   * undefined when it is on that version already.
   */
  rewrapDek(tx: Executor, orgId: string, envelope: Envelope, aad: string): Promise<Pick<Envelope, "wrappedKey" | "kekVersion"> | undefined>;
  /** Re-wraps every KEK of the org not under the current root key; returns how many it re-wrapped. */
  rewrapKeksUnderRoot(tx: Executor, orgId: string): Promise<number>;
  /** Opens one KEK row (a boot canary); throws KMS_ROOT_KEY_MISMATCH or KMS_DECRYPT_FAILED. */
  checkKek(row: KekRow): void;
  /** Fingerprints of the configured root keys: the current one first. */
  readonly rootKeyIds: readonly string[];
}

const KEK_AAD = (orgId: string, version: number) => `plinth:kms:kek:${orgId}:${version}`;
const DEK_AAD = (aad: string) => `plinth:kms:dek:${aad}`;

/** A fingerprint of the root key, so a KEK wrapped under another one is reported as that, not as tampering. */
export function rootKeyIdOf(masterKey: Buffer): string {
  return deriveKey(masterKey, "kms-root-key-id", 12).toString("base64url");
}

/**
 * `masterKey` wraps new KEKs; `previousMasterKeys` (PLINTH_MASTER_KEY_PREVIOUS) still open KEKs whose root_key_id
 * names them, so a root key rotation (`plinth vault rotate-root`) can run while the servers keep serving.
 */
export function createKms(deps: { masterKey: Buffer; previousMasterKeys?: readonly Buffer[]; clock: Clock; store?: KekStore }): Kms {
  const rootKey = deriveKey(deps.masterKey, "kms-root-key");
  const rootKeyId = rootKeyIdOf(deps.masterKey);
  const roots = new Map<string, Buffer>([[rootKeyId, rootKey]]);
  for (const k of deps.previousMasterKeys ?? []) if (!roots.has(rootKeyIdOf(k))) roots.set(rootKeyIdOf(k), deriveKey(k, "kms-root-key"));
  const store = deps.store ?? defaultKekStore;
  /**
   * An org's KEK rows by version, as stored (wrapped: the root key opens one per use). A version's row never changes
   * what it wraps, and is deleted only once no data key refers to it, so a cached row is never wrong; it saves a read
   * per decryption (a resolve of fifty secrets decrypts fifty). Read in the caller's transaction on a miss.
   */
  const kekRows = createCache<KekRow, Executor>({
    name: "kms.kek-rows",
    max: 10_000,
    ttlMs: 600_000,
    clock: deps.clock,
    fetch: async (key, tx) => {
      const [orgId, version] = key.split("\u0000");
      const row = await store.find(tx, orgId, Number(version));
      if (!row) throw kmsError("KMS_KEY_MISSING", `The organization has no key-encryption key v${version}.`);
      return row;
    },
  });

  function unwrapKek(row: KekRow): Buffer {
    const root = roots.get(row.rootKeyId);
    if (!root) {
      throw kmsError(
        "KMS_ROOT_KEY_MISMATCH",
        `The organization's key-encryption key v${row.version} was wrapped under another root key: this server runs with a different PLINTH_MASTER_KEY (or key file, or PLINTH_MASTER_KEY_PREVIOUS) than the one that wrote it.`,
      );
    }
    try {
      return open(root, row.wrappedKey, KEK_AAD(row.orgId, row.version));
    } catch {
      throw kmsError("KMS_DECRYPT_FAILED", `The organization's key-encryption key v${row.version} does not authenticate: its row was altered.`);
    }
  }

  /**
   * KEKs opened for decryption, as key objects, by their stored row (org, version, root key and wrapping): a reveal,
   * a resolve or a lease of fifty opens each data key under a KEK opened once. They stay in process memory (as the
   * master key does) for at most 10 minutes; a re-wrapped row is another key here, so it is opened again.
   */
  const openedKeks = createCache<KeyObject>({ name: "kms.opened-keks", max: 10_000, ttlMs: 600_000, clock: deps.clock });
  function openedKek(row: KekRow): KeyObject {
    const key = `${row.orgId}\u0000${row.version}\u0000${row.rootKeyId}\u0000${row.wrappedKey}`;
    let kek = openedKeks.get(key);
    if (!kek) {
      const raw = unwrapKek(row);
      kek = createSecretKey(raw);
      raw.fill(0);
      openedKeks.set(key, kek);
    }
    return kek;
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

  /** The data key of an envelope, opened under its KEK version. */
  async function openDek(tx: Executor, orgId: string, envelope: Envelope, aad: string): Promise<Buffer> {
    const kekRow = await store.find(tx, orgId, envelope.kekVersion);
    if (!kekRow) throw kmsError("KMS_KEY_MISSING", `The organization has no key-encryption key v${envelope.kekVersion}.`);
    const kek = unwrapKek(kekRow);
    try {
      return open(kek, envelope.wrappedKey, DEK_AAD(aad));
    } catch {
      throw kmsError(
        "KMS_DECRYPT_FAILED",
        `The data key does not authenticate under key-encryption key v${envelope.kekVersion} and its record's identity: the key or the record was altered or moved.`,
      );
    } finally {
      kek.fill(0);
    }
  }

  return {
    rootKeyIds: [...roots.keys()],

    checkKek(row) {
      unwrapKek(row).fill(0);
    },

    async rotateKek(tx, orgId) {
      const current = await currentKek(tx, orgId);
      const version = current.version + 1;
      const kek = randomBytes(32);
      await store.insertIfAbsent(tx, { orgId, version, wrappedKey: seal(rootKey, kek, KEK_AAD(orgId, version)), rootKeyId, createdAt: deps.clock.now() });
      kek.fill(0);
      return version;
    },

    async rewrapDek(tx, orgId, envelope, aad) {
      const target = await currentKek(tx, orgId);
      if (envelope.kekVersion === target.version) return undefined;
      const dek = await openDek(tx, orgId, envelope, aad);
      const kek = unwrapKek(target);
      try {
        return { wrappedKey: seal(kek, dek, DEK_AAD(aad)), kekVersion: target.version };
      } finally {
        dek.fill(0);
        kek.fill(0);
      }
    },

    async rewrapKeksUnderRoot(tx, orgId) {
      let n = 0;
      for (const row of await store.all(tx, orgId)) {
        if (row.rootKeyId === rootKeyId) continue;
        const kek = unwrapKek(row);
        try {
          await store.rewrap(tx, orgId, row.version, seal(rootKey, kek, KEK_AAD(orgId, row.version)), rootKeyId);
        } finally {
          kek.fill(0);
        }
        n++;
      }
      return n;
    },

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
      const kekRow = kekRows.get(`${orgId}\u0000${envelope.kekVersion}`) ?? (await kekRows.fetch(`${orgId}\u0000${envelope.kekVersion}`, tx));
      const kek = openedKek(kekRow);
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
      }
    },
  };
}
