import type { Database, Executor } from "../../db/client.ts";
import { createCache } from "../../lib/cache.ts";
import type { Clock } from "../../lib/clock.ts";
import { platformError } from "../../lib/errors.ts";
import { newId } from "../../lib/ids.ts";
import { isUniqueViolation } from "../../lib/pg-errors.ts";
import type { AccessService, OrgMembership } from "../access/access.service.ts";
import { requireWithin } from "../access/authority.ts";
import { BUILT_IN_ROLES, isBuiltInRole } from "../access/permissions.ts";
import { type AuditActor, type AuditService, PLATFORM_AUDIT_ORG } from "../audit/audit.service.ts";
import { accountStanding } from "../identity/index.ts";
import { serviceKeysError } from "./service-keys.errors.ts";
import { toPublicJwk, type PublicJwk } from "./service-keys.jwk.ts";
import { PLATFORM_ORG, publishedKeysQuery, type KeyOwner, type ServiceKeyRow, type ServiceKeysRepo } from "./service-keys.repo.ts";
import type { RegisterServiceKeyBody, UpdateServiceKeyBody } from "./service-keys.schemas.ts";

/** The platform-wide registry's events go to the platform's audit chain (never an org_… id: no org route reads it). */
export { PLATFORM_AUDIT_ORG };

/** Who manages keys: a member of an org (their membership there), or a platform admin (the platform registry). */
export type KeyCaller = { kind: "org"; membership: OrgMembership } | { kind: "platform"; userId: string };

export interface JwksOptions {
  /** A published key set is re-read after this long even without a change (changes elsewhere arrive by the bus). */
  cacheTtlMs?: number;
}

const ownerOf = (c: KeyCaller): KeyOwner => (c.kind === "org" ? c.membership.orgId : null);
const invalid = (field: string, detail: string) => platformError("VALIDATION_FAILED", detail, { field });
const notFound = (id: string) => serviceKeysError("SERVICE_KEY_NOT_FOUND", `No service key ${id.slice(0, 40)} here.`, { field: "serviceKeyId" });

/**
 * The service key registry: services' public keys, per org or platform-wide, with the roles their self-signed tokens
 * act with. Nobody gives a key more than they hold (platform admins: any built-in role). Each change commits with
 * its audit event and then invalidates the org's (or the platform's) cached facts on every instance, so a revoked
 * key's tokens stop at the next request anywhere. The JWKS of each org and of the platform is published separately.
 */
