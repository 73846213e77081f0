import type { Database, Executor } from "../../db/client.ts";
import type { Principal } from "../access/principal.ts";
import type { Clock } from "../../lib/clock.ts";
import { platformError } from "../../lib/errors.ts";
import { isId, newId } from "../../lib/ids.ts";
import { isUniqueViolation } from "../../lib/pg-errors.ts";
import type { AccessService, OrgMembership } from "../access/access.service.ts";
import type { Permission } from "../access/permissions.ts";
import { actsAsRole, requireWithin } from "../access/authority.ts";
import { isPersonSelf, type Principals } from "../access/principal.ts";
import type { AuditActor, AuditService } from "../audit/audit.service.ts";
import { apiKeysError } from "./api-keys.errors.ts";
import { displayPrefix, hashSecret, newSecret } from "./api-keys.format.ts";
import type { ApiKeyRow, ApiKeysRepo } from "./api-keys.repo.ts";
import { parseCidr } from "./api-keys.verifier.ts";

export interface CreateKeyInput {
  name: string;
  roles?: string[];
  permissions?: Permission[];
  inherit?: boolean;
  not_before?: string;
  expires_at?: string;
  ip_allowlist?: string[];
  rate_limit_per_minute?: number;
}

/**
 * The owner of a new key when it is not the caller: a service account the caller manages. `permissions` reads the
 * account's authority now, inside the creating transaction (and throws when the account is gone or disabled).
 */
export interface KeyOwner {
  type: "service_account";
  id: string;
  permissions(tx: Executor): Promise<ReadonlySet<Permission>>;
}

/** The caller of a key route: its membership in the org (narrowed, for a key) and who it is. */
export interface KeyCaller {
  membership: OrgMembership;
  principal: Principal;
}

/** Seven days: the longest a rotated-out secret may keep working. */
export const MAX_GRACE_SECONDS = 7 * 86_400;

const notFound = (ref: string) => apiKeysError("API_KEY_NOT_FOUND", `No API key ${ref.slice(0, 80)} in this organization.`, { field: "name" });
const invalid = (field: string, detail: string) => platformError("VALIDATION_FAILED", detail, { field });

/**
 * API keys of an org: create (never more than the creator holds), list, rename, change roles, rotate with a grace
 * period, revoke (soft). Each change commits with its audit event and then invalidates the org's access facts, which
 * drops the org's cached keys on every instance: the next request sees it. The secret leaves only in the answer to
 * create and rotate.
 */
