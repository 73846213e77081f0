import { createSecretKey, type KeyObject, randomBytes } from "node:crypto";
import type { Executor } from "../db/client.ts";
import { createCache } from "../lib/cache.ts";
import type { Clock } from "../lib/clock.ts";
import { deriveKey, open, seal } from "../lib/crypto.ts";
import { gcmDecrypt, gcmEncrypt } from "./aes-gcm.ts";
import { kekStore as defaultKekStore, type KekRow, type KekStore, PLATFORM_OWNER, platformKekStore } from "./kek-store.ts";
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
 * The one KMS layer: envelope encryption with three tiers. The root key (derived from the master key) wraps
 * key-encryption keys (versioned rows: per org in vault_keks, and the platform's in kms_platform_keks for records of
 * no org, such as the token-signing keys), which wrap a fresh data key per encrypted record.
 * AES-256-GCM throughout, with a fresh 96-bit nonce; `aad` is the record's identity and authenticates both the value
 * and its wrapped data key, so a ciphertext moved to another record (or another org) fails to decrypt.
 * The org functions run inside the caller's tenant transaction, the platform ones in a platform transaction: the KEK
 * row is read (and, on first use, made) there.
 */
export interface Kms {
  encrypt(tx: Executor, orgId: string, plaintext: Buffer, aad: string): Promise<Envelope>;
  decrypt(tx: Executor, orgId: string, envelope: Envelope, aad: string): Promise<Buffer>;
  /** Makes the org's next KEK version, the one new data keys are wrapped under from now on; returns its version. */
  rotateKek(tx: Executor, orgId: string): Promise<number>;
  /**
   * Each envelope's data key re-wrapped under the org's newest KEK (the ciphertext and nonce are unchanged), or
   * undefined for one on that version already; in the order given. The org's KEK rows are read once for the batch
   * and each KEK opened once, so a batch of a rotation costs one query and two AES-GCM operations a data key.
   */
  rewrapDeks(
    tx: Executor,
    orgId: string,
    items: readonly { envelope: Pick<Envelope, "wrappedKey" | "kekVersion">; aad: string }[],
  ): Promise<(Pick<Envelope, "wrappedKey" | "kekVersion"> | undefined)[]>;
  /** Re-wraps every KEK of the org not under the current root key; returns how many it re-wrapped. */
  rewrapKeksUnderRoot(tx: Executor, orgId: string): Promise<number>;
  /** Opens one KEK row (a boot canary); throws KMS_ROOT_KEY_MISMATCH or KMS_DECRYPT_FAILED. */
  checkKek(row: KekRow): void;
  /** encrypt, for a record that belongs to no org: under the platform KEK. */
  encryptPlatform(tx: Executor, plaintext: Buffer, aad: string): Promise<Envelope>;
  decryptPlatform(tx: Executor, envelope: Envelope, aad: string): Promise<Buffer>;
  /** Re-wraps every platform KEK not under the current root key; returns how many it re-wrapped. */
  rewrapPlatformKeksUnderRoot(tx: Executor): Promise<number>;
  /** checkKek, of a platform KEK row. */
  checkPlatformKek(row: Omit<KekRow, "orgId">): void;
  /** Fingerprints of the configured root keys: the current one first. */
  readonly rootKeyIds: readonly string[];
}

/** `owner`: the org id, or PLATFORM_OWNER (no org id is "platform"), so a KEK row never opens in another tier. */
const KEK_AAD = (owner: string, version: number) => `plinth:kms:kek:${owner}:${version}`;
const DEK_AAD = (aad: string) => `plinth:kms:dek:${aad}`;

/** A fingerprint of the root key, so a KEK wrapped under another one is reported as that, not as tampering. */
export function rootKeyIdOf(masterKey: Buffer): string {
  return deriveKey(masterKey, "kms-root-key-id", 12).toString("base64url");
}

/**
 * `masterKey` wraps new KEKs; `previousMasterKeys` (PLINTH_MASTER_KEY_PREVIOUS) still open KEKs whose root_key_id
 * names them, so a root key rotation (`plinth vault rotate-root`) can run while the servers keep serving.
 */
