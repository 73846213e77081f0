import { randomBytes } from "node:crypto";
import type { Database, Executor } from "../../db/client.ts";
import type { LiveClients, ServiceAccountMemberships } from "../access/principal.ts";
import { requireWithin } from "../access/authority.ts";
import type { Clock } from "../../lib/clock.ts";
import { createCache, createKeyJoiner, firstPartOf } from "../../lib/cache.ts";
import { newId } from "../../lib/ids.ts";
import { isUniqueViolation } from "../../lib/pg-errors.ts";
import type { AccessService, OrgMembership } from "../access/access.service.ts";
import type { Permission } from "../access/permissions.ts";
import type { AuditActor, AuditService } from "../audit/audit.service.ts";
import { hashSecret, sameHash } from "../keys/api-keys.format.ts";
import type { ApiKeyRow } from "../keys/index.ts";
import type { KeyOwnerOps } from "../keys/api-keys.owners.ts";
import type { ApiKeysService, CreateKeyInput, KeyCaller } from "../keys/api-keys.service.ts";
import { serviceAccountsError } from "./service-accounts.errors.ts";
import {
  accountRolesQuery,
  clientAuthQuery,
  clientIndexQuery,
  type ClientAuthRow,
  type OAuthClientRow,
  type ServiceAccountRow,
  type ServiceAccountsRepo,
} from "./service-accounts.repo.ts";

export interface CreateServiceAccountInput {
  name: string;
  description?: string;
  roles: string[];
}
export type UpdateServiceAccountInput = Partial<CreateServiceAccountInput>;

/** Client secrets: a readable prefix (for secret scanners) and 256 random bits. */
const CLIENT_SECRET_PREFIX = "plcs_";
const CLIENT_SECRET = /^plcs_[A-Za-z0-9_-]{43}$/;

const notFound = (id: string) =>
  serviceAccountsError("SERVICE_ACCOUNT_NOT_FOUND", `No service account ${id.slice(0, 40)} in this organization.`, { field: "serviceAccountId" });

/**
 * Service accounts of an org: non-human principals holding roles like a member's, and their OAuth client
 * credentials. Nobody gives an account (or a credential acting as it) more than they hold themselves. Each change
 * commits with its audit event and then invalidates the org's access facts, so a disabled account's tokens and
 * clients stop at the next request on every instance.
 */
