import { argon2idAsync } from "@noble/hashes/argon2.js";
import { randomBytes } from "@noble/hashes/utils.js";
import { fromB64, KEY_BYTES, toB64 } from "./zk.primitives.ts";
import { ZkError } from "./zk.errors.ts";

/**
 * Passphrase → key with Argon2id. The parameters travel with what they protect (a vault, a user's private key), so
 * they can be raised later without breaking old vaults; the bounds keep a tampered record from asking a client for
 * a gigabyte-hour of work.
 */
export interface KdfParams {
  algorithm: "argon2id";
  /** Argon2 version 0x13. */
  version: 19;
  memory_kib: number;
  iterations: number;
  parallelism: number;
  /** 16 random bytes, Base64. */
  salt: string;
}

/** OWASP's Password Storage Cheat Sheet, first Argon2id option: m = 19 MiB, t = 2, p = 1. */
export const OWASP_ARGON2ID = { memory_kib: 19_456, iterations: 2, parallelism: 1 } as const;
export const KDF_BOUNDS = { memory_kib: [19_456, 1_048_576], iterations: [2, 20], parallelism: [1, 16] } as const;
export const SALT_BYTES = 16;
export const MIN_PASSPHRASE_CHARS = 8;

export function newKdfParams(): KdfParams {
  return { algorithm: "argon2id", version: 19, ...OWASP_ARGON2ID, salt: toB64(randomBytes(SALT_BYTES)) };
}

export function checkKdfParams(p: KdfParams): Uint8Array {
  const bad = (what: string) => new ZkError("ZK_KDF_PARAMS_INVALID", `The key-derivation parameters are not acceptable: ${what}.`);
  if (p?.algorithm !== "argon2id" || p.version !== 19) throw bad("only Argon2id version 19 is used");
  for (const [field, [lo, hi]] of Object.entries(KDF_BOUNDS)) {
    const v = p[field as keyof typeof KDF_BOUNDS];
    if (!Number.isInteger(v) || v < lo || v > hi) throw bad(`${field} must be an integer from ${lo} to ${hi}`);
  }
  try {
    return fromB64(p.salt, "salt", SALT_BYTES);
  } catch {
    throw bad(`salt must be ${SALT_BYTES} bytes of Base64`);
  }
}

export function checkPassphrase(passphrase: string): void {
  if (typeof passphrase !== "string" || [...passphrase].length < MIN_PASSPHRASE_CHARS) {
    throw new ZkError("ZK_PASSPHRASE_TOO_SHORT", `A passphrase needs at least ${MIN_PASSPHRASE_CHARS} characters.`);
  }
}

/** The key-wrapping key of a passphrase (NFKC-normalized, so the same words typed on another system match). */
export async function passphraseKey(passphrase: string, params: KdfParams): Promise<Uint8Array> {
  checkPassphrase(passphrase);
  const salt = checkKdfParams(params);
  return argon2idAsync(passphrase.normalize("NFKC"), salt, {
    m: params.memory_kib,
    t: params.iterations,
    p: params.parallelism,
    dkLen: KEY_BYTES,
    maxmem: 2 ** 31,
  });
}
