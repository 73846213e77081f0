import { createCipheriv, createDecipheriv, type KeyObject, randomBytes } from "node:crypto";
import { keyObject } from "../lib/crypto.ts";

/** AES-256-GCM from node:crypto: a fresh 96-bit nonce per message, a 128-bit tag, the caller's associated data. */
export const NONCE_BYTES = 12;
const TAG_BYTES = 16;

export interface GcmBox {
  nonce: Buffer;
  /** ciphertext | tag */
  ciphertext: Buffer;
}

export function gcmEncrypt(key: Buffer | KeyObject, plaintext: Buffer, aad: string): GcmBox {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv("aes-256-gcm", keyObject(key), nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(Buffer.from(aad, "utf8"));
  const ct = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { nonce, ciphertext: Buffer.concat([ct, cipher.getAuthTag()]) };
}

/** Throws when the ciphertext, the nonce or the associated data is not what was sealed. */
export function gcmDecrypt(key: Buffer | KeyObject, box: GcmBox, aad: string): Buffer {
  if (box.nonce.length !== NONCE_BYTES || box.ciphertext.length < TAG_BYTES) throw new Error("malformed AES-GCM box");
  const decipher = createDecipheriv("aes-256-gcm", keyObject(key), box.nonce, { authTagLength: TAG_BYTES });
  decipher.setAAD(Buffer.from(aad, "utf8"));
  decipher.setAuthTag(box.ciphertext.subarray(box.ciphertext.length - TAG_BYTES));
  return Buffer.concat([decipher.update(box.ciphertext.subarray(0, box.ciphertext.length - TAG_BYTES)), decipher.final()]);
}
