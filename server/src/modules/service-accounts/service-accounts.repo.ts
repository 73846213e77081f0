import { and, asc, eq, gt, inArray, isNull, sql } from "drizzle-orm";
import type { Executor } from "../../db/client.ts";
import { credentialIndex, oauthClients, serviceAccounts } from "../../db/schema/machine.ts";

export type ServiceAccountRow = typeof serviceAccounts.$inferSelect;
export type OAuthClientRow = typeof oauthClients.$inferSelect;

/** A client as the token endpoint reads it, with its account (raw driver row). */
export interface ClientAuthRow {
  id: string;
  org_id: string;
  service_account_id: string;
  secret_hash: string;
  revoked_at: string | Date | null;
  disabled_at: string | Date | null;
}

/** The routing row of a client id (platform table, read before the org is known). */
export const clientIndexQuery = (clientId: string) =>
  sql`select org_id from credential_index where lookup_key = ${clientId} and kind = 'oauth_client' and credential_id = ${clientId}`;

export const clientAuthQuery = (orgId: string, clientId: string) => sql`
  select c.id, c.org_id, c.service_account_id, c.secret_hash, c.revoked_at, a.disabled_at
    from oauth_clients c join service_accounts a on a.id = c.service_account_id and a.org_id = c.org_id
   where c.org_id = ${orgId} and c.id = ${clientId}`;

/** A live account of a live org: its roles (none when disabled, gone, or its org is deleted). */
export const accountRolesQuery = (orgId: string, id: string) => sql`
  select a.roles from service_accounts a join orgs o on o.id = a.org_id
   where a.org_id = ${orgId} and a.id = ${id} and a.disabled_at is null and o.deleted_at is null`;

export const serviceAccountsRepo = {
  async insert(tx: Executor, row: typeof serviceAccounts.$inferInsert): Promise<ServiceAccountRow> {
    const [r] = await tx.insert(serviceAccounts).values(row).returning();
    return r;
  },

  /** Oldest first (ids are time-ordered), after the cursor id. */
  list(ex: Executor, orgId: string, opts: { after?: string; limit: number }): Promise<ServiceAccountRow[]> {
    return ex
      .select()
      .from(serviceAccounts)
      .where(and(eq(serviceAccounts.orgId, orgId), opts.after === undefined ? undefined : gt(serviceAccounts.id, opts.after)))
      .orderBy(asc(serviceAccounts.id))
      .limit(opts.limit);
  },

  async findById(ex: Executor, orgId: string, id: string, lock = false): Promise<ServiceAccountRow | undefined> {
    const q = ex
      .select()
      .from(serviceAccounts)
      .where(and(eq(serviceAccounts.orgId, orgId), eq(serviceAccounts.id, id)));
    const [r] = lock ? await q.for("update") : await q;
    return r;
  },

  async update(tx: Executor, orgId: string, id: string, set: Partial<typeof serviceAccounts.$inferInsert>): Promise<ServiceAccountRow> {
    const [r] = await tx
      .update(serviceAccounts)
      .set(set)
      .where(and(eq(serviceAccounts.orgId, orgId), eq(serviceAccounts.id, id)))
      .returning();
    return r;
  },

  /** Deletes the account, its clients (cascade) and their routing rows. */
  async delete(tx: Executor, orgId: string, id: string): Promise<void> {
    const clients = await tx
      .select({ id: oauthClients.id })
      .from(oauthClients)
      .where(and(eq(oauthClients.orgId, orgId), eq(oauthClients.serviceAccountId, id)));
    if (clients.length) {
      await tx.delete(credentialIndex).where(
        and(
          eq(credentialIndex.kind, "oauth_client"),
          eq(credentialIndex.orgId, orgId),
          inArray(
            credentialIndex.credentialId,
            clients.map((c) => c.id),
          ),
        ),
      );
    }
    await tx.delete(serviceAccounts).where(and(eq(serviceAccounts.orgId, orgId), eq(serviceAccounts.id, id)));
  },

  async insertClient(tx: Executor, row: typeof oauthClients.$inferInsert): Promise<OAuthClientRow> {
    const [r] = await tx.insert(oauthClients).values(row).returning();
    await tx.insert(credentialIndex).values({ lookupKey: row.id, kind: "oauth_client", credentialId: row.id, orgId: row.orgId, createdAt: row.createdAt });
    return r;
  },

  listClients(ex: Executor, orgId: string, serviceAccountId: string): Promise<OAuthClientRow[]> {
    return ex
      .select()
      .from(oauthClients)
      .where(and(eq(oauthClients.orgId, orgId), eq(oauthClients.serviceAccountId, serviceAccountId)))
      .orderBy(asc(oauthClients.id));
  },

  async findClient(ex: Executor, orgId: string, serviceAccountId: string, id: string): Promise<OAuthClientRow | undefined> {
    const [r] = await ex
      .select()
      .from(oauthClients)
      .where(and(eq(oauthClients.orgId, orgId), eq(oauthClients.serviceAccountId, serviceAccountId), eq(oauthClients.id, id)))
      .for("update");
    return r;
  },

  /** Soft revoke: the record stays; its routing row ends now. */
  async revokeClient(tx: Executor, orgId: string, id: string, now: Date): Promise<OAuthClientRow> {
    const [r] = await tx
      .update(oauthClients)
      .set({ revokedAt: now })
      .where(and(eq(oauthClients.orgId, orgId), eq(oauthClients.id, id), isNull(oauthClients.revokedAt)))
      .returning();
    await tx
      .update(credentialIndex)
      .set({ expiresAt: now })
      .where(and(eq(credentialIndex.lookupKey, id), eq(credentialIndex.kind, "oauth_client")));
    return r;
  },

  /** The live clients `makers` created (`created_by`: a member's id, or one of their API keys'), oldest first. */
  liveClientsMadeBy(ex: Executor, orgId: string, makers: readonly string[]): Promise<OAuthClientRow[]> {
    if (!makers.length) return Promise.resolve([]);
    return ex
      .select()
      .from(oauthClients)
      .where(and(eq(oauthClients.orgId, orgId), inArray(oauthClients.createdBy, [...makers]), isNull(oauthClients.revokedAt)))
      .orderBy(asc(oauthClients.id))
      .for("update");
  },

  async touchClient(tx: Executor, orgId: string, id: string, now: Date): Promise<void> {
    await tx
      .update(oauthClients)
      .set({ lastUsedAt: now })
      .where(and(eq(oauthClients.orgId, orgId), eq(oauthClients.id, id)));
  },
};

export type ServiceAccountsRepo = typeof serviceAccountsRepo;
