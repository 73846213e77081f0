import { randomFillSync } from "node:crypto";

/** Every id names what it identifies: `usr_…`, `org_…`. Prefixes are listed here so a reader can find them all. */
export const ID_PREFIXES = {
  user: "usr",
  org: "org",
  membership: "mem",
  session: "ses",
  refreshToken: "rft",
  emailToken: "etk",
  loginAttempt: "lgn",
  securityEvent: "sev",
  auditEvent: "aud",
  team: "team",
  grant: "grt",
  invitation: "inv",
  role: "rol",
  signingKey: "sig",
  job: "job",
  mail: "mail",
  request: "req",
} as const;

export type IdKind = keyof typeof ID_PREFIXES;

const CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz";

/**
 * Random bytes come from a pool refilled 4 KiB at a time (as crypto.randomUUID does): one randomFillSync per ~400
 * ids rather than a randomBytes call each. Fastify makes a request id for every request, so this is on the hot path.
 */
const POOL_BYTES = 4096;
const pool = Buffer.alloc(POOL_BYTES);
let poolOffset = POOL_BYTES;

/** `chars` base32 characters of `value` (an integer below 2^31), most significant first. */
function base32(value: number, chars: number): string {
  let out = "";
  for (let shift = 5 * (chars - 1); shift >= 0; shift -= 5) out += CROCKFORD[(value >>> shift) & 31];
  return out;
}

/**
 * Time-ordered id: 48 bits of milliseconds then 80 random bits, Crockford base32 (the ULID layout),
 * so ids sort by creation and index well.
 */
export function newId(kind: IdKind, now: number = Date.now()): string {
  if (!Number.isInteger(now) || now < 0 || now >= 2 ** 48) throw new RangeError(`newId: time out of range: ${now}`);
  if (poolOffset + 10 > POOL_BYTES) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  // 26 characters of 5 bits = 130 bits: 2 zero bits, the 48 bits of time, the 80 random bits. Taken 25 or 20 bits
  // at a time so that all arithmetic stays in 32-bit integers (no BigInt).
  const p = poolOffset;
  poolOffset += 10;
  const timeHigh = Math.floor(now / 2 ** 25); // top 23 bits of time (25 with the 2 zero bits)
  const timeLow = now - timeHigh * 2 ** 25; // bottom 25 bits
  const r0 = (pool[p] << 12) | (pool[p + 1] << 4) | (pool[p + 2] >>> 4); // random bits 0-19
  const r1 = ((pool[p + 2] & 15) << 16) | (pool[p + 3] << 8) | pool[p + 4]; // 20-39
  const r2 = (pool[p + 5] << 12) | (pool[p + 6] << 4) | (pool[p + 7] >>> 4); // 40-59
  const r3 = ((pool[p + 7] & 15) << 16) | (pool[p + 8] << 8) | pool[p + 9]; // 60-79
  return `${ID_PREFIXES[kind]}_${base32(timeHigh, 5)}${base32(timeLow, 5)}${base32(r0, 4)}${base32(r1, 4)}${base32(r2, 4)}${base32(r3, 4)}`;
}

/** A pattern for JSON schemas: the id of one kind, nothing else. */
export function idPattern(kind: IdKind): string {
  return `^${ID_PREFIXES[kind]}_[0-9a-hjkmnp-tv-z]{26}$`;
}

export function isId(kind: IdKind, value: string): boolean {
  return new RegExp(idPattern(kind)).test(value);
}