export function createServiceAccountsService(deps: {
  db: Database;
  clock: Clock;
  repo: ServiceAccountsRepo;
  audit: Pick<AuditService, "record">;
  access: Pick<AccessService, "rolePermissions" | "permissionsOfRoles" | "invalidate" | "onInvalidate">;
  apiKeys: Pick<ApiKeysService, "create">;
  /** The keys module's functions for an owner's keys: a deleted account's keys are revoked through them. */
  keyOwners: Pick<KeyOwnerOps, "revokeAllOf">;
  cacheTtlMs?: number;
}) {
  const { db, clock, repo, audit, access, apiKeys, keyOwners } = deps;
  const ttlMs = deps.cacheTtlMs ?? 30_000;

  const permissionsOfRoles = (tx: Executor, orgId: string, roles: readonly string[]) => access.permissionsOfRoles(tx, orgId, roles);
  /** Nobody gives an account, or a credential acting as it, more than they hold (access/authority.ts). */
  const requireSubset = (caller: OrgMembership, wanted: ReadonlySet<Permission>, subject: string) => requireWithin(caller, wanted, { subject });

  async function load(tx: Executor, orgId: string, id: string, lock = false): Promise<ServiceAccountRow> {
    const row = await repo.findById(tx, orgId, id, lock);
    if (!row) throw notFound(id);
    return row;
  }

  async function change<T>(orgId: string, fn: (tx: Executor) => Promise<T>): Promise<T> {
    const out = await db.tx({ orgId }, fn);
    await access.invalidate(orgId);
    return out;
  }

  const nameTaken = (name: string) =>
    serviceAccountsError("SERVICE_ACCOUNT_NAME_TAKEN", `This organization already has a service account named ${name}.`, { field: "name" });

  // Memberships of accounts and whether OAuth clients still stand, by org and id (lib/cache.ts), grouped by org:
  // every access invalidation of the org (here or, through the bus, elsewhere) drops them.
  const key = createKeyJoiner();
  const membershipCache = createCache<OrgMembership | null, { orgId: string; serviceAccountId: string }>({
    name: "service-accounts.memberships",
    max: 50_000,
    ttlMs,
    clock,
    group: firstPartOf,
    fetch: (_k, { orgId, serviceAccountId }) =>
      db.tx({ orgId }, async (tx) => {
        const res = (await tx.execute(accountRolesQuery(orgId, serviceAccountId))) as unknown as { rows: { roles: string[] }[] };
        const row = res.rows[0];
        if (!row) return null;
        const permissions = new Set<Permission>();
        for (const role of row.roles) for (const p of (await access.rolePermissions(tx, orgId, role)) ?? []) permissions.add(p);
        // a service account acts on RBAC alone: grants and teams are for people
        return {
          orgId,
          userId: serviceAccountId,
          role: "service_account",
          permissions,
          rolePermissions: permissions,
          peer: [],
          teams: [],
          teamReach: new Set<string>(),
          permissionsOnly: true,
        } satisfies OrgMembership;
      }),
  });
  // Whether an OAuth client still stands (not revoked): its tokens, and tokens exchanged from them, work only while
  // it does. A disabled account is answered by its membership (404, and back on enable); a revoked client is final.
  const clientCache = createCache<boolean, { orgId: string; clientId: string }>({
    name: "service-accounts.clients",
    max: 50_000,
    ttlMs,
    clock,
    group: firstPartOf,
    fetch: async (_k, { orgId, clientId }) => {
      const [row] = await db.readScoped<ClientAuthRow>({ orgId }, clientAuthQuery(orgId, clientId));
      return !!row && row.revoked_at === null;
    },
  });
  access.onInvalidate((orgId) => {
    // local caches: nothing to wait for
    void membershipCache.deleteGroup(orgId);
    void clientCache.deleteGroup(orgId);
  });

  const memberships: ServiceAccountMemberships = {
    async membership(orgId, serviceAccountId) {
      const k = key(orgId, serviceAccountId);
      const hit = membershipCache.get(k);
      return (hit !== undefined ? hit : await membershipCache.fetch(k, { orgId, serviceAccountId })) ?? undefined;
    },
  };

  const clients: LiveClients = {
    isLive(orgId, clientId) {
      const k = key(orgId, clientId);
      return clientCache.get(k) ?? clientCache.fetch(k, { orgId, clientId });
    },
  };

  return {
    memberships,
    clients,

    async create(caller: OrgMembership, input: CreateServiceAccountInput, actor: AuditActor): Promise<ServiceAccountRow> {
      const now = clock.now();
      const roles = [...new Set(input.roles)];
      try {
        return await change(caller.orgId, async (tx) => {
          requireSubset(caller, await permissionsOfRoles(tx, caller.orgId, roles), "The service account");
          const row = await repo.insert(tx, {
            id: newId("serviceAccount", now.getTime()),
            orgId: caller.orgId,
            name: input.name,
            description: input.description ?? "",
            roles,
            createdBy: actor.id,
            createdAt: now,
            updatedAt: now,
          });
          await audit.record(tx, actor, {
            orgId: caller.orgId,
            action: "service_account.created",
            target: { type: "service_account", id: row.id },
            diff: { name: [null, row.name], description: [null, row.description], roles: [null, roles] },
          });
          return row;
        });
      } catch (e) {
        if (isUniqueViolation(e)) throw nameTaken(input.name);
        throw e;
      }
    },

    list(orgId: string, opts: { after?: string; limit: number }): Promise<ServiceAccountRow[]> {
      return db.tx({ orgId }, (tx) => repo.list(tx, orgId, opts));
    },

    get(orgId: string, id: string): Promise<ServiceAccountRow> {
      return db.tx({ orgId }, (tx) => load(tx, orgId, id));
    },

    async update(caller: OrgMembership, id: string, input: UpdateServiceAccountInput, actor: AuditActor): Promise<ServiceAccountRow> {
      try {
        return await change(caller.orgId, async (tx) => {
          const row = await load(tx, caller.orgId, id, true);
          const next = {
            name: input.name ?? row.name,
            description: input.description ?? row.description,
            roles: input.roles ? [...new Set(input.roles)] : row.roles,
          };
          if (input.roles) requireSubset(caller, await permissionsOfRoles(tx, caller.orgId, next.roles), "The service account");
          const diff: Record<string, [unknown, unknown]> = {};
          if (next.name !== row.name) diff.name = [row.name, next.name];
          if (next.description !== row.description) diff.description = [row.description, next.description];
          if (next.roles.join("\u0000") !== row.roles.join("\u0000")) diff.roles = [row.roles, next.roles];
          if (!Object.keys(diff).length) return row;
          const updated = await repo.update(tx, caller.orgId, id, { ...next, updatedAt: clock.now() });
          await audit.record(tx, actor, { orgId: caller.orgId, action: "service_account.updated", target: { type: "service_account", id }, diff });
          return updated;
        });
      } catch (e) {
        if (isUniqueViolation(e)) throw nameTaken(input.name ?? "");
        throw e;
      }
    },

    /** Soft: the record and its clients stay; its tokens and clients stop working at the next request. */
    async setDisabled(caller: OrgMembership, id: string, disabled: boolean, actor: AuditActor): Promise<ServiceAccountRow> {
      return change(caller.orgId, async (tx) => {
        const row = await load(tx, caller.orgId, id, true);
        if ((row.disabledAt !== null) === disabled) return row;
        // enabling gives the account its authority back: only someone holding all of it may
        if (!disabled) requireSubset(caller, await permissionsOfRoles(tx, caller.orgId, row.roles), "The service account");
        const now = clock.now();
        const updated = await repo.update(tx, caller.orgId, id, { disabledAt: disabled ? now : null, updatedAt: now });
        await audit.record(tx, actor, {
          orgId: caller.orgId,
          action: disabled ? "service_account.disabled" : "service_account.enabled",
          target: { type: "service_account", id },
          diff: { disabled: [!disabled, disabled] },
        });
        return updated;
      });
    },

    /** Hard delete with its clients; its API keys are revoked (the records stay, as does the audit trail). */
    async delete(caller: OrgMembership, id: string, actor: AuditActor): Promise<void> {
      await change(caller.orgId, async (tx) => {
        const row = await load(tx, caller.orgId, id, true);
        await repo.delete(tx, caller.orgId, id);
        await audit.record(tx, actor, {
          orgId: caller.orgId,
          action: "service_account.deleted",
          target: { type: "service_account", id },
          diff: { name: [row.name, null], roles: [row.roles, null] },
        });
        await keyOwners.revokeAllOf(tx, caller.orgId, { type: "service_account", id }, "owner_deleted", actor);
      });
    },

    /**
     * An API key owned by the account, made by a member who manages it (keys.service.create checks keys:create and
     * that the key holds no more than both of them). The account is read and locked in the creating transaction.
     */
    createKey(caller: KeyCaller, serviceAccountId: string, input: CreateKeyInput, actor: AuditActor): Promise<{ row: ApiKeyRow; secret: string }> {
      const orgId = caller.membership.orgId;
      return apiKeys.create(caller, input, actor, {
        type: "service_account",
        id: serviceAccountId,
        async permissions(tx) {
          const account = await load(tx, orgId, serviceAccountId, true);
          if (account.disabledAt) throw serviceAccountsError("SERVICE_ACCOUNT_DISABLED", "The service account is disabled; enable it before giving it keys.");
          return permissionsOfRoles(tx, orgId, account.roles);
        },
      });
    },

    /** A client credential acting as the account: whoever makes one gets the account's authority, so it must be theirs. */
    async createClient(caller: OrgMembership, serviceAccountId: string, name: string, actor: AuditActor): Promise<{ row: OAuthClientRow; secret: string }> {
      const now = clock.now();
      const secret = CLIENT_SECRET_PREFIX + randomBytes(32).toString("base64url");
      const row = await change(caller.orgId, async (tx) => {
        const account = await load(tx, caller.orgId, serviceAccountId, true);
        if (account.disabledAt)
          throw serviceAccountsError("SERVICE_ACCOUNT_DISABLED", "The service account is disabled; enable it before giving it credentials.");
        requireSubset(caller, await permissionsOfRoles(tx, caller.orgId, account.roles), "A client of this service account");
        const row = await repo.insertClient(tx, {
          id: newId("oauthClient", now.getTime()),
          orgId: caller.orgId,
          serviceAccountId,
          name,
          secretHash: hashSecret(secret),
          createdBy: actor.id,
          createdAt: now,
        });
        await audit.record(tx, actor, {
          orgId: caller.orgId,
          action: "oauth_client.created",
          target: { type: "oauth_client", id: row.id },
          diff: { name: [null, name], service_account_id: [null, serviceAccountId] },
        });
        return row;
      });
      return { row, secret };
    },

    listClients(orgId: string, serviceAccountId: string): Promise<OAuthClientRow[]> {
      return db.tx({ orgId }, async (tx) => {
        await load(tx, orgId, serviceAccountId);
        return repo.listClients(tx, orgId, serviceAccountId);
      });
    },

    /** Soft revoke: the client stops at once; the record stays. Revoking a revoked client changes nothing. */
    async revokeClient(caller: OrgMembership, serviceAccountId: string, clientId: string, actor: AuditActor): Promise<OAuthClientRow> {
      return change(caller.orgId, async (tx) => {
        await load(tx, caller.orgId, serviceAccountId);
        const row = await repo.findClient(tx, caller.orgId, serviceAccountId, clientId);
        if (!row) throw serviceAccountsError("OAUTH_CLIENT_NOT_FOUND", `No client ${clientId.slice(0, 40)} of this service account.`, { field: "clientId" });
        if (row.revokedAt) return row;
        const updated = await repo.revokeClient(tx, caller.orgId, clientId, clock.now());
        await audit.record(tx, actor, {
          orgId: caller.orgId,
          action: "oauth_client.revoked",
          target: { type: "oauth_client", id: clientId },
          diff: { revoked: [false, true] },
        });
        return updated;
      });
    },

    /**
     * The account a client id and secret authenticate, or undefined (unknown client, wrong secret, revoked client,
     * disabled account: the token endpoint answers them all alike). The secret is compared in constant time.
     */
    async authenticateClient(clientId: string, secret: string): Promise<{ orgId: string; serviceAccountId: string; clientId: string } | undefined> {
      if (!CLIENT_SECRET.test(secret) || !/^cli_[0-9a-hjkmnp-tv-z]{26}$/.test(clientId)) return undefined;
      const [ix] = await db.readScoped<{ org_id: string }>({}, clientIndexQuery(clientId));
      if (!ix) return undefined;
      const [row] = await db.readScoped<ClientAuthRow>({ orgId: ix.org_id }, clientAuthQuery(ix.org_id, clientId));
      if (!row || !sameHash(hashSecret(secret), row.secret_hash) || row.revoked_at !== null || row.disabled_at !== null) return undefined;
      await db.tx({ orgId: row.org_id }, (tx) => repo.touchClient(tx, row.org_id, clientId, clock.now()));
      return { orgId: row.org_id, serviceAccountId: row.service_account_id, clientId };
    },
  };
}

export type ServiceAccountsService = ReturnType<typeof createServiceAccountsService>;
