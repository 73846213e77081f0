import { generateMnemonic, mnemonicToEntropy } from "@scure/bip39";
import { wordlist } from "@scure/bip39/wordlists/english.js";
import { randomBytes } from "@noble/hashes/utils.js";
import { base32nopad } from "@scure/base";
import { combine, split } from "shamir-secret-sharing";
import { ZkError } from "./zk.errors.ts";
import { aad, deriveKey, fromB64, type KeyPair, KEY_BYTES, openSealedBox, sealTo, toB64 } from "./zk.primitives.ts";
import { isVaultKey, unwrapVaultKey, type VaultHeader, wrapVaultKey } from "./zk.vault.ts";

/**
 * The three ways back into a vault whose passphrase is lost, each set up at creation: a BIP39 phrase, a hardware
 * backup key, and Shamir shares held by chosen members. Each recovers the vault key, which the client then wraps
 * under a new passphrase; none is ever sent to the server.
 */

export const RECOVERY_WORDS = 12;

/** 128 bits of entropy as 12 English BIP39 words (the last word carries a 4-bit checksum). */
export const newRecoveryPhrase = (): string => generateMnemonic(wordlist, 128);

/** The phrase's entropy, after normalizing case and spacing; a word not in the list or a bad checksum is named. */
export function parseRecoveryPhrase(phrase: string): Uint8Array {
  const words = String(phrase).normalize("NFKD").toLowerCase().trim().split(/\s+/).filter(Boolean);
  const invalid = (why: string) => new ZkError("ZK_RECOVERY_PHRASE_INVALID", `The recovery phrase is not valid: ${why}.`);
  if (words.length !== RECOVERY_WORDS) throw invalid(`it has ${words.length} words, a recovery phrase has ${RECOVERY_WORDS}`);
  const unknown = words.findIndex((w) => !wordlist.includes(w));
  if (unknown >= 0) throw invalid(`word ${unknown + 1} ("${words[unknown].slice(0, 20)}") is not a BIP39 English word`);
  try {
    return mnemonicToEntropy(words.join(" "), wordlist);
  } catch {
    throw invalid("its checksum does not match (a word is mistyped or out of order)");
  }
}

/**
 * Full-entropy inputs (128 bits of phrase, 160 of hardware key) need no slow KDF and no salt: HKDF with the purpose as
 * its info. Each vault has its own phrase and key, so no two vaults share a wrapping key.
 */
const recoveryKey = (ikm: Uint8Array, kind: "recovery-phrase" | "hardware-key") => deriveKey(ikm, new Uint8Array(0), kind);

type VaultCheck = Pick<VaultHeader, "key_version" | "key_check">;

export function wrapWithPhrase(vaultKey: Uint8Array, keyVersion: number, phrase: string): string {
  return wrapVaultKey(recoveryKey(parseRecoveryPhrase(phrase), "recovery-phrase"), vaultKey, keyVersion, "recovery-phrase");
}

export function recoverWithPhrase(v: VaultCheck, wrapped: string, phrase: string): Uint8Array {
  const key = recoveryKey(parseRecoveryPhrase(phrase), "recovery-phrase");
  return unwrapVaultKey(
    key,
    wrapped,
    v,
    "recovery-phrase",
    () => new ZkError("ZK_RECOVERY_PHRASE_WRONG", "This recovery phrase is valid but not this vault's."),
  );
}

/**
 * The hardware backup key: 20 random bytes (160 bits) as 32 characters of RFC 4648 Base32 without padding (A–Z, 2–7).
 * A YubiKey static password holds up to 38 characters (32 in its scan-code mode), so the 32 fit either way, and the
 * alphabet has no characters that shift differently between common keyboard layouts except letters' case, which
 * parsing ignores. Spaces and dashes are ignored too, so it can be written down in groups.
 */
export const HARDWARE_KEY_BYTES = 20;
export const HARDWARE_KEY_CHARS = 32;

export const newHardwareKey = (): string => base32nopad.encode(randomBytes(HARDWARE_KEY_BYTES));

export function parseHardwareKey(text: string): Uint8Array {
  const clean = String(text).replace(/[\s-]/g, "").toUpperCase();
  if (!/^[A-Z2-7]+$/.test(clean) || clean.length !== HARDWARE_KEY_CHARS) {
    throw new ZkError("ZK_HARDWARE_KEY_INVALID", `A hardware backup key is ${HARDWARE_KEY_CHARS} Base32 characters (A–Z, 2–7).`);
  }
  return base32nopad.decode(clean);
}

export function wrapWithHardwareKey(vaultKey: Uint8Array, keyVersion: number, hardwareKey: string): string {
  return wrapVaultKey(recoveryKey(parseHardwareKey(hardwareKey), "hardware-key"), vaultKey, keyVersion, "hardware-key");
}

export function recoverWithHardwareKey(v: VaultCheck, wrapped: string, hardwareKey: string): Uint8Array {
  const key = recoveryKey(parseHardwareKey(hardwareKey), "hardware-key");
  return unwrapVaultKey(key, wrapped, v, "hardware-key", () => new ZkError("ZK_HARDWARE_KEY_WRONG", "This hardware key is not this vault's backup key."));
}

// ---- social recovery: Shamir shares of the vault key, each sealed to one member's X25519 public key ----

