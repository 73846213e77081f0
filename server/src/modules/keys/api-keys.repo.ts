import { and, asc, eq, gt, inArray, isNull, or, sql } from "drizzle-orm";
import type { Executor } from "../../db/client.ts";
import { apiKeys, credentialIndex } from "../../db/schema/machine.ts";

export type ApiKeyRow = typeof apiKeys.$inferSelect;
export type NewApiKeyRow = typeof apiKeys.$inferInsert;

/** The routing row of a presented secret (platform table, read before the tenant is known). */
export interface IndexRow {
  credential_id: string;
  org_id: string;
  expires_at: string | Date | null;
}

/** A key as the verifier reads it: the row, and the permissions of the org's custom roles it names. */
export interface AuthRow {
  id: string;
  org_id: string;
  owner_type: string;
  owner_id: string;
  secret_hash: string;
  roles: string[];
  permissions: string[];
  inherit: boolean;
  not_before: string | Date | null;
  expires_at: string | Date | null;
  ip_allowlist: string[];
  rate_limit_per_minute: number | null;
  revoked_at: string | Date | null;
  custom: { name: string; permissions: string[] }[] | null;
}

/** Statement texts for db.readScoped (fixed texts, values as parameters). */
export const indexQuery = (lookupKey: string) =>
  sql`select credential_id, org_id, expires_at from credential_index where lookup_key = ${lookupKey} and kind = 'api_key'`;

export const authQuery = (orgId: string, keyId: string) => sql`
  select k.id, k.org_id, k.owner_type, k.owner_id, k.secret_hash, k.roles, k.permissions, k.inherit, k.not_before,
         k.expires_at, k.ip_allowlist, k.rate_limit_per_minute, k.revoked_at,
         (select json_agg(json_build_object('name', r.name, 'permissions', r.permissions))
            from custom_roles r where r.org_id = k.org_id and r.name = any(k.roles)) as custom
    from api_keys k where k.org_id = ${orgId} and k.id = ${keyId}`;

/** A key's state, by id: what decides whether tokens exchanged from it still work. */
export interface KeyStateRow {
  revoked_at: string | Date | null;
  expires_at: string | Date | null;
}

export const keyStateQuery = (orgId: string, keyId: string) => sql`select revoked_at, expires_at from api_keys where org_id = ${orgId} and id = ${keyId}`;