export function createServiceKeysService(deps: {
  db: Database;
  clock: Clock;
  repo: ServiceKeysRepo;
  audit: Pick<AuditService, "record">;
  access: Pick<AccessService, "permissionsOfRoles" | "invalidate">;
  options?: JwksOptions;
}) {
  const { db, clock, repo, audit, access } = deps;

  /** 403 unless the user is a platform admin now (read in the change's transaction, so a demotion holds at once). */
  async function requirePlatformAdmin(tx: Executor, caller: KeyCaller): Promise<void> {
    if (caller.kind !== "platform") return;
    const u = await accountStanding(tx, caller.userId);
    if (!u?.isPlatformAdmin || u.disabledAt)
      throw serviceKeysError("PLATFORM_ADMIN_REQUIRED", "The platform-wide service key registry is for platform admins.");
  }

  /**
   * The roles a key may be given: an org's key, built-in or the org's custom roles (400 naming `roles.<i>` otherwise)
   * holding nothing the caller lacks (authority.ts: 403 with every missing permission); a platform key, built-in roles
   * only (there is no org to look a custom role up in, and a platform admin may give any).
   */
  async function requireAssignable(tx: Executor, caller: KeyCaller, roles: readonly string[]): Promise<void> {
    if (caller.kind === "platform") {
      roles.forEach((role, i) => {
        if (!isBuiltInRole(role))
          throw invalid(`roles.${i}`, `A platform-wide key takes built-in roles only (${Object.keys(BUILT_IN_ROLES).join(", ")}); ${role} is not one.`);
      });
      return;
    }
    requireWithin(caller.membership, await access.permissionsOfRoles(tx, caller.membership.orgId, roles), { subject: "The service key", field: "roles" });
  }

  async function load(tx: Executor, owner: KeyOwner, id: string, lock = false): Promise<ServiceKeyRow> {
    const row = await repo.findById(tx, owner, id, lock);
    if (!row) throw notFound(id);
    return row;
  }

  /** Commits, then drops the owner's cached keys everywhere (the platform registry's under PLATFORM_ORG). */
  async function change<T>(caller: KeyCaller, fn: (tx: Executor) => Promise<T>): Promise<T> {
    const owner = ownerOf(caller);
    const out = await db.tx({ orgId: owner }, async (tx) => {
      await requirePlatformAdmin(tx, caller);
      return fn(tx);
    });
    await access.invalidate(owner ?? PLATFORM_ORG);
    return out;
  }

  /** The audit event, in the org's chain or (moving the transaction there: its last step) the platform's. */
  async function record(tx: Executor, caller: KeyCaller, actor: AuditActor, action: string, id: string, diff: Record<string, unknown>): Promise<void> {
    const owner = ownerOf(caller);
    if (owner === null) await db.actFor(tx, PLATFORM_AUDIT_ORG);
    await audit.record(tx, actor, { orgId: owner ?? PLATFORM_AUDIT_ORG, action, target: { type: "service_key", id }, diff });
  }

  // Published key sets per owner ("" the platform's), dropped by every change of that owner (lib/cache.ts).
  type PublishedSet = { keys: { service: string; jwk: PublicJwk }[]; until: number | undefined };
  const published = createCache<PublishedSet>({
    name: "service-keys.jwks",
    max: 10_000,
    ttlMs: deps.options?.cacheTtlMs ?? 15_000,
    clock,
    group: (owner) => owner,
    // an expiring key leaves the set when it expires, not a TTL later
    staleAt: (set) => set.until,
    fetch: async (owner) => {
      const rows = await db.readScoped<{ service: string; public_jwk: PublicJwk; expires_at: string | Date | null }>(
        { orgId: owner },
        publishedKeysQuery(owner, clock.now()),
      );
      let until: number | undefined;
      for (const r of rows) if (r.expires_at !== null) until = Math.min(until ?? Number.POSITIVE_INFINITY, new Date(r.expires_at).getTime());
      return { keys: rows.map((r) => ({ service: r.service, jwk: r.public_jwk })), until };
    },
  });

  async function publishedOf(owner: string): Promise<{ service: string; jwk: PublicJwk }[]> {
    return (published.get(owner) ?? (await published.fetch(owner))).keys;
  }

  return {
    async register(caller: KeyCaller, input: RegisterServiceKeyBody, actor: AuditActor): Promise<ServiceKeyRow> {
      const jwk = await toPublicJwk({ jwk: input.jwk, kid: input.kid, alg: input.alg });
      const now = clock.now();
      const expiresAt = input.expires_at ? new Date(input.expires_at) : null;
      if (expiresAt && expiresAt.getTime() <= now.getTime()) throw invalid("expires_at", "expires_at must be in the future.");
      const roles = [...new Set(input.roles ?? [])];
      const owner = ownerOf(caller);
      try {
        return await change(caller, async (tx) => {
          await requireAssignable(tx, caller, roles);
          const row = await repo.insert(tx, {
            id: newId("serviceKey", now.getTime()),
            orgId: owner,
            service: input.service,
            kid: jwk.kid,
            alg: jwk.alg,
            publicJwk: jwk,
            roles,
            description: input.description ?? "",
            expiresAt,
            createdBy: actor.id,
            createdAt: now,
          });
          await record(tx, caller, actor, "service_key.registered", row.id, {
            service: [null, row.service],
            kid: [null, row.kid],
            alg: [null, row.alg],
            roles: [null, roles],
            description: [null, row.description],
            expires_at: [null, expiresAt?.toISOString() ?? null],
          });
          return row;
        });
      } catch (e) {
        if (isUniqueViolation(e))
          throw serviceKeysError(
            "SERVICE_KEY_KID_TAKEN",
            `A service key with kid ${jwk.kid} is already registered (kids are never reused, revoked ones included).`,
            { field: "kid" },
          );
        throw e;
      }
    },

    list(caller: KeyCaller, opts: { service?: string; includeRevoked: boolean; after?: string; limit: number }): Promise<ServiceKeyRow[]> {
      return db.tx({ orgId: ownerOf(caller) }, async (tx) => {
        await requirePlatformAdmin(tx, caller);
        return repo.list(tx, ownerOf(caller), opts);
      });
    },

    get(caller: KeyCaller, id: string): Promise<ServiceKeyRow> {
      return db.tx({ orgId: ownerOf(caller) }, async (tx) => {
        await requirePlatformAdmin(tx, caller);
        return load(tx, ownerOf(caller), id);
      });
    },

    /** New roles take effect on the key's next token, on every instance. */
    async update(caller: KeyCaller, id: string, input: UpdateServiceKeyBody, actor: AuditActor): Promise<ServiceKeyRow> {
      const owner = ownerOf(caller);
      return change(caller, async (tx) => {
        const row = await load(tx, owner, id, true);
        if (row.revokedAt) throw serviceKeysError("SERVICE_KEY_REVOKED", "The service key is revoked; it cannot be changed. Register a new one.");
        const next = { description: input.description ?? row.description, roles: input.roles ? [...new Set(input.roles)] : row.roles };
        if (input.roles) await requireAssignable(tx, caller, next.roles);
        const diff: Record<string, [unknown, unknown]> = {};
        if (next.description !== row.description) diff.description = [row.description, next.description];
        if (next.roles.join("\u0000") !== row.roles.join("\u0000")) diff.roles = [row.roles, next.roles];
        if (!Object.keys(diff).length) return row;
        const updated = await repo.update(tx, owner, id, next);
        await record(tx, caller, actor, "service_key.updated", id, diff);
        return updated;
      });
    },

    /** Soft: the record stays, its tokens stop at the next request anywhere, it leaves the JWKS. Idempotent. */
    async revoke(caller: KeyCaller, id: string, actor: AuditActor): Promise<ServiceKeyRow> {
      const owner = ownerOf(caller);
      return change(caller, async (tx) => {
        const row = await load(tx, owner, id, true);
        if (row.revokedAt) return row;
        const updated = await repo.revoke(tx, owner, row, actor.id, clock.now());
        await record(tx, caller, actor, "service_key.revoked", id, { revoked: [false, true], kid: row.kid, service: row.service });
        return updated;
      });
    },

    /**
     * The published key set: the platform-wide registry's active keys, or one org's (`org`), optionally of one
     * service. Never both at once, and never naming the org of a key: tenants' keys are separate trust domains.
     */
    async jwks(org: string | undefined, service?: string): Promise<{ keys: PublicJwk[] }> {
      const keys = await publishedOf(org ?? PLATFORM_ORG);
      return { keys: keys.filter((k) => service === undefined || k.service === service).map((k) => k.jwk) };
    },

    /** The owner's keys changed (here or on another instance): its published set is re-read on the next request. */
    invalidateJwks(owner: string): void {
      void published.deleteGroup(owner); // a local cache: nothing to wait for
    },
  };
}

export type ServiceKeysService = ReturnType<typeof createServiceKeysService>;
