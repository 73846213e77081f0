import { and, asc, eq, gt, inArray, isNull, sql } from "drizzle-orm";
import type { JWK } from "jose";
import type { Executor } from "../../db/client.ts";
import { credentialIndex, serviceKeys } from "../../db/schema/machine.ts";

export type ServiceKeyRow = typeof serviceKeys.$inferSelect;
export type NewServiceKeyRow = typeof serviceKeys.$inferInsert;

/**
 * Where a registration lives: an org id, or null for the platform-wide registry. Every query names it (the row-level
 * policy matches it exactly too: a platform transaction sees no org's rows, an org's sees no platform rows).
 */
export type KeyOwner = string | null;

/** The routing row of a kid in credential_index (a platform table, read before the registration's org is known). */
export const lookupKeyOf = (kid: string) => `svk:${kid}`;

/** credential_index.org_id of a platform-wide registration (the column is not null). */
export const PLATFORM_ORG = "";

/** A kid's routing row (raw driver row). */
export interface KidIndexRow {
  credential_id: string;
  org_id: string;
}

/** A registration as the token verifier reads it, with the permissions of the org's custom roles it names. */
export interface KeyAuthRow {
  id: string;
  org_id: string | null;
  service: string;
  alg: string;
  public_jwk: JWK;
  roles: string[];
  expires_at: string | Date | null;
  revoked_at: string | Date | null;
  custom: { name: string; permissions: string[] }[] | null;
  /** False when its org is deleted (its tokens then act nowhere). */
  org_live: boolean;
}

/** Statement texts for db.readScoped (fixed texts, values as parameters). */
export const kidIndexQuery = (kid: string) =>
  sql`select credential_id, org_id from credential_index where lookup_key = ${lookupKeyOf(kid)} and kind = 'service_key'`;

export const keyAuthQuery = (indexOrgId: string, id: string) => sql`
  select k.id, k.org_id, k.service, k.alg, k.public_jwk, k.roles, k.expires_at, k.revoked_at,
         (select json_agg(json_build_object('name', r.name, 'permissions', r.permissions))
            from custom_roles r where r.org_id = k.org_id and r.name = any(k.roles)) as custom,
         (k.org_id is null or exists (select 1 from orgs o where o.id = k.org_id and o.deleted_at is null)) as org_live
    from service_keys k where k.id = ${id} and k.org_id is not distinct from nullif(${indexOrgId}::text, '')`;

/** Whether an org exists and is not deleted (a platform key acts only in a live org). */
export const orgLiveQuery = (orgId: string) => sql`select 1 as live from orgs where id = ${orgId} and deleted_at is null`;

/** The registrations to publish: not revoked, not expired, oldest first. */
export const publishedKeysQuery = (owner: string, now: Date) => sql`
  select service, public_jwk, expires_at from service_keys
   where org_id is not distinct from nullif(${owner}::text, '') and revoked_at is null
     and (expires_at is null or expires_at > ${now.toISOString()}::timestamptz)
   order by id`;

const ownerIs = (owner: KeyOwner) => (owner === null ? isNull(serviceKeys.orgId) : eq(serviceKeys.orgId, owner));

export const serviceKeysRepo = {
  /** The registration and its routing row (ending when the registration expires). */
  async insert(tx: Executor, row: NewServiceKeyRow): Promise<ServiceKeyRow> {
    const [r] = await tx.insert(serviceKeys).values(row).returning();
    await tx.insert(credentialIndex).values({
      lookupKey: lookupKeyOf(row.kid),
      kind: "service_key",
      credentialId: row.id,
      orgId: row.orgId ?? PLATFORM_ORG,
      expiresAt: row.expiresAt ?? null,
      createdAt: row.createdAt,
    });
    return r;
  },

  /** Oldest first (ids are time-ordered), after the cursor id. */
  list(ex: Executor, owner: KeyOwner, opts: { service?: string; includeRevoked: boolean; after?: string; limit: number }): Promise<ServiceKeyRow[]> {
    return ex
      .select()
      .from(serviceKeys)
      .where(
        and(
          ownerIs(owner),
          opts.service === undefined ? undefined : eq(serviceKeys.service, opts.service),
          opts.includeRevoked ? undefined : isNull(serviceKeys.revokedAt),
          opts.after === undefined ? undefined : gt(serviceKeys.id, opts.after),
        ),
      )
      .orderBy(asc(serviceKeys.id))
      .limit(opts.limit);
  },

  async findById(ex: Executor, owner: KeyOwner, id: string, lock = false): Promise<ServiceKeyRow | undefined> {
    const q = ex
      .select()
      .from(serviceKeys)
      .where(and(ownerIs(owner), eq(serviceKeys.id, id)));
    const [r] = lock ? await q.for("update") : await q;
    return r;
  },

  async update(tx: Executor, owner: KeyOwner, id: string, set: Pick<Partial<NewServiceKeyRow>, "description" | "roles">): Promise<ServiceKeyRow> {
    const [r] = await tx
      .update(serviceKeys)
      .set(set)
      .where(and(ownerIs(owner), eq(serviceKeys.id, id)))
      .returning();
    return r;
  },

  /** Soft revoke: the record stays; its routing row ends now. */
  async revoke(tx: Executor, owner: KeyOwner, row: ServiceKeyRow, by: string | null, now: Date): Promise<ServiceKeyRow> {
    const [r] = await tx
      .update(serviceKeys)
      .set({ revokedAt: now, revokedBy: by })
      .where(and(ownerIs(owner), eq(serviceKeys.id, row.id), isNull(serviceKeys.revokedAt)))
      .returning();
    await tx
      .update(credentialIndex)
      .set({ expiresAt: now })
      .where(and(eq(credentialIndex.lookupKey, lookupKeyOf(row.kid)), eq(credentialIndex.kind, "service_key"), eq(credentialIndex.credentialId, row.id)));
    return r;
  },

  /** An org's live registrations `makers` registered (`created_by`), oldest first, locked until the transaction ends. */
  liveMadeBy(ex: Executor, orgId: string, makers: readonly string[]): Promise<ServiceKeyRow[]> {
    if (!makers.length) return Promise.resolve([]);
    return ex
      .select()
      .from(serviceKeys)
      .where(and(eq(serviceKeys.orgId, orgId), inArray(serviceKeys.createdBy, [...makers]), isNull(serviceKeys.revokedAt)))
      .orderBy(asc(serviceKeys.id))
      .for("update");
  },

  /** Batched last use: one statement for the owner's registrations. */
  async touch(tx: Executor, owner: KeyOwner, used: { id: string; lastUsedAt: Date }[]): Promise<void> {
    if (!used.length) return;
    const values = sql.join(
      used.map((u) => sql`(${u.id}, ${u.lastUsedAt.toISOString()}::timestamptz)`),
      sql`, `,
    );
    await tx.execute(sql`
      update service_keys k set last_used_at = greatest(k.last_used_at, v.t)
        from (values ${values}) as v(id, t)
       where k.org_id is not distinct from ${owner} and k.id = v.id`);
  },
};

export type ServiceKeysRepo = typeof serviceKeysRepo;