export const apiKeysRepo = {
  async insert(tx: Executor, row: NewApiKeyRow, lookupKey: string): Promise<ApiKeyRow> {
    const [r] = await tx.insert(apiKeys).values(row).returning();
    await tx.insert(credentialIndex).values({ lookupKey, kind: "api_key", credentialId: row.id, orgId: row.orgId, createdAt: row.createdAt });
    return r;
  },

  /** The org's keys, oldest first (ids are time-ordered), after the cursor id. */
  async list(ex: Executor, orgId: string, opts: { includeRevoked: boolean; after?: string; limit: number }): Promise<ApiKeyRow[]> {
    return ex
      .select()
      .from(apiKeys)
      .where(
        and(
          eq(apiKeys.orgId, orgId),
          opts.includeRevoked ? undefined : isNull(apiKeys.revokedAt),
          opts.after === undefined ? undefined : gt(apiKeys.id, opts.after),
        ),
      )
      .orderBy(asc(apiKeys.id))
      .limit(opts.limit);
  },

  async findById(ex: Executor, orgId: string, id: string, lock = false): Promise<ApiKeyRow | undefined> {
    const q = ex
      .select()
      .from(apiKeys)
      .where(and(eq(apiKeys.orgId, orgId), eq(apiKeys.id, id)));
    const [r] = lock ? await q.for("update") : await q;
    return r;
  },

  /** The live keys of that name (one per owner at most). */
  async findLiveByName(ex: Executor, orgId: string, name: string): Promise<ApiKeyRow[]> {
    return ex
      .select()
      .from(apiKeys)
      .where(and(eq(apiKeys.orgId, orgId), eq(apiKeys.name, name), isNull(apiKeys.revokedAt)))
      .orderBy(asc(apiKeys.id));
  },

  async update(tx: Executor, orgId: string, id: string, set: Partial<NewApiKeyRow>): Promise<ApiKeyRow> {
    const [r] = await tx
      .update(apiKeys)
      .set(set)
      .where(and(eq(apiKeys.orgId, orgId), eq(apiKeys.id, id)))
      .returning();
    return r;
  },

  /** Ends the key's secrets still in force (now, or at `until` for a rotation's grace period). */
  async expireSecrets(tx: Executor, keyId: string, until: Date): Promise<void> {
    await tx
      .update(credentialIndex)
      .set({ expiresAt: until })
      .where(
        and(
          eq(credentialIndex.credentialId, keyId),
          eq(credentialIndex.kind, "api_key"),
          or(isNull(credentialIndex.expiresAt), gt(credentialIndex.expiresAt, until)),
        ),
      );
  },

  async addSecret(tx: Executor, orgId: string, keyId: string, lookupKey: string, now: Date): Promise<void> {
    await tx.insert(credentialIndex).values({ lookupKey, kind: "api_key", credentialId: keyId, orgId, createdAt: now });
  },

  /** Every key of one owner in the org, revoked ones too (what the owner may have made things with). */
  async idsOwnedBy(ex: Executor, orgId: string, owner: { type: string; id: string }): Promise<string[]> {
    const r = await ex
      .select({ id: apiKeys.id })
      .from(apiKeys)
      .where(and(eq(apiKeys.orgId, orgId), eq(apiKeys.ownerType, owner.type), eq(apiKeys.ownerId, owner.id)))
      .orderBy(asc(apiKeys.id));
    return r.map((x) => x.id);
  },

  /** The live keys `makers` created (`created_by`) for an owner of `ownerType`, oldest first. */
  async liveMadeBy(ex: Executor, orgId: string, makers: readonly string[], ownerType: string): Promise<string[]> {
    if (!makers.length) return [];
    const r = await ex
      .select({ id: apiKeys.id })
      .from(apiKeys)
      .where(and(eq(apiKeys.orgId, orgId), eq(apiKeys.ownerType, ownerType), inArray(apiKeys.createdBy, [...makers]), isNull(apiKeys.revokedAt)))
      .orderBy(asc(apiKeys.id));
    return r.map((x) => x.id);
  },

  /** Revokes (soft) these live keys and ends their secrets now; the ids actually revoked. */
  async revokeMany(tx: Executor, orgId: string, ids: readonly string[], set: { reason: string; by: string | null; now: Date }): Promise<string[]> {
    if (!ids.length) return [];
    const r = await tx
      .update(apiKeys)
      .set({ revokedAt: set.now, revokedBy: set.by, revokedReason: set.reason, updatedAt: set.now })
      .where(and(eq(apiKeys.orgId, orgId), inArray(apiKeys.id, [...ids]), isNull(apiKeys.revokedAt)))
      .returning({ id: apiKeys.id });
    const revoked = r.map((x) => x.id).sort();
    if (revoked.length) {
      await tx
        .update(credentialIndex)
        .set({ expiresAt: set.now })
        .where(
          and(
            eq(credentialIndex.orgId, orgId),
            eq(credentialIndex.kind, "api_key"),
            inArray(credentialIndex.credentialId, revoked),
            or(isNull(credentialIndex.expiresAt), gt(credentialIndex.expiresAt, set.now)),
          ),
        );
    }
    return revoked;
  },

  /** The owner's live keys, oldest first. */
  async liveOwnedBy(ex: Executor, orgId: string, owner: { type: string; id: string }): Promise<string[]> {
    const r = await ex
      .select({ id: apiKeys.id })
      .from(apiKeys)
      .where(and(eq(apiKeys.orgId, orgId), eq(apiKeys.ownerType, owner.type), eq(apiKeys.ownerId, owner.id), isNull(apiKeys.revokedAt)))
      .orderBy(asc(apiKeys.id));
    return r.map((x) => x.id);
  },

  /** Adds batched usage: one statement for the org's keys. */
  async addUsage(tx: Executor, orgId: string, usage: { id: string; count: number; lastUsedAt: Date }[]): Promise<void> {
    if (!usage.length) return;
    const values = sql.join(
      usage.map((u) => sql`(${u.id}, ${u.count}::bigint, ${u.lastUsedAt.toISOString()}::timestamptz)`),
      sql`, `,
    );
    await tx.execute(sql`
      update api_keys k set usage_count = k.usage_count + v.n, last_used_at = greatest(k.last_used_at, v.t)
        from (values ${values}) as v(id, n, t)
       where k.org_id = ${orgId} and k.id = v.id`);
  },
};

export type ApiKeysRepo = typeof apiKeysRepo;