export function createApiKeysService(deps: {
  db: Database;
  clock: Clock;
  repo: ApiKeysRepo;
  audit: Pick<AuditService, "record">;
  access: Pick<AccessService, "permissionsOfRoles" | "invalidate">;
  /** What a key can do now (its owner's authority narrowed to the key): rotation hands over no more than the caller holds. */
  principals: Pick<Principals, "membershipOf">;
}) {
  const { db, clock, repo, audit, access, principals } = deps;
  const permissionsOfRoles = (tx: Executor, orgId: string, roles: readonly string[]) => access.permissionsOfRoles(tx, orgId, roles);
  /** The one rule (access/authority.ts): a key never holds more than whoever makes or re-issues it. */
  const requireSubset = (caller: OrgMembership, wanted: ReadonlySet<Permission>) => requireWithin(caller, wanted, { subject: "A key" });
  const requireWithinOwner = (owner: ReadonlySet<Permission>, wanted: ReadonlySet<Permission>) =>
    requireWithin(owner, wanted, { subject: "A key", holder: "its service account" });

  /**
   * Whoever receives a key's new secret gets all the key can do: its roles and permissions as its owner holds them
   * now, or for an inheriting key everything its owner holds. 403 naming what the caller lacks.
   */
  async function requireHoldsKey(caller: OrgMembership, row: ApiKeyRow): Promise<void> {
    const own = await db.tx({ orgId: caller.orgId }, async (tx) => {
      const set = await permissionsOfRoles(tx, caller.orgId, row.roles);
      for (const p of row.permissions) set.add(p as Permission);
      return set;
    });
    const scope = row.inherit ? ("inherit" as const) : own;
    const now = await principals.membershipOf(
      { kind: "api_key", keyId: row.id, orgId: row.orgId, ownerType: row.ownerType as "user" | "service_account", ownerId: row.ownerId, scope },
      caller.orgId,
    );
    // an owner who cannot act now (a disabled account) may again: hold all the key itself names, or, inheriting, refuse
    if (!now && row.inherit)
      throw platformError("FORBIDDEN", "This key inherits from an owner who cannot act now; it cannot be rotated until they can.", {
        extra: { permission: "keys:manage" },
      });
    requireWithin(caller, now ? now.permissions : own, { subject: "This key (rotating it hands you its secret)" });
  }

  /** A key by id (`key_…`, revoked ones too) or live name: the caller's own of that name first, else the org's only one. */
  async function resolve(ex: Executor, caller: OrgMembership, ref: string, lock = false): Promise<ApiKeyRow> {
    const { orgId } = caller;
    if (isId("apiKey", ref)) {
      const row = await repo.findById(ex, orgId, ref, lock);
      if (!row) throw notFound(ref);
      return row;
    }
    const rows = await repo.findLiveByName(ex, orgId, ref);
    // ids are prefixed (usr_, sa_), so an owner id names one owner whatever its type
    const mine = rows.find((r) => r.ownerId === caller.userId);
    const row = mine ?? (rows.length === 1 ? rows[0] : undefined);
    if (!row) {
      if (rows.length > 1)
        throw apiKeysError("API_KEY_NAME_AMBIGUOUS", `${rows.length} owners have a key named ${ref}: name it by its key_… id.`, { field: "name" });
      throw notFound(ref);
    }
    return lock ? ((await repo.findById(ex, orgId, row.id, true)) ?? row) : row;
  }

  /**
   * Changing a key: its owner (with the route's permission), or anyone holding keys:manage; never a revoked key.
   * Revoking a service account's key also needs no more than service-accounts:manage: ending authority widens nothing.
   */
  function requireManage(caller: OrgMembership, row: ApiKeyRow, allowRevoked = false, revoking = false): void {
    const own = row.ownerId === caller.userId;
    const accountManager = revoking && row.ownerType === "service_account" && caller.permissions.has("service-accounts:manage");
    if (!own && !accountManager && !caller.permissions.has("keys:manage")) {
      throw platformError("FORBIDDEN", "This key is another member's: changing it needs the keys:manage permission, which you do not have.", {
        extra: { permission: "keys:manage" },
      });
    }
    if (row.revokedAt && !allowRevoked) throw apiKeysError("API_KEY_REVOKED", "The key is revoked; it cannot be changed.");
  }

  function validateWindow(input: CreateKeyInput, now: Date): { notBefore: Date | null; expiresAt: Date | null } {
    const notBefore = input.not_before ? new Date(input.not_before) : null;
    const expiresAt = input.expires_at ? new Date(input.expires_at) : null;
    if (expiresAt && expiresAt.getTime() <= now.getTime()) throw invalid("expires_at", "expires_at must be in the future.");
    if (expiresAt && notBefore && expiresAt.getTime() <= notBefore.getTime()) throw invalid("expires_at", "expires_at must be after not_before.");
    return { notBefore, expiresAt };
  }

  function validateAllowlist(list: readonly string[]): string[] {
    for (const [i, c] of list.entries()) {
      if (!parseCidr(c))
        throw invalid(`ip_allowlist.${i}`, `ip_allowlist entry ${JSON.stringify(c.slice(0, 64))} is not an IP address or CIDR (10.0.0.0/8, 2001:db8::/32).`);
    }
    return [...list];
  }

  /** Commits, then drops the org's cached keys and access facts everywhere. */
  async function change<T>(orgId: string, fn: (tx: Executor) => Promise<T>): Promise<T> {
    const out = await db.tx({ orgId }, fn);
    await access.invalidate(orgId);
    return out;
  }

  return {
    /**
     * A key owned by the caller (a member, or a service account by its token or key), or, with `owner`, by a service
     * account the caller manages: then the caller needs keys:create too, and the key's permissions must be both the
     * caller's and the account's (403 naming the first missing).
     */
    async create(caller: KeyCaller, input: CreateKeyInput, actor: AuditActor, owner?: KeyOwner): Promise<{ row: ApiKeyRow; secret: string }> {
      const m = caller.membership;
      const now = clock.now();
      const roles = [...new Set(input.roles ?? [])];
      const permissions = [...new Set(input.permissions ?? [])];
      const inherit = input.inherit ?? false;
      const ownerType = owner ? owner.type : isId("serviceAccount", m.userId) ? "service_account" : "user";
      const ownerId = owner ? owner.id : m.userId;
      if (!owner && !isId("user", m.userId) && !isId("serviceAccount", m.userId)) {
        throw apiKeysError("KEY_OWNER_UNSUPPORTED", "API keys are owned by members and service accounts: this caller cannot own one.");
      }
      if (owner && !m.permissions.has("keys:create")) {
        throw platformError("FORBIDDEN", "Creating a service account's key needs the keys:create permission, which you do not have.", {
          extra: { permission: "keys:create" },
        });
      }
      // a signed-in person, not a key or an exchanged (narrowed) token: an inheriting key may grow past the token's scope
      const signedIn = isPersonSelf(caller.principal);
      if (inherit) {
        if (roles.length || permissions.length)
          throw invalid("inherit", "An inheriting key takes its owner's permissions: give no roles or permissions with inherit.");
        if (!signedIn || (!owner && !actsAsRole(m, "owner") && !actsAsRole(m, "admin"))) {
          throw apiKeysError(
            "INHERIT_NOT_ALLOWED",
            owner
              ? "Only a member signed in (not with a key or token) may create a service account's inheriting key."
              : "Only an owner or admin, signed in (not with a key or token), may create a key that inherits their permissions.",
            { field: "inherit" },
          );
        }
      } else if (!roles.length && !permissions.length) {
        throw invalid("roles", "A key needs roles, permissions, or inherit: true.");
      }
      const window = validateWindow(input, now);
      const allowlist = validateAllowlist(input.ip_allowlist ?? []);
      const secret = newSecret();
      const hash = hashSecret(secret);
      try {
        const row = await change(m.orgId, async (tx) => {
          const wanted = await permissionsOfRoles(tx, m.orgId, roles);
          for (const p of permissions) wanted.add(p);
          requireSubset(m, wanted);
          if (owner) {
            const held = await owner.permissions(tx);
            // an inheriting key holds all the account holds: the caller must hold all of it (as for its OAuth clients)
            if (inherit) requireSubset(m, held);
            else requireWithinOwner(held, wanted);
          }
          const row = await repo.insert(
            tx,
            {
              id: newId("apiKey", now.getTime()),
              orgId: m.orgId,
              name: input.name,
              ownerType,
              ownerId,
              prefix: displayPrefix(secret),
              secretHash: hash,
              roles,
              permissions,
              inherit,
              notBefore: window.notBefore,
              expiresAt: window.expiresAt,
              ipAllowlist: allowlist,
              rateLimitPerMinute: input.rate_limit_per_minute ?? null,
              createdBy: actor.id,
              createdAt: now,
              updatedAt: now,
            },
            hash,
          );
          await audit.record(tx, actor, {
            orgId: m.orgId,
            action: "key.created",
            target: { type: "api_key", id: row.id },
            diff: {
              name: [null, row.name],
              owner: [null, `${row.ownerType}:${row.ownerId}`],
              prefix: [null, row.prefix],
              roles: [null, roles],
              permissions: [null, permissions],
              inherit: [null, inherit],
              not_before: [null, window.notBefore?.toISOString() ?? null],
              expires_at: [null, window.expiresAt?.toISOString() ?? null],
              ip_allowlist: [null, allowlist],
              rate_limit_per_minute: [null, row.rateLimitPerMinute],
            },
          });
          return row;
        });
        return { row, secret };
      } catch (e) {
        if (isUniqueViolation(e)) {
          const who = ownerId === m.userId ? "You already have" : "The service account already has";
          throw apiKeysError("API_KEY_NAME_TAKEN", `${who} a key named ${input.name}.`, { field: "name" });
        }
        throw e;
      }
    },

    list(orgId: string, opts: { includeRevoked: boolean; after?: string; limit: number }): Promise<ApiKeyRow[]> {
      return db.tx({ orgId }, (tx) => repo.list(tx, orgId, opts));
    },

    get(caller: OrgMembership, ref: string): Promise<ApiKeyRow> {
      return db.tx({ orgId: caller.orgId }, (tx) => resolve(tx, caller, ref));
    },

    async rename(caller: OrgMembership, ref: string, name: string, actor: AuditActor): Promise<ApiKeyRow> {
      try {
        return await change(caller.orgId, async (tx) => {
          const row = await resolve(tx, caller, ref, true);
          requireManage(caller, row);
          if (row.name === name) return row;
          const updated = await repo.update(tx, caller.orgId, row.id, { name, updatedAt: clock.now() });
          await audit.record(tx, actor, {
            orgId: caller.orgId,
            action: "key.updated",
            target: { type: "api_key", id: row.id },
            diff: { name: [row.name, name] },
          });
          return updated;
        });
      } catch (e) {
        if (isUniqueViolation(e)) throw apiKeysError("API_KEY_NAME_TAKEN", `The key's owner already has a key named ${name}.`, { field: "name" });
        throw e;
      }
    },

    async setRoles(caller: OrgMembership, ref: string, roles: string[], actor: AuditActor): Promise<ApiKeyRow> {
      const next = [...new Set(roles)];
      return change(caller.orgId, async (tx) => {
        const row = await resolve(tx, caller, ref, true);
        requireManage(caller, row);
        if (row.inherit) throw apiKeysError("API_KEY_INHERITS", "This key inherits its owner's permissions; it has no roles of its own.");
        if (!next.length && !row.permissions.length) throw invalid("roles", "A key needs roles or permissions: this one has no permissions of its own.");
        const wanted = await permissionsOfRoles(tx, caller.orgId, next);
        for (const p of row.permissions) wanted.add(p as Permission);
        requireSubset(caller, wanted);
        if (next.length === row.roles.length && next.every((r, i) => r === row.roles[i])) return row;
        const updated = await repo.update(tx, caller.orgId, row.id, { roles: next, updatedAt: clock.now() });
        await audit.record(tx, actor, {
          orgId: caller.orgId,
          action: "key.roles_changed",
          target: { type: "api_key", id: row.id },
          diff: { roles: [row.roles, next] },
        });
        return updated;
      });
    },

    /** A new secret; the old one works until now + grace (0: stops at once). */
    async rotate(
      caller: OrgMembership,
      ref: string,
      graceSeconds: number,
      actor: AuditActor,
    ): Promise<{ row: ApiKeyRow; secret: string; previousExpiresAt: Date }> {
      const now = clock.now();
      const until = new Date(now.getTime() + graceSeconds * 1000);
      const secret = newSecret();
      const hash = hashSecret(secret);
      // what the key can do is read before the transaction (the access engine reads on its own connections)
      const before = await db.tx({ orgId: caller.orgId }, (tx) => resolve(tx, caller, ref));
      requireManage(caller, before);
      await requireHoldsKey(caller, before);
      return change(caller.orgId, async (tx) => {
        const row = await resolve(tx, caller, before.id, true);
        requireManage(caller, row);
        const same = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x, i) => x === b[i]);
        if (row.inherit !== before.inherit || row.ownerId !== before.ownerId || !same(row.roles, before.roles) || !same(row.permissions, before.permissions)) {
          throw apiKeysError("API_KEY_CHANGED", "The key changed while it was being rotated; try again.");
        }
        await repo.expireSecrets(tx, row.id, until);
        await repo.addSecret(tx, caller.orgId, row.id, hash, now);
        const updated = await repo.update(tx, caller.orgId, row.id, { secretHash: hash, prefix: displayPrefix(secret), updatedAt: now });
        await audit.record(tx, actor, {
          orgId: caller.orgId,
          action: "key.rotated",
          target: { type: "api_key", id: row.id },
          diff: { prefix: [row.prefix, updated.prefix], grace_seconds: graceSeconds, previous_secret_expires_at: until.toISOString() },
        });
        return { row: updated, secret, previousExpiresAt: until };
      });
    },

    /** Soft delete: the key stops working at once; the record and its audit trail stay. */
    async revoke(caller: OrgMembership, ref: string, actor: AuditActor): Promise<ApiKeyRow> {
      const now = clock.now();
      return change(caller.orgId, async (tx) => {
        const row = await resolve(tx, caller, ref, true);
        requireManage(caller, row, true, true);
        if (row.revokedAt) return row;
        await repo.expireSecrets(tx, row.id, now);
        const by = actor.id;
        const updated = await repo.update(tx, caller.orgId, row.id, { revokedAt: now, revokedBy: by, revokedReason: "revoked", updatedAt: now });
        await audit.record(tx, actor, {
          orgId: caller.orgId,
          action: "key.revoked",
          target: { type: "api_key", id: row.id },
          diff: { revoked_reason: [null, "revoked"] },
        });
        return updated;
      });
    },
  };
}

export type ApiKeysService = ReturnType<typeof createApiKeysService>;
