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
  grantRequest: "grq",
  invitation: "inv",
  role: "rol",
  signingKey: "sig",
  job: "job",
  mail: "mail",
  request: "req",
  apiKey: "key",
  serviceAccount: "sa",
  oauthClient: "cli",
  serviceKey: "svk",
  impersonation: "imp",
  secret: "sec",
  secretLease: "sls",
  connection: "con",
  zkVault: "zkv",
  zkShare: "zks",
  zkRecoveryRequest: "zkr",
  webhookEndpoint: "whe",
  webhookMessage: "msg",
  webhookDelivery: "whd",
  webhookAttempt: "wha",
  ingestEvent: "evt",
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

/** Every 10-bit value as its two base32 characters, so an id is built from 13 table lookups, not 26 digit loops. */
const PAIRS = Array.from({ length: 1024 }, (_, v) => CROCKFORD[v >>> 5] + CROCKFORD[v & 31]);

/** The time part of the last id made, reused within one millisecond. */
let lastTime = -1;
let lastTimePart = "";

/**
 * Time-ordered id: 48 bits of milliseconds then 80 random bits, Crockford base32 (the ULID layout),
 * so ids sort by creation and index well.
 */
export function newId(kind: IdKind, now: number = Date.now()): string {
  if (now !== lastTime) {
    if (!Number.isInteger(now) || now < 0 || now >= 2 ** 48) throw new RangeError(`newId: time out of range: ${now}`);
    // 10 characters of 5 bits: 2 zero bits then the 48 bits of time, as five 10-bit pairs (all in 32-bit integers)
    const high = Math.floor(now / 2 ** 30); // top 20 bits of the 50
    const low = now - high * 2 ** 30; // bottom 30
    lastTimePart = PAIRS[high >>> 10] + PAIRS[high & 1023] + PAIRS[low >>> 20] + PAIRS[(low >>> 10) & 1023] + PAIRS[low & 1023];
    lastTime = now;
  }
  if (poolOffset + 10 > POOL_BYTES) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  // the 80 random bits, 10 at a time, most significant first
  const p = poolOffset;
  poolOffset += 10;
  return (
    `${ID_PREFIXES[kind]}_${lastTimePart}` +
    PAIRS[(pool[p] << 2) | (pool[p + 1] >>> 6)] +
    PAIRS[((pool[p + 1] & 63) << 4) | (pool[p + 2] >>> 4)] +
    PAIRS[((pool[p + 2] & 15) << 6) | (pool[p + 3] >>> 2)] +
    PAIRS[((pool[p + 3] & 3) << 8) | pool[p + 4]] +
    PAIRS[(pool[p + 5] << 2) | (pool[p + 6] >>> 6)] +
    PAIRS[((pool[p + 6] & 63) << 4) | (pool[p + 7] >>> 4)] +
    PAIRS[((pool[p + 7] & 15) << 6) | (pool[p + 8] >>> 2)] +
    PAIRS[((pool[p + 8] & 3) << 8) | pool[p + 9]]
  );
}

/** A pattern for JSON schemas: the id of one kind, nothing else. */
export function idPattern(kind: IdKind): string {
  return `^${ID_PREFIXES[kind]}_[0-9a-hjkmnp-tv-z]{26}$`;
}

/** Compiled once per kind: isId runs on every org-scoped request. */
const ID_RES = new Map<IdKind, RegExp>();

export function isId(kind: IdKind, value: string): boolean {
  let re = ID_RES.get(kind);
  if (!re) ID_RES.set(kind, (re = new RegExp(idPattern(kind))));
  return re.test(value);
}
