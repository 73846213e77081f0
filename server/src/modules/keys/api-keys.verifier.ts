import { BlockList, isIP } from "node:net";
import { RateLimiterMemory, RateLimiterRedis, type RateLimiterAbstract, type RateLimiterRes } from "rate-limiter-flexible";
import type { Logger } from "pino";
import type { Database } from "../../db/client.ts";
import type { ApiKeyAuthenticator, ApiKeyPrincipal } from "../access/principal.ts";
import type { Clock } from "../../lib/clock.ts";
import { createCache } from "../../lib/cache.ts";
import { platformError, type AppError } from "../../lib/errors.ts";
import type { LimiterStore } from "../../limits/throttle.ts";
import { permissionsOfRolesIn } from "../access/authority.ts";
import type { Permission } from "../access/permissions.ts";
import { apiKeysError, type KeyRefusal } from "./api-keys.errors.ts";
import { checkFormat, hashSecret, sameHash } from "./api-keys.format.ts";
import { authQuery, indexQuery, keyStateQuery, type ApiKeysRepo, type AuthRow, type IndexRow, type KeyStateRow } from "./api-keys.repo.ts";
import { isId } from "../../lib/ids.ts";

/** What this instance knows of a presented secret: the key's facts, or null (no such secret). */
interface KeyFacts {
  orgId: string;
  revoked: boolean;
  notBefore: number | null;
  expiresAt: number | null;
  /** When this secret (rotated out) stops working; null for the key's current secret. */
  secretEndsAt: number | null;
  allow: BlockList | null;
  perMinute: number | null;
  principal: ApiKeyPrincipal;
}
/** What this instance knows of a key by its id (for the tokens exchanged from it): dead once revoked, or gone. */
interface KeyState {
  orgId: string;
  /** False: no such key in `orgId` (it may be another org's). */
  found: boolean;
  revoked: boolean;
  expiresAt: number | null;
}

export interface VerifierOptions {
  /** A verified key is re-read after this long even without an invalidation. */
  cacheTtlMs?: number;
  maxEntries?: number;
  /** How often batched usage (last_used_at, usage_count) is written. */
  flushIntervalMs?: number;
}

const toMs = (v: string | Date | null) => (v === null ? null : new Date(v).getTime());

/** An allowlist entry: an IPv4/IPv6 address or CIDR (`10.0.0.0/8`, `2001:db8::/32`); undefined when it is not one. */
export function parseCidr(text: string): { address: string; prefix: number; family: "ipv4" | "ipv6" } | undefined {
  const [address, bits, extra] = text.split("/");
  if (extra !== undefined) return undefined;
  const v = isIP(address);
  if (v === 0) return undefined;
  const max = v === 4 ? 32 : 128;
  if (bits !== undefined && !/^\d{1,3}$/.test(bits)) return undefined;
  const prefix = bits === undefined ? max : Number(bits);
  if (prefix > max) return undefined;
  return { address, prefix, family: v === 4 ? "ipv4" : "ipv6" };
}

function blockListOf(cidrs: readonly string[]): BlockList | null {
  if (!cidrs.length) return null;
  const list = new BlockList();
  for (const c of cidrs) {
    const p = parseCidr(c);
    if (p) list.addSubnet(p.address, p.prefix, p.family);
  }
  return list;
}

function ipAllowed(list: BlockList, ip: string): boolean {
  // an IPv4 client on a dual-stack socket shows as ::ffff:a.b.c.d
  const plain = ip.startsWith("::ffff:") && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
  const v = isIP(plain);
  return v !== 0 && list.check(plain, v === 4 ? "ipv4" : "ipv6");
}

/** The key's own permissions: its roles' (built-in, or the org's custom roles as they are now) and its listed ones. */
export function keyScope(row: Pick<AuthRow, "roles" | "permissions" | "custom">): Set<Permission> {
  return permissionsOfRolesIn(row.roles, row.custom, row.permissions);
}

const refuse = (reason: KeyRefusal, detail: string): AppError => apiKeysError("INVALID_API_KEY", detail, { extra: { reason } });
const MALFORMED = refuse("malformed", "The API key is malformed: expected plk_live_ followed by 38 letters and digits.");
/** How many presented secrets' hashes are remembered (the least recently presented forgotten first). */
const MAX_REMEMBERED_HASHES = 10_000;

const BAD_CHECKSUM = refuse("bad_checksum", "The API key's checksum does not match: it was mistyped or truncated.");

/**
 * Checks presented API keys for the auth hook. A key's facts are cached per instance for a short time (lib/cache.ts),
 * grouped by its org: `invalidateOrg` (called by the access engine on every invalidation, on this instance and,
 * through the bus, on the others) makes every cached key of the org stale, so a revocation, rotation or role change
 * holds from the next request. Usage is counted in memory and written in batches.
 */
