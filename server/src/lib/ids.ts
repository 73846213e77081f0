import { randomBytes } from "node:crypto";

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
 * Time-ordered id: 48 bits of milliseconds then 80 random bits, Crockford base32 (the ULID layout),
 * so ids sort by creation and index well.
 */
export function newId(kind: IdKind, now: number = Date.now()): string {
  const bytes = Buffer.alloc(16);
  bytes.writeUIntBE(now, 0, 6);
  randomBytes(10).copy(bytes, 6);
  let bits = 0n;
  for (const b of bytes) bits = (bits << 8n) | BigInt(b);
  let out = "";
  for (let i = 0; i < 26; i++) {
    out = CROCKFORD[Number(bits & 31n)] + out;
    bits >>= 5n;
  }
  return `${ID_PREFIXES[kind]}_${out}`;
}

/** A pattern for JSON schemas: the id of one kind, nothing else. */
export function idPattern(kind: IdKind): string {
  return `^${ID_PREFIXES[kind]}_[0-9a-hjkmnp-tv-z]{26}$`;
}

export function isId(kind: IdKind, value: string): boolean {
  return new RegExp(idPattern(kind)).test(value);
}
