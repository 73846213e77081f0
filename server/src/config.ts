import { resolve } from "node:path";
import { parseOutboundAllow, type OutboundAllow } from "./lib/outbound.ts";

/**
 * The whole configuration, parsed once at boot from the environment and passed on. Nobody below this file reads
 * process.env. A bad value stops the server with a message naming the variable.
 */
export interface Config {
  port: number;
  host: string;
  publicUrl: string;
  dataDir: string;
  database: { kind: "embedded"; dir: string } | { kind: "postgres"; url: string; appUrl?: string; poolSize: number };
  redis: { kind: "absent" } | { kind: "configured"; url: string };
  /** Base64 of 32 bytes, or absent: the embedded mode then keeps a generated key file in the data dir. */
  masterKey?: Buffer;
  /** PLINTH_MASTER_KEY_PREVIOUS: the root key being rotated away from, accepted for opening what it wrapped. */
  previousMasterKeys: Buffer[];
  /**
   * `alg` is what new signing keys use. ES256 by default: the widest set of verifiers accepts it (jsonwebtoken +
   * jwks-rsa, the most used Node stack, and many API gateways refuse EdDSA). Existing keys keep their own alg.
   */
  jwt: { issuer: string; audience: string; alg: "EdDSA" | "ES256"; accessTtlSeconds: number; refreshTtlSeconds: number };
  mail: { kind: "smtp"; url: string; from: string } | { kind: "outbox"; from: string };
  logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
  /** `pretty`: readable lines for a person at a terminal; `json`: one JSON object a line, for a log collector. */
  logFormat: "json" | "pretty";
  trustProxy: boolean;
  /** Run migrations when `serve` starts (default on; turn off when a deploy step runs `plinth migrate`). */
  autoMigrate: boolean;
  /** Run the job worker inside `serve` (default on). */
  runWorker: boolean;
  /**
   * PLINTH_OUTBOUND_ALLOW: hosts and address ranges that tenant-given URLs (webhook endpoints, token endpoints) may
   * reach although they are loopback, private or link-local (lib/outbound.ts refuses those otherwise).
   */
  outboundAllow: OutboundAllow;
  /**
   * Inbound event ingestion's bounds: an org whose oldest unprocessed event is older than maxLagSeconds, or whose
   * unprocessed events would exceed maxPending, is answered 429 instead; events are purged after retentionDays.
   */
  ingestion: { maxLagSeconds: number; maxPending: number; retentionDays: number };
}

export class ConfigError extends Error {
  readonly variable: string;
  constructor(variable: string, reason: string) {
    super(`${variable}: ${reason}`);
    this.name = "ConfigError";
    this.variable = variable;
  }
}

type Env = Record<string, string | undefined>;

