import { hash, randomFillSync, timingSafeEqual } from "node:crypto";
import { crc32 } from "node:zlib";

/**
 * The API key secret: `plk_live_<32 base62 random characters><crc32 of them as 6 base62 characters>`. The readable
 * prefix lets secret scanners recognise a leaked key; the checksum lets a typo or a made-up key be refused without a
 * database read. Only the sha256 of a secret is ever stored.
 */
export const SECRET_PREFIX = "plk_live_";
const RANDOM_LENGTH = 32;
const CRC_LENGTH = 6;
const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const SHAPE = new RegExp(`^plk_live_[0-9A-Za-z]{${RANDOM_LENGTH + CRC_LENGTH}}$`);
/** How much of a secret lists show, so people can tell keys apart: `plk_live_` and 6 random characters. */
export const DISPLAY_PREFIX_LENGTH = SECRET_PREFIX.length + 6;

function checksum(random: string): string {
  let n = crc32(random);
  let out = "";
  for (let i = 0; i < CRC_LENGTH; i++) {
    out = BASE62[n % 62] + out;
    n = Math.floor(n / 62);
  }
  return out;
}

/** A fresh secret: 32 uniform base62 characters (rejection sampling, ~190 bits) and their checksum. */
export function newSecret(): string {
  let random = "";
  const bytes = Buffer.alloc(64);
  while (random.length < RANDOM_LENGTH) {
    randomFillSync(bytes);
    for (const b of bytes) {
      // 248 = 4 × 62: values above would make the first characters likelier
      if (b < 248 && random.length < RANDOM_LENGTH) random += BASE62[b % 62];
    }
  }
  return SECRET_PREFIX + random + checksum(random);
}

export type FormatCheck = "ok" | "malformed" | "bad_checksum";

/** Whether `secret` looks like a key this server issued: shape, then checksum. No database. */
export function checkFormat(secret: string): FormatCheck {
  if (!SHAPE.test(secret)) return "malformed";
  const random = secret.slice(SECRET_PREFIX.length, SECRET_PREFIX.length + RANDOM_LENGTH);
  return secret.endsWith(checksum(random)) ? "ok" : "bad_checksum";
}

/** The stored form of a secret: its sha256, hex (the one-shot crypto.hash: a third of createHash's cost). */
export function hashSecret(secret: string): string {
  return hash("sha256", secret, "hex");
}

/** Constant-time equality of two hex hashes. */
export function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a, "hex");
  const y = Buffer.from(b, "hex");
  return x.length === y.length && timingSafeEqual(x, y);
}

export function displayPrefix(secret: string): string {
  return secret.slice(0, DISPLAY_PREFIX_LENGTH);
}
