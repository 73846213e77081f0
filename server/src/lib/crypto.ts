import { createCipheriv, createDecipheriv, createSecretKey, hash, hkdfSync, type KeyObject, randomBytes, timingSafeEqual } from "node:crypto";

/** A random, URL-safe secret token (default 256 bits). */
export function randomToken(bytes = 32): string {
  return randomBytes(bytes).toString("base64url");
}

/** Tokens are stored only as this hash; lookups go by hash. */
export function sha256(value: string): string {
  // one-shot crypto.hash, no Hash object per call: refresh tokens, emailed tokens and invitation secrets hash through it
  return hash("sha256", value, "base64url");
}

export function safeEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a);
  const bb = Buffer.from(b);
  return ab.length === bb.length && timingSafeEqual(ab, bb);
}

/** Derives a purpose-bound subkey from the master key, so one key never serves two purposes. */
export function deriveKey(masterKey: Buffer, purpose: string, length = 32): Buffer {
  return Buffer.from(hkdfSync("sha256", masterKey, Buffer.alloc(0), `plinth:${purpose}`, length));
}

/**
 * AES-256-GCM with the record's identity as associated data: a ciphertext moved to another record fails to decrypt.
 * Output: base64url(version 1 byte | iv 12 | tag 16 | ciphertext).
 */
/**
 * A raw key as a KeyObject first: node:crypto given a Buffer key makes one internally at several times the cost of
 * this (≈ 40 µs against ≈ 10 µs for a whole small AES-GCM decryption on a 2-core bench machine), which a lease of
 * fifty secrets would pay a hundred times. Every cipher call here and in kms/aes-gcm.ts goes through it.
 */
export const keyObject = (key: Buffer | KeyObject): KeyObject => (Buffer.isBuffer(key) ? createSecretKey(key) : key);

export function seal(key: Buffer | KeyObject, plaintext: Buffer | string, aad: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", keyObject(key), iv);
  cipher.setAAD(Buffer.from(aad));
  const ct = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([Buffer.from([1]), iv, cipher.getAuthTag(), ct]).toString("base64url");
}

export function open(key: Buffer | KeyObject, sealed: string, aad: string): Buffer {
  const buf = Buffer.from(sealed, "base64url");
  if (buf.length < 29 || buf[0] !== 1) throw new Error("sealed value has an unknown format");
  const decipher = createDecipheriv("aes-256-gcm", keyObject(key), buf.subarray(1, 13));
  decipher.setAAD(Buffer.from(aad));
  decipher.setAuthTag(buf.subarray(13, 29));
  return Buffer.concat([decipher.update(buf.subarray(29)), decipher.final()]);
}