function intVar(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  if (!/^\d+$/.test(raw)) throw new ConfigError(name, `must be a whole number, got "${raw}"`);
  const n = Number(raw);
  if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${n}`);
  return n;
}

function boolVar(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  if (/^(1|true|yes|on)$/i.test(raw)) return true;
  if (/^(0|false|no|off)$/i.test(raw)) return false;
  throw new ConfigError(name, `must be true or false, got "${raw}"`);
}

function urlVar(env: Env, name: string, protocols: string[]): string | undefined {
  const raw = env[name];
  if (raw === undefined || raw === "") return undefined;
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new ConfigError(name, "is not a valid URL");
  }
  if (!protocols.includes(u.protocol)) {
    throw new ConfigError(name, `must use ${protocols.join(" or ")}, got ${u.protocol}`);
  }
  return raw;
}

function enumVar<T extends string>(env: Env, name: string, allowed: readonly T[], fallback: T): T {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  if (!(allowed as readonly string[]).includes(raw)) {
    throw new ConfigError(name, `must be one of ${allowed.join(", ")}, got "${raw}"`);
  }
  return raw as T;
}

/**
 * `stdoutIsTTY` decides LOG_FORMAT's default (readable lines at a terminal, JSON otherwise); it is a parameter so
 * that the parse stays a function of its inputs.
 */
export function loadConfig(env: Env = process.env, cwd = process.cwd(), stdoutIsTTY = process.stdout.isTTY === true): Config {
  const port = intVar(env, "PORT", 8080, 1, 65535);
  const host = env.HOST || "127.0.0.1";
  const publicUrl = (urlVar(env, "PLINTH_PUBLIC_URL", ["http:", "https:"]) ?? `http://localhost:${port}`).replace(/\/$/, "");
  const dataDir = resolve(cwd, env.PLINTH_DATA_DIR || ".plinth");
  const databaseUrl = urlVar(env, "DATABASE_URL", ["postgres:", "postgresql:"]);
  const appUrl = urlVar(env, "DATABASE_APP_URL", ["postgres:", "postgresql:"]);
  if (appUrl && !databaseUrl) throw new ConfigError("DATABASE_APP_URL", "needs DATABASE_URL as well");
  const redisUrl = urlVar(env, "REDIS_URL", ["redis:", "rediss:"]);

  let masterKey: Buffer | undefined;
  if (env.PLINTH_MASTER_KEY) {
    masterKey = Buffer.from(env.PLINTH_MASTER_KEY, "base64");
    if (masterKey.length !== 32) {
      throw new ConfigError("PLINTH_MASTER_KEY", "must be 32 random bytes in base64 (try: openssl rand -base64 32)");
    }
  } else if (databaseUrl) {
    throw new ConfigError("PLINTH_MASTER_KEY", "is required with DATABASE_URL (generate one: openssl rand -base64 32)");
  }

  const previousMasterKeys: Buffer[] = [];
  if (env.PLINTH_MASTER_KEY_PREVIOUS) {
    const prev = Buffer.from(env.PLINTH_MASTER_KEY_PREVIOUS, "base64");
    if (prev.length !== 32) throw new ConfigError("PLINTH_MASTER_KEY_PREVIOUS", "must be 32 random bytes in base64, the master key before the rotation");
    previousMasterKeys.push(prev);
  }

  const smtpUrl = urlVar(env, "SMTP_URL", ["smtp:", "smtps:"]);
  const from = env.MAIL_FROM || "Plinth <no-reply@localhost>";
  if (!/^[^\r\n]{3,320}$/.test(from) || !from.includes("@")) throw new ConfigError("MAIL_FROM", "must be an email address");

  let outboundAllow: OutboundAllow;
  try {
    outboundAllow = parseOutboundAllow(env.PLINTH_OUTBOUND_ALLOW);
  } catch (e) {
    throw new ConfigError("PLINTH_OUTBOUND_ALLOW", `${(e as Error).message}: give comma-separated host names, addresses or CIDRs`);
  }

  const accessTtl = intVar(env, "PLINTH_ACCESS_TOKEN_TTL", 900, 60, 86_400);
  const refreshTtl = intVar(env, "PLINTH_REFRESH_TOKEN_TTL", 30 * 86_400, 3600, 365 * 86_400);

  return {
    port,
    host,
    publicUrl,
    dataDir,
    database: databaseUrl
      ? { kind: "postgres", url: databaseUrl, appUrl, poolSize: intVar(env, "DATABASE_POOL_SIZE", 10, 1, 500) }
      : { kind: "embedded", dir: resolve(dataDir, "pgdata") },
    redis: redisUrl ? { kind: "configured", url: redisUrl } : { kind: "absent" },
    masterKey,
    previousMasterKeys,
    jwt: {
      issuer: publicUrl,
      audience: env.PLINTH_JWT_AUDIENCE || "plinth",
      alg: enumVar(env, "PLINTH_JWT_ALG", ["ES256", "EdDSA"] as const, "ES256"),
      accessTtlSeconds: accessTtl,
      refreshTtlSeconds: refreshTtl,
    },
    mail: smtpUrl ? { kind: "smtp", url: smtpUrl, from } : { kind: "outbox", from },
    logLevel: enumVar(env, "LOG_LEVEL", ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const, "info"),
    logFormat: enumVar(env, "LOG_FORMAT", ["json", "pretty"] as const, stdoutIsTTY ? "pretty" : "json"),
    trustProxy: boolVar(env, "TRUST_PROXY", false),
    autoMigrate: boolVar(env, "PLINTH_AUTO_MIGRATE", true),
    runWorker: boolVar(env, "PLINTH_RUN_WORKER", true),
    outboundAllow,
    ingestion: {
      maxLagSeconds: intVar(env, "PLINTH_INGEST_MAX_LAG_SECONDS", 30, 1, 86_400),
      maxPending: intVar(env, "PLINTH_INGEST_MAX_PENDING", 100_000, 1000, 1_000_000_000),
      retentionDays: intVar(env, "PLINTH_INGEST_RETENTION_DAYS", 30, 1, 3650),
    },
  };
}

