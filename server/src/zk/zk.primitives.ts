import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { x25519 } from "@noble/curves/ed25519.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { concatBytes, randomBytes, utf8ToBytes } from "@noble/hashes/utils.js";
import { base64 } from "@scure/base";
import { ZkError } from "./zk.errors.ts";

/**
 * The building blocks of the zero-knowledge vault, composed from audited libraries (@noble/*, @scure/*), never
 * hand-rolled. Pure functions over Uint8Array with no Node-only API, so a browser runs the same code.
 */

export const KEY_BYTES = 32;
export const NONCE_BYTES = 24;
export const TAG_BYTES = 16;
export const X25519_KEY_BYTES = 32;

export const toB64 = (bytes: Uint8Array): string => base64.encode(bytes);

/** Decodes standard Base64 (RFC 4648 §4), checking the length when one is expected; `what` names the field. */
export function fromB64(value: string, what: string, length?: number): Uint8Array {
  let bytes: Uint8Array;
  try {
    bytes = base64.decode(value);
  } catch {
    throw new ZkError("ZK_INVALID_INPUT", `${what} is not valid Base64.`);
  }
  if (length !== undefined && bytes.length !== length) throw new ZkError("ZK_INVALID_INPUT", `${what} must be ${length} bytes, got ${bytes.length}.`);
  return bytes;
}

/**
 * Associated data: what a ciphertext is bound to, as the JSON of a labelled tuple (unambiguous, unlike joined strings).
 * The same ciphertext under another vault, entry name, key version or purpose fails to decrypt.
 */
export function aad(label: string, ...parts: (string | number)[]): Uint8Array {
  return utf8ToBytes(JSON.stringify([`plinth-zk/v1/${label}`, ...parts]));
}

export interface Sealed {
  nonce: Uint8Array;
  ciphertext: Uint8Array;
}

/** XChaCha20-Poly1305 with a fresh random 24-byte nonce (random nonces are safe at this size). */
export function seal(key: Uint8Array, plaintext: Uint8Array, associated: Uint8Array): Sealed {
  const nonce = randomBytes(NONCE_BYTES);
  return { nonce, ciphertext: xchacha20poly1305(key, nonce, associated).encrypt(plaintext) };
}

/** Opens what `seal` made, or throws `failure` (a tampered, moved or wrongly keyed ciphertext). */
export function open(key: Uint8Array, sealed: Sealed, associated: Uint8Array, failure: () => ZkError): Uint8Array {
  if (sealed.nonce.length !== NONCE_BYTES || sealed.ciphertext.length < TAG_BYTES) throw failure();
  try {
    return xchacha20poly1305(key, sealed.nonce, associated).decrypt(sealed.ciphertext);
  } catch {
    throw failure();
  }
}

/** nonce ‖ ciphertext as one Base64 string: how a wrapped key travels and is stored. */
export const packSealed = (s: Sealed): string => toB64(concatBytes(s.nonce, s.ciphertext));
export function unpackSealed(value: string, what: string): Sealed {
  const bytes = fromB64(value, what);
  if (bytes.length < NONCE_BYTES + TAG_BYTES) throw new ZkError("ZK_INVALID_INPUT", `${what} is too short to be a sealed value.`);
  return { nonce: bytes.subarray(0, NONCE_BYTES), ciphertext: bytes.subarray(NONCE_BYTES) };
}

/** HKDF-SHA256 to a 32-byte key; `info` separates the purposes that share one input. */
export function deriveKey(ikm: Uint8Array, salt: Uint8Array, info: string): Uint8Array {
  return hkdf(sha256, ikm, salt, utf8ToBytes(`plinth-zk/v1/${info}`), KEY_BYTES);
}

export interface KeyPair {
  publicKey: Uint8Array;
  privateKey: Uint8Array;
}

export function newKeyPair(): KeyPair {
  const privateKey = x25519.utils.randomSecretKey();
  return { privateKey, publicKey: x25519.getPublicKey(privateKey) };
}

/**
 * A sealed box to an X25519 public key: an ephemeral key pair, X25519, HKDF over the shared secret and both public
 * keys, then XChaCha20-Poly1305 with `associated` bound in. Output: ephemeral public key ‖ nonce ‖ ciphertext.
 * Only the holder of the recipient's private key opens it; the sender keeps nothing that could.
 */
export function sealTo(recipientPublicKey: Uint8Array, plaintext: Uint8Array, associated: Uint8Array): Uint8Array {
  if (recipientPublicKey.length !== X25519_KEY_BYTES) throw new ZkError("ZK_INVALID_INPUT", "The recipient's public key must be 32 bytes.");
  const eph = newKeyPair();
  let shared: Uint8Array;
  try {
    shared = x25519.getSharedSecret(eph.privateKey, recipientPublicKey);
  } catch {
    throw new ZkError("ZK_INVALID_INPUT", "The recipient's public key is not a usable X25519 key.");
  }
  const key = deriveKey(shared, concatBytes(eph.publicKey, recipientPublicKey), "sealed-box");
  const s = seal(key, plaintext, associated);
  return concatBytes(eph.publicKey, s.nonce, s.ciphertext);
}

export function openSealedBox(recipient: KeyPair, box: Uint8Array, associated: Uint8Array, failure: () => ZkError): Uint8Array {
  if (box.length < X25519_KEY_BYTES + NONCE_BYTES + TAG_BYTES) throw failure();
  const ephPublic = box.subarray(0, X25519_KEY_BYTES);
  let shared: Uint8Array;
  try {
    shared = x25519.getSharedSecret(recipient.privateKey, ephPublic);
  } catch {
    throw failure();
  }
  const key = deriveKey(shared, concatBytes(ephPublic, recipient.publicKey), "sealed-box");
  const sealed = { nonce: box.subarray(X25519_KEY_BYTES, X25519_KEY_BYTES + NONCE_BYTES), ciphertext: box.subarray(X25519_KEY_BYTES + NONCE_BYTES) };
  return open(key, sealed, associated, failure);
}