export function createKms(deps: { masterKey: Buffer; previousMasterKeys?: readonly Buffer[]; clock: Clock; store?: KekStore; platformStore?: KekStore }): Kms {
  const rootKey = deriveKey(deps.masterKey, "kms-root-key");
  const rootKeyId = rootKeyIdOf(deps.masterKey);
  const roots = new Map<string, Buffer>([[rootKeyId, rootKey]]);
  for (const k of deps.previousMasterKeys ?? []) if (!roots.has(rootKeyIdOf(k))) roots.set(rootKeyIdOf(k), deriveKey(k, "kms-root-key"));
  const org = createTier({ name: "kms", whose: "The organization's", has: "The organization has", store: deps.store ?? defaultKekStore });
  const platform = createTier({ name: "kms.platform", whose: "The platform's", has: "The platform has", store: deps.platformStore ?? platformKekStore });

  /**
   * One tier's key-encryption keys and the envelopes under them: the org tier and the platform tier are this same
   * code over their own table (`store`); `owner` is the org, or PLATFORM_OWNER.
   */
  function createTier(tier: { name: string; whose: string; has: string; store: KekStore }) {
    const { store } = tier;
    /**
     * An owner's KEK rows by version, as stored (wrapped: the root key opens one per use). A version's row never
     * changes what it wraps, and is deleted only once no data key refers to it, so a cached row is never wrong; it
     * saves a read per decryption (a resolve of fifty secrets decrypts fifty). Read in the caller's transaction on a miss.
     */
    const kekRows = createCache<KekRow, Executor>({
      name: `${tier.name}.kek-rows`,
      max: 10_000,
      ttlMs: 600_000,
      clock: deps.clock,
      fetch: async (key, tx) => {
        const [owner, version] = key.split("\u0000");
        const row = await store.find(tx, owner, Number(version));
        if (!row) throw kmsError("KMS_KEY_MISSING", `${tier.has} no key-encryption key v${version}.`);
        return row;
      },
    });

    function unwrapKek(row: KekRow): Buffer {
      const root = roots.get(row.rootKeyId);
      if (!root) {
        throw kmsError(
          "KMS_ROOT_KEY_MISMATCH",
          `${tier.whose} key-encryption key v${row.version} was wrapped under another root key: this server runs with a different PLINTH_MASTER_KEY (or key file, or PLINTH_MASTER_KEY_PREVIOUS) than the one that wrote it.`,
        );
      }
      try {
        return open(root, row.wrappedKey, KEK_AAD(row.orgId, row.version));
      } catch {
        throw kmsError("KMS_DECRYPT_FAILED", `${tier.whose} key-encryption key v${row.version} does not authenticate: its row was altered.`);
      }
    }

    /**
     * KEKs opened for decryption, as key objects, by their stored row (owner, version, root key and wrapping): a
     * reveal, a resolve or a lease of fifty opens each data key under a KEK opened once. They stay in process memory
     * (as the master key does) for at most 10 minutes; a re-wrapped row is another key here, so it is opened again.
     */
    const openedKeks = createCache<KeyObject>({ name: `${tier.name}.opened-keks`, max: 10_000, ttlMs: 600_000, clock: deps.clock });
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

    /** The owner's newest KEK; its first encryption makes version 1. */
    async function currentKek(tx: Executor, owner: string): Promise<KekRow> {
      const existing = await store.current(tx, owner);
      if (existing) return existing;
      const kek = randomBytes(32);
      await store.insertIfAbsent(tx, { orgId: owner, version: 1, wrappedKey: seal(rootKey, kek, KEK_AAD(owner, 1)), rootKeyId, createdAt: deps.clock.now() });
      kek.fill(0);
      const made = await store.current(tx, owner);
      if (!made) throw kmsError("KMS_KEY_MISSING", `${tier.whose} key-encryption key could not be created.`);
      return made;
    }

    return {
      checkKek(row: KekRow): void {
        unwrapKek(row).fill(0);
      },

      async rotateKek(tx: Executor, owner: string): Promise<number> {
        const current = await currentKek(tx, owner);
        const version = current.version + 1;
        const kek = randomBytes(32);
        await store.insertIfAbsent(tx, {
          orgId: owner,
          version,
          wrappedKey: seal(rootKey, kek, KEK_AAD(owner, version)),
          rootKeyId,
          createdAt: deps.clock.now(),
        });
        kek.fill(0);
        return version;
      },

      async rewrapDeks(tx: Executor, owner: string, items: readonly { envelope: Pick<Envelope, "wrappedKey" | "kekVersion">; aad: string }[]) {
        if (!items.length) return [];
        // read afresh (not the row cache): the newest version is what a rotation moves to, and a row altered in the
        // database must fail here rather than pass from memory
        const rows = new Map((await store.all(tx, owner)).map((r) => [r.version, r]));
        const target = Math.max(...rows.keys());
        const targetKek = rows.has(target) ? openedKek(rows.get(target) as KekRow) : undefined;
        if (!targetKek) throw kmsError("KMS_KEY_MISSING", `${tier.has} no key-encryption key yet.`);
        return items.map(({ envelope, aad }) => {
          if (envelope.kekVersion === target) return undefined;
          const row = rows.get(envelope.kekVersion);
          if (!row) throw kmsError("KMS_KEY_MISSING", `${tier.has} no key-encryption key v${envelope.kekVersion}.`);
          const sourceKek = openedKek(row);
          let dek: Buffer;
          try {
            dek = open(sourceKek, envelope.wrappedKey, DEK_AAD(aad));
          } catch {
            throw kmsError(
              "KMS_DECRYPT_FAILED",
              `The data key does not authenticate under key-encryption key v${envelope.kekVersion} and its record's identity: the key or the record was altered or moved.`,
            );
          }
          try {
            return { wrappedKey: seal(targetKek, dek, DEK_AAD(aad)), kekVersion: target };
          } finally {
            dek.fill(0);
          }
        });
      },

      async rewrapKeksUnderRoot(tx: Executor, owner: string): Promise<number> {
        let n = 0;
        for (const row of await store.all(tx, owner)) {
          if (row.rootKeyId === rootKeyId) continue;
          const kek = unwrapKek(row);
          try {
            await store.rewrap(tx, owner, row.version, seal(rootKey, kek, KEK_AAD(owner, row.version)), rootKeyId);
          } finally {
            kek.fill(0);
          }
          n++;
        }
        return n;
      },

      async encrypt(tx: Executor, owner: string, plaintext: Buffer, aad: string): Promise<Envelope> {
        const kekRow = await currentKek(tx, owner);
        const kek = openedKek(kekRow);
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
        }
      },

      async decrypt(tx: Executor, owner: string, envelope: Envelope, aad: string): Promise<Buffer> {
        const kekRow = kekRows.get(`${owner}\u0000${envelope.kekVersion}`) ?? (await kekRows.fetch(`${owner}\u0000${envelope.kekVersion}`, tx));
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

  return {
    rootKeyIds: [...roots.keys()],
    checkKek: (row) => org.checkKek(row),
    rotateKek: (tx, orgId) => org.rotateKek(tx, orgId),
    rewrapDeks: (tx, orgId, items) => org.rewrapDeks(tx, orgId, items),
    rewrapKeksUnderRoot: (tx, orgId) => org.rewrapKeksUnderRoot(tx, orgId),
    encrypt: (tx, orgId, plaintext, aad) => org.encrypt(tx, orgId, plaintext, aad),
    decrypt: (tx, orgId, envelope, aad) => org.decrypt(tx, orgId, envelope, aad),
    encryptPlatform: (tx, plaintext, aad) => platform.encrypt(tx, PLATFORM_OWNER, plaintext, aad),
    decryptPlatform: (tx, envelope, aad) => platform.decrypt(tx, PLATFORM_OWNER, envelope, aad),
    rewrapPlatformKeksUnderRoot: (tx) => platform.rewrapKeksUnderRoot(tx, PLATFORM_OWNER),
    checkPlatformKek: (row) => platform.checkKek({ ...row, orgId: PLATFORM_OWNER }),
  };
}
