import { decodeProtectedHeader, importJWK, type JWK } from "jose";
import type { Logger } from "pino";
import type { Database } from "../../db/client.ts";
import type { ServicePrincipal, ServiceTokenAuthenticator } from "../access/principal.ts";
import type { ServiceMemberships } from "../access/principal.ts";
import type { Clock } from "../../lib/clock.ts";
import { createCache } from "../../lib/cache.ts";
import { AppError } from "../../lib/errors.ts";
import type { OrgMembership } from "../access/access.service.ts";
import { refuse, SERVICE_CLOCK_TOLERANCE_SECONDS, verifyServiceToken } from "./service-keys.claims.ts";
import { permissionsOfRolesIn } from "../access/authority.ts";
import type { Permission } from "../access/permissions.ts";
import {
  keyAuthQuery,
  kidIndexQuery,
  orgLiveQuery,
  PLATFORM_ORG,
  type KeyAuthRow,
  type KeyOwner,
  type KidIndexRow,
  type ServiceKeysRepo,
} from "./service-keys.repo.ts";

export interface ServiceTokenOptions {
  /** A registration is re-read after this long even without an invalidation (a lost bus message heals by then). */
  cacheTtlMs?: number;
  maxEntries?: number;
  /** How often batched last_used_at is written. */
  flushIntervalMs?: number;
}

/** What this instance knows of a registration (by kid). */
interface Registration {
  id: string;
  orgId: string | null;
  service: string;
  alg: string;
  key: Awaited<ReturnType<typeof importJWK>>;
  roles: readonly string[];
  permissions: ReadonlySet<Permission>;
  expiresAt: number | null;
  revoked: boolean;
  /** An org key's membership in its org (undefined once the org is deleted); platform keys build one per org. */
  membership: OrgMembership | undefined;
  platformMemberships: Map<string, OrgMembership>;
}
/** A token whose signature and claims checked out; its registration's state is judged afresh on every use. */
interface SeenToken {
  token: string;
  kid: string;
  exp: number;
  org: string | undefined;
  reg: Registration;
  principal: ServicePrincipal;
}

const TOKEN_CACHE_KEY_CHARS = 16;
const toMs = (v: string | Date | null) => (v === null ? null : new Date(v).getTime());

function membershipOf(reg: Registration, orgId: string): OrgMembership {
  // a service acts on RBAC alone: grants and teams are for people
  return {
    orgId,
    userId: reg.id,
    role: "service",
    permissions: reg.permissions,
    rolePermissions: reg.permissions,
    peer: [],
    teams: [],
    teamReach: new Set(),
    permissionsOnly: true,
  };
}

/**
 * Checks JWTs that services sign with keys of the registry (the auth hook asks only about tokens whose kid is none of
 * Plinth's own): the token's `iss` and `sub` must be the registered service, `aud` Plinth's audience, `exp` at most
 * an hour after `iat`, signed with the registration's one alg. Registrations are cached per instance for a short
 * time (lib/cache.ts), grouped by their org (the platform registry's under ""), so a change made anywhere (through
 * the access invalidation bus) holds from the next request. Usage is written in batches.
 */