export function createApiKeyVerifier(deps: {
  db: Database;
  clock: Clock;
  log: Logger;
  limiterStore: LimiterStore;
  repo: Pick<ApiKeysRepo, "addUsage">;
  options?: VerifierOptions;
}) {
  const { db, clock, log, limiterStore, repo } = deps;
  const ttlMs = deps.options?.cacheTtlMs ?? 30_000;
  const max = deps.options?.maxEntries ?? 100_000;
  /** Unknown secrets have no org; they form one group that every invalidation drops (a new key may be among them). */
  const NO_ORG = "";
  /** Presented secrets' facts by hash; null: no such secret. */
  const secrets = createCache<KeyFacts | null>({
    name: "api-keys.secrets",
    max,
    ttlMs,
    clock,
    group: (_hash, f) => f?.orgId ?? NO_ORG,
    fetch: (hash) => load(hash),
  });
  // Keys by id, for the tokens exchanged from them: the same groups and lifetime as the secrets', so a
  // revocation (here or, through the access bus, on another instance) holds from the next request.
  const states = createCache<KeyState, { orgId: string; keyId: string }>({
    name: "api-keys.states",
    max,
    ttlMs,
    clock,
    group: (_key, state) => state.orgId,
    fetch: async (_key, { orgId, keyId }) => {
      const [row] = await db.readScoped<KeyStateRow>({ orgId }, keyStateQuery(orgId, keyId));
      return { orgId, found: !!row, revoked: !row || row.revoked_at !== null, expiresAt: row ? toMs(row.expires_at) : null };
    },
  });

  async function load(hash: string): Promise<KeyFacts | null> {
    const nowMs = clock.now().getTime();
    const statesSince = states.version();
    const [ix] = await db.readScoped<IndexRow>({}, indexQuery(hash));
    if (!ix) return null;
    const [row] = await db.readScoped<AuthRow>({ orgId: ix.org_id }, authQuery(ix.org_id, ix.credential_id));
    if (!row) return null;
    const current = sameHash(hash, row.secret_hash);
    const ownerType = row.owner_type === "service_account" ? "service_account" : "user";
    const expiresAt = toMs(row.expires_at);
    // a secret that is not the key's current one works only until its index row's end (a rotation's grace)
    const secretEndsAt = current ? null : (toMs(ix.expires_at) ?? nowMs);
    const endsAt = expiresAt === null ? secretEndsAt : secretEndsAt === null ? expiresAt : Math.min(expiresAt, secretEndsAt);
    const principal: ApiKeyPrincipal = {
      kind: "api_key",
      keyId: row.id,
      orgId: row.org_id,
      ownerType,
      ownerId: row.owner_id,
      scope: row.inherit ? "inherit" : keyScope(row),
    };
    if (endsAt !== null) principal.expiresAt = endsAt;
    const facts: KeyFacts = {
      orgId: row.org_id,
      revoked: row.revoked_at !== null,
      notBefore: toMs(row.not_before),
      expiresAt,
      secretEndsAt,
      allow: blockListOf(row.ip_allowlist),
      perMinute: row.rate_limit_per_minute,
      principal,
    };
    states.set(row.id, { orgId: row.org_id, found: true, revoked: facts.revoked, expiresAt }, statesSince);
    return facts;
  }

  function stateLive(s: KeyState, orgId: string): boolean {
    // a key of another org than the token's is no source of it
    return s.orgId === orgId && !s.revoked && (s.expiresAt === null || clock.now().getTime() < s.expiresAt);
  }

  const limiters = new Map<number, RateLimiterAbstract>();
  function limiterFor(points: number): RateLimiterAbstract {
    let l = limiters.get(points);
    if (!l) {
      const keyPrefix = `plinth:apikey:${points}`;
      l =
        limiterStore.kind === "redis"
          ? new RateLimiterRedis({
              storeClient: limiterStore.client,
              keyPrefix,
              points,
              duration: 60,
              insuranceLimiter: new RateLimiterMemory({ keyPrefix, points, duration: 60 }),
            })
          : new RateLimiterMemory({ keyPrefix, points, duration: 60 });
      limiters.set(points, l);
    }
    return l;
  }

  const usage = new Map<string, { orgId: string; count: number; lastUsedAt: Date }>();
  function countUse(p: ApiKeyPrincipal, now: Date): void {
    const u = usage.get(p.keyId);
    if (u) {
      u.count++;
      u.lastUsedAt = now;
    } else usage.set(p.keyId, { orgId: p.orgId, count: 1, lastUsedAt: now });
  }

  function judge(f: KeyFacts | null, ip: string): ApiKeyPrincipal | AppError | Promise<ApiKeyPrincipal | AppError> {
    if (!f) return refuse("unknown", "No such API key.");
    const now = clock.now();
    const nowMs = now.getTime();
    if (f.revoked) return refuse("revoked", "The API key has been revoked.");
    if (f.secretEndsAt !== null && nowMs >= f.secretEndsAt)
      return refuse("rotated", "The API key was rotated and this secret's grace period has ended; use the new secret.");
    if (f.notBefore !== null && nowMs < f.notBefore) return refuse("not_yet_valid", `The API key is not valid before ${new Date(f.notBefore).toISOString()}.`);
    if (f.expiresAt !== null && nowMs >= f.expiresAt) return refuse("expired", "The API key has expired.");
    if (f.allow && !ipAllowed(f.allow, ip)) return apiKeysError("IP_NOT_ALLOWED", "The API key may not be used from this address.");
    if (f.perMinute === null) {
      countUse(f.principal, now);
      return f.principal;
    }
    const principal = f.principal;
    return limiterFor(f.perMinute)
      .consume(principal.keyId)
      .then(
        () => {
          countUse(principal, now);
          return principal;
        },
        (e: unknown) => {
          if (!(e && typeof e === "object" && "msBeforeNext" in e)) throw e;
          const wait = Math.max(1, Math.ceil((e as RateLimiterRes).msBeforeNext / 1000));
          return platformError("RATE_LIMITED", `The API key's limit of ${f.perMinute} requests per minute is spent; retry in ${wait} s.`, { retryAfter: wait });
        },
      );
  }

  let flushing: Promise<void> = Promise.resolve();
  async function flushNow(): Promise<void> {
    if (!usage.size) return;
    const byOrg = new Map<string, { id: string; count: number; lastUsedAt: Date }[]>();
    for (const [id, u] of usage) {
      const list = byOrg.get(u.orgId) ?? [];
      list.push({ id, count: u.count, lastUsedAt: u.lastUsedAt });
      byOrg.set(u.orgId, list);
    }
    usage.clear();
    for (const [orgId, list] of byOrg) {
      try {
        await db.tx({ orgId }, (tx) => repo.addUsage(tx, orgId, list));
      } catch (e) {
        log.warn({ err: (e as Error).message, orgId }, "could not record API key usage");
      }
    }
  }
  const timer = setInterval(() => void verifier.flushUsage(), deps.options?.flushIntervalMs ?? 5_000);
  timer.unref();

  /**
   * The hashes of secrets presented recently, so a key in steady use is not hashed on every request (sha256 is the
   * largest single cost of the warm path). Process memory only, bounded; what a secret may do is still decided by the
   * cached facts under its hash, which revocation and expiry invalidate.
   */
  const hashes = createCache<string>({ name: "api-keys.hashes", max: MAX_REMEMBERED_HASHES });

  const verifier: ApiKeyAuthenticator & {
    invalidateOrg(orgId: string): void;
    isLive(orgId: string, keyId: string): boolean | Promise<boolean>;
    flushUsage(): Promise<void>;
    close(): Promise<void>;
    clearCache(): void;
  } = {
    authenticate(secret, ip) {
      // a secret whose hash is cached was well-formed when it was read: the format check is for the others, which
      // it refuses before any database read
      const remembered = hashes.get(secret);
      const hash = remembered ?? hashSecret(secret);
      const facts = secrets.get(hash);
      if (facts) {
        // remembered only for a secret that is a key: made-up secrets cannot crowd out the real ones
        if (remembered === undefined) hashes.set(secret, hash);
        return judge(facts, ip);
      }
      const format = checkFormat(secret);
      if (format !== "ok") return format === "malformed" ? MALFORMED : BAD_CHECKSUM;
      if (facts === null) return judge(null, ip); // a cached unknown secret
      return secrets.fetch(hash).then((f) => judge(f, ip));
    },

    /**
     * Whether the key `keyId` of `orgId` still works (not revoked, not expired, not gone): what a token exchanged from
     * it depends on. Synchronous for a key this instance read within the cache lifetime, with no invalidation since.
     */
    isLive(orgId: string, keyId: string): boolean | Promise<boolean> {
      const hit = states.get(keyId);
      // a key found in one org is in no other; one not found in another org is read again for this one
      if (hit && (hit.found || hit.orgId === orgId)) return stateLive(hit, orgId);
      if (!isId("apiKey", keyId) || !isId("org", orgId)) return false;
      if (hit) void states.delete(keyId);
      return states.fetch(keyId, { orgId, keyId }).then((s) => stateLive(s, orgId));
    },

    /** Every cached key of the org (and every cached unknown secret) is stale from now. */
    invalidateOrg(orgId: string): void {
      // local caches: nothing to wait for
      void secrets.deleteGroup(orgId);
      void secrets.deleteGroup(NO_ORG);
      void states.deleteGroup(orgId);
    },

    /** Writes the usage counted so far (one UPDATE per org); runs every few seconds and on close. */
    flushUsage(): Promise<void> {
      flushing = flushing.then(flushNow);
      return flushing;
    },

    async close(): Promise<void> {
      clearInterval(timer);
      await verifier.flushUsage();
    },

    clearCache(): void {
      void secrets.clear();
      void states.clear();
      void hashes.clear();
    },
  };
  return verifier;
}

export type ApiKeyVerifier = ReturnType<typeof createApiKeyVerifier>;