/** The table the README shows; kept here so docs and code name the same variables. */
export const CONFIG_VARIABLES = [
  ["PORT", "8080", "HTTP port"],
  ["HOST", "127.0.0.1", "address to bind (0.0.0.0 in a container)"],
  ["PLINTH_PUBLIC_URL", "http://localhost:$PORT", "public base URL: token issuer and links in mail"],
  ["PLINTH_DATA_DIR", "./.plinth", "embedded database, key file, blobs"],
  ["DATABASE_URL", "(embedded PGlite)", "PostgreSQL URL of the table owner (migrations)"],
  ["DATABASE_APP_URL", "derived", "PostgreSQL URL the server's requests use (role plinth_app)"],
  [
    "DATABASE_POOL_SIZE",
    "10",
    "connections per pool per instance: request transactions and the access engine's read-only reads each have a pool this size (up to twice this many connections)",
  ],
  ["REDIS_URL", "(in-process)", "Redis/Valkey for rate limits shared across instances"],
  ["PLINTH_MASTER_KEY", "(key file in embedded mode)", "32 bytes base64; wraps signing keys"],
  ["PLINTH_MASTER_KEY_PREVIOUS", "(none)", "the master key before a root key rotation: still opens what it wrapped until `plinth vault rotate-root` is done"],
  ["PLINTH_JWT_ALG", "ES256", "ES256 or EdDSA: the alg of new signing keys (existing keys keep theirs until rotated)"],
  ["PLINTH_JWT_AUDIENCE", "plinth", "aud of access tokens"],
  ["PLINTH_ACCESS_TOKEN_TTL", "900", "seconds"],
  ["PLINTH_REFRESH_TOKEN_TTL", "2592000", "seconds"],
  ["SMTP_URL", "(dev outbox)", "smtp:// or smtps:// with credentials"],
  ["MAIL_FROM", "Plinth <no-reply@localhost>", "sender of mail"],
  ["LOG_LEVEL", "info", "pino level"],
  ["LOG_FORMAT", "pretty on a terminal, else json", "json or pretty (readable lines)"],
  ["TRUST_PROXY", "false", "honour X-Forwarded-For behind a load balancer"],
  ["PLINTH_AUTO_MIGRATE", "true", "migrate when serve starts"],
  ["PLINTH_RUN_WORKER", "true", "run the job worker inside serve"],
  [
    "PLINTH_OUTBOUND_ALLOW",
    "(none)",
    "comma-separated hosts, addresses or CIDRs that webhook and token endpoint URLs may reach although they are loopback, private or link-local (e.g. 10.1.0.0/16,hooks.internal)",
  ],
  ["PLINTH_INGEST_MAX_LAG_SECONDS", "30", "event ingestion answers 429 while an org's oldest unprocessed event is older than this"],
  ["PLINTH_INGEST_MAX_PENDING", "100000", "event ingestion answers 429 when an org's unprocessed events would exceed this (at least 1000)"],
  ["PLINTH_INGEST_RETENTION_DAYS", "30", "ingested events older than this are purged"],
] as const;