export function createServiceTokenVerifier(deps: {
  db: Database;
  clock: Clock;
  log: Logger;
  audience: string;
  repo: Pick<ServiceKeysRepo, "touch">;
  options?: ServiceTokenOptions;
}) {
  const { db, clock, log, audience, repo } = deps;
  const ttlMs = deps.options?.cacheTtlMs ?? 10_000;
  const max = deps.options?.maxEntries ?? 50_000;
  /** Unknown kids belong to no owner: a group every invalidation drops (a new registration may be among them). */
  const UNKNOWN = "\u0000unknown";
  /** Registrations by kid, grouped by owner (an org, or "" the platform); null: no such kid. */
  const registry = createCache<Registration | null>({
    name: "service-keys.registry",
    max,
    ttlMs,
    clock,
    group: (_kid, reg) => (reg ? (reg.orgId ?? PLATFORM_ORG) : UNKNOWN),
    fetch: (kid) => load(kid),
  });
  /** Tokens whose signature and claims checked out, by their last characters; their expiry is judged on every use. */
  const seen = createCache<SeenToken>({ name: "service-keys.tokens", max, clock });
  const orgsLive = createCache<boolean>({
    name: "service-keys.orgs",
    max,
    ttlMs,
    clock,
    group: (orgId) => orgId,
    fetch: async (orgId) => (await db.readScoped<{ live: number }>({ orgId }, orgLiveQuery(orgId))).length > 0,
  });
  const regOf = new WeakMap<ServicePrincipal, Registration>();

  async function load(kid: string): Promise<Registration | null> {
    const [ix] = await db.readScoped<KidIndexRow>({}, kidIndexQuery(kid));
    if (!ix) return null;
    const [row] = await db.readScoped<KeyAuthRow>({ orgId: ix.org_id }, keyAuthQuery(ix.org_id, ix.credential_id));
    if (!row) return null;
    let key: Registration["key"];
    try {
      key = await importJWK(row.public_jwk as JWK, row.alg);
    } catch (e) {
      log.error({ err: (e as Error).message, serviceKeyId: row.id }, "a registered service key does not import");
      return null;
    }
    const permissions = permissionsOfRolesIn(row.roles, row.custom);
    const reg: Registration = {
      id: row.id,
      orgId: row.org_id,
      service: row.service,
      alg: row.alg,
      key,
      roles: row.roles,
      permissions,
      expiresAt: toMs(row.expires_at),
      revoked: row.revoked_at !== null,
      membership: undefined,
      platformMemberships: new Map(),
    };
    if (reg.orgId !== null && row.org_live) reg.membership = membershipOf(reg, reg.orgId);
    return reg;
  }

  function registration(kid: string): Registration | null | Promise<Registration | null> {
    const hit = registry.get(kid);
    return hit !== undefined ? hit : registry.fetch(kid);
  }

  /** The registration's own state: undefined when its tokens may be accepted. */
  function refusal(reg: Registration | null, nowMs: number): AppError | undefined {
    if (!reg) return refuse("unknown_key", "The token's kid names no Plinth signing key and no registered service key.");
    if (reg.revoked) return refuse("revoked", "The service key that signed this token has been revoked.");
    if (reg.expiresAt !== null && nowMs >= reg.expiresAt)
      return refuse("key_expired", "The service key that signed this token has expired; register a new one.");
    return undefined;
  }

  function principalOf(reg: Registration, org: string | undefined): ServicePrincipal {
    const p: ServicePrincipal = { kind: "service", serviceKeyId: reg.id, service: reg.service, keyOrgId: reg.orgId, orgId: reg.orgId ?? org, roles: reg.roles };
    regOf.set(p, reg);
    return p;
  }

  /** Accepts a token seen before while its registration still stands; rebuilds the principal if that was re-read. */
  function accept(hit: SeenToken, reg: Registration | null, nowMs: number): ServicePrincipal | AppError {
    const no = refusal(reg, nowMs);
    if (no || !reg) return no as AppError;
    if (hit.exp + SERVICE_CLOCK_TOLERANCE_SECONDS <= nowMs / 1000) {
      void seen.delete(hit.token.slice(-TOKEN_CACHE_KEY_CHARS));
      return refuse("expired", "The token has expired; sign a new one.");
    }
    if (hit.reg !== reg) {
      hit.reg = reg;
      hit.principal = principalOf(reg, hit.org);
    }
    countUse(reg, nowMs);
    return hit.principal;
  }

  async function verifyFirst(token: string): Promise<ServicePrincipal | AppError> {
    let kid: unknown;
    try {
      kid = decodeProtectedHeader(token).kid;
    } catch {
      return refuse("malformed", "The access token is not a well-formed JWT.");
    }
    if (typeof kid !== "string" || kid.length > 128) return refuse("unknown_key", "The token's header names no kid Plinth knows.");
    const reg = await registration(kid);
    const nowMs = clock.now().getTime();
    const no = refusal(reg, nowMs);
    if (no || !reg) return no as AppError;
    const checked = await verifyServiceToken(token, reg, audience, new Date(nowMs));
    if (checked instanceof AppError) return checked;
    const { exp, org } = checked;
    const principal = principalOf(reg, org);
    seen.set(token.slice(-TOKEN_CACHE_KEY_CHARS), { token, kid, exp, org, reg, principal });
    countUse(reg, nowMs);
    return principal;
  }

  const usage = new Map<string, { owner: KeyOwner; lastUsedAt: Date }>();
  function countUse(reg: Registration, nowMs: number): void {
    const u = usage.get(reg.id);
    if (u) u.lastUsedAt = new Date(nowMs);
    else usage.set(reg.id, { owner: reg.orgId, lastUsedAt: new Date(nowMs) });
  }

  let flushing: Promise<void> = Promise.resolve();
  async function flushNow(): Promise<void> {
    if (!usage.size) return;
    const byOwner = new Map<KeyOwner, { id: string; lastUsedAt: Date }[]>();
    for (const [id, u] of usage) {
      const list = byOwner.get(u.owner) ?? [];
      list.push({ id, lastUsedAt: u.lastUsedAt });
      byOwner.set(u.owner, list);
    }
    usage.clear();
    for (const [owner, list] of byOwner) {
      try {
        await db.tx({ orgId: owner }, (tx) => repo.touch(tx, owner, list));
      } catch (e) {
        log.warn({ err: (e as Error).message, orgId: owner }, "could not record service key usage");
      }
    }
  }
  const timer = setInterval(() => void verifier.flushUsage(), deps.options?.flushIntervalMs ?? 5_000);
  timer.unref();

  function orgLive(orgId: string): Promise<boolean> {
    const hit = orgsLive.get(orgId);
    return hit !== undefined ? Promise.resolve(hit) : orgsLive.fetch(orgId);
  }

  const verifier: ServiceTokenAuthenticator &
    ServiceMemberships & { invalidateOrg(owner: string): void; flushUsage(): Promise<void>; close(): Promise<void>; clearCache(): void } = {
    authenticate(token) {
      const hit = seen.get(token.slice(-TOKEN_CACHE_KEY_CHARS));
      if (hit && hit.token === token) {
        const reg = registration(hit.kid);
        return reg instanceof Promise ? reg.then((r) => accept(hit, r, clock.now().getTime())) : accept(hit, reg, clock.now().getTime());
      }
      return verifyFirst(token);
    },

    /**
     * What a service's token may do in `orgId`: an org key, its roles' permissions in its own org while that org
     * lives; a platform key, its (built-in) roles' in the org its token names, while that org lives. Else nothing.
     */
    membership(principal, orgId) {
      const reg = regOf.get(principal);
      if (!reg || principal.orgId !== orgId) return undefined;
      if (reg.orgId !== null) return reg.membership;
      return orgLive(orgId).then((live) => {
        if (!live) return undefined;
        let m = reg.platformMemberships.get(orgId);
        if (!m) {
          if (reg.platformMemberships.size >= 1000) reg.platformMemberships.clear();
          reg.platformMemberships.set(orgId, (m = membershipOf(reg, orgId)));
        }
        return m;
      });
    },

    /** Every cached registration of the owner (an org, or "" the platform), and every unknown kid, is stale now. */
    invalidateOrg(owner: string): void {
      // local caches: nothing to wait for
      void registry.deleteGroup(owner);
      void registry.deleteGroup(UNKNOWN);
      void orgsLive.deleteGroup(owner);
    },

    /** Writes the usage counted so far (one UPDATE per owner); runs every few seconds and on close. */
    flushUsage(): Promise<void> {
      flushing = flushing.then(flushNow);
      return flushing;
    },

    async close(): Promise<void> {
      clearInterval(timer);
      await verifier.flushUsage();
    },

    clearCache(): void {
      void registry.clear();
      void seen.clear();
      void orgsLive.clear();
    },
  };
  return verifier;
}

export type ServiceTokenVerifier = ReturnType<typeof createServiceTokenVerifier>;