export const DEFAULT_THRESHOLD = 3;
export const DEFAULT_SHARES = 5;
export const MAX_SHARES = 10;
const SHARE_BYTES = KEY_BYTES + 1; // the secret's length plus the share's x coordinate

export interface ShareHolder {
  userId: string;
  /** X25519, Base64. */
  publicKey: string;
}

/** One share as stored: sealed to its holder, bound to the vault, key version, index and holder. */
export interface SealedShare {
  holder_user_id: string;
  index: number;
  sealed_share: string;
}

const shareAad = (vaultId: string, keyVersion: number, index: number, holder: string) => aad("share", vaultId, keyVersion, index, holder);
const releaseAad = (vaultId: string, keyVersion: number, index: number, requestId: string) => aad("share-release", vaultId, keyVersion, index, requestId);

/** Splits the vault key `threshold`-of-n among distinct holders and seals each share to its holder. */
export async function splitToHolders(
  vaultKey: Uint8Array,
  vaultId: string,
  keyVersion: number,
  holders: ShareHolder[],
  threshold: number = DEFAULT_THRESHOLD,
): Promise<SealedShare[]> {
  if (new Set(holders.map((h) => h.userId)).size !== holders.length) throw new ZkError("ZK_INVALID_INPUT", "Each share holder must be a different member.");
  if (!Number.isInteger(threshold) || threshold < 2 || holders.length < threshold || holders.length > MAX_SHARES) {
    throw new ZkError("ZK_INVALID_INPUT", `Social recovery needs from 2 to ${MAX_SHARES} holders and a threshold from 2 to their number.`);
  }
  const shares = await split(vaultKey, holders.length, threshold);
  return holders.map((h, i) => ({
    holder_user_id: h.userId,
    index: i + 1,
    sealed_share: toB64(sealTo(fromB64(h.publicKey, `public key of ${h.userId}`, 32), shares[i], shareAad(vaultId, keyVersion, i + 1, h.userId))),
  }));
}

/** A recovery request as a holder sees it: who asks, and the fresh public key they want the share sealed to. */
export interface RecoveryRequestRef {
  id: string;
  public_key: string;
}

/**
 * The holder's side of a release: open the share with the holder's private key, seal it again to the requester's
 * key, bound to the request. The server only relays the result; it never sees the share.
 */
export function releaseShare(holder: KeyPair, vault: { id: string; key_version: number }, share: SealedShare, request: RecoveryRequestRef): string {
  const failure = () => new ZkError("ZK_SHARE_UNREADABLE", `Share ${share.index} does not open with your key: it was changed, or sealed to another key.`);
  const plain = openSealedBox(
    holder,
    fromB64(share.sealed_share, "sealed_share"),
    shareAad(vault.id, vault.key_version, share.index, share.holder_user_id),
    failure,
  );
  if (plain.length !== SHARE_BYTES) throw failure();
  return toB64(sealTo(fromB64(request.public_key, "the request's public key", 32), plain, releaseAad(vault.id, vault.key_version, share.index, request.id)));
}

export interface ReleasedShare {
  index: number;
  sealed_share: string;
}

function* combinations<T>(items: T[], k: number, start = 0, picked: T[] = []): Generator<T[]> {
  if (picked.length === k) {
    yield picked;
    return;
  }
  for (let i = start; i <= items.length - (k - picked.length); i++) yield* combinations(items, k, i + 1, [...picked, items[i]]);
}

/**
 * The requester's side: open each released share with the request's private key and combine them. The result is
 * accepted only when it matches the vault's key check, so too few, corrupted or substituted shares fail with a clear
 * error rather than producing a wrong key. With more than `threshold` shares, a bad one among them is left out.
 */
export async function recoverFromShares(
  vault: VaultCheck & { id: string; share_threshold: number },
  requester: KeyPair,
  requestId: string,
  released: ReleasedShare[],
): Promise<Uint8Array> {
  const opened: Uint8Array[] = [];
  const unreadable: number[] = [];
  for (const r of released) {
    try {
      const fail = () => new ZkError("ZK_SHARE_UNREADABLE", "");
      const plain = openSealedBox(requester, fromB64(r.sealed_share, "sealed_share"), releaseAad(vault.id, vault.key_version, r.index, requestId), fail);
      if (plain.length === SHARE_BYTES) opened.push(plain);
      else unreadable.push(r.index);
    } catch {
      unreadable.push(r.index);
    }
  }
  const k = vault.share_threshold;
  const note = unreadable.length ? ` Share(s) ${unreadable.join(", ")} did not open (changed, or released for another request or key).` : "";
  if (opened.length < k) {
    const code = unreadable.length ? "ZK_SHARE_UNREADABLE" : "ZK_SHARES_TOO_FEW";
    throw new ZkError(code, `Recovery needs ${k} shares; ${opened.length} usable one(s) were released.${note}`);
  }
  for (const subset of combinations(opened, k)) {
    let candidate: Uint8Array;
    try {
      candidate = await combine(subset);
    } catch {
      continue; // two shares with one x coordinate, say
    }
    if (isVaultKey(candidate, vault)) return candidate;
  }
  throw new ZkError("ZK_SHARES_INVALID", `The released shares do not rebuild this vault's key: at least one is corrupted or belongs to another vault.${note}`);
}
