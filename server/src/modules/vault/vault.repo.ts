import { and, asc, desc, eq, getTableColumns, gt, lt, ne, or, type Placeholder, type SQL, sql } from "drizzle-orm";
import { textArray, textArrayLiteral } from "../../db/arrays.ts";
import type { Executor } from "../../db/client.ts";
import { preparedQuery } from "../../db/prepared.ts";
import { vaultSecrets, vaultSecretVersions } from "../../db/schema/vault.ts";

export type SecretRow = typeof vaultSecrets.$inferSelect;
export type SecretVersionRow = typeof vaultSecretVersions.$inferSelect;
export type SecretScope = "org" | "team" | "user";
/** generic: a value set by hand; oauth_connection: an integration connection's token set (modules/connections). */
export type SecretKind = "generic" | "oauth_connection";

export interface SecretFilter {
  scope?: SecretScope;
  teamId?: string;
  kind?: SecretKind;
  after?: string;
  /** Only these secrets (those shared with a caller who cannot read them all); one array parameter, whatever its length. */
  ids?: readonly string[];
  limit: number;
}

/** Another member's personal secrets do not exist for `viewer`. */
const visibleTo = (viewer: string | Placeholder): SQL => or(ne(vaultSecrets.scope, "user"), eq(vaultSecrets.userId, viewer))!;
/** The same rule for a row already read (whether another viewer would find it too). */
export const isVisibleTo = (row: Pick<SecretRow, "scope" | "userId">, viewer: string): boolean => row.scope !== "user" || row.userId === viewer;

// a reveal reads the secret and its version: both built once (db/prepared.ts)
const secretById = (ex: Executor) =>
  ex
    .select()
    .from(vaultSecrets)
    .where(and(eq(vaultSecrets.orgId, sql.placeholder("orgId")), eq(vaultSecrets.id, sql.placeholder("id")), visibleTo(sql.placeholder("viewer"))));
type FindValues = { orgId: string; id: string; viewer: string };
const findSecret = preparedQuery<SecretRow[], FindValues>("vault_secret_find", secretById);
const lockSecret = preparedQuery<SecretRow[], FindValues>("vault_secret_lock", (ex) => secretById(ex).for("update"));
const findSecretVersion = preparedQuery<SecretVersionRow[], { orgId: string; secretId: string; version: number }>("vault_secret_version_find", (ex) =>
  ex
    .select()
    .from(vaultSecretVersions)
    .where(
      and(
        eq(vaultSecretVersions.orgId, sql.placeholder("orgId")),
        eq(vaultSecretVersions.secretId, sql.placeholder("secretId")),
        eq(vaultSecretVersions.version, sql.placeholder("version")),
      ),
    ),
);

// and a reveal reads both in one query: the secret, and the version asked for (null: its current one), if it exists
const versionColumns = Object.fromEntries(Object.entries(getTableColumns(vaultSecretVersions)).map(([k, c]) => [`v$${k}`, c]));
/** Secrets, each with its version `version` (a version number, or the secret's current one), or nulls when none. */
const withVersion = (ex: Executor, version: SQL | typeof vaultSecrets.currentVersion) =>
  ex
    .select({ ...getTableColumns(vaultSecrets), ...versionColumns })
    .from(vaultSecrets)
    .leftJoin(
      vaultSecretVersions,
      and(eq(vaultSecretVersions.orgId, vaultSecrets.orgId), eq(vaultSecretVersions.secretId, vaultSecrets.id), eq(vaultSecretVersions.version, version)),
    );
const findSecretWithVersion = preparedQuery<Record<string, unknown>[], FindValues & { version: number | null }>("vault_secret_with_version", (ex) =>
  withVersion(ex, sql`coalesce(${sql.placeholder("version")}::integer, ${vaultSecrets.currentVersion})`).where(
    and(eq(vaultSecrets.orgId, sql.placeholder("orgId")), eq(vaultSecrets.id, sql.placeholder("id")), visibleTo(sql.placeholder("viewer"))),
  ),
);

// and a lease's reveal reads all its secrets with their current versions in one query, built once too
const findManySecretsWithVersion = preparedQuery<Record<string, unknown>[], { orgId: string; viewer: string; ids: string }>(
  "vault_secrets_with_versions",
  (ex) =>
    withVersion(ex, vaultSecrets.currentVersion).where(
      and(
        eq(vaultSecrets.orgId, sql.placeholder("orgId")),
        visibleTo(sql.placeholder("viewer")),
        sql`${vaultSecrets.id} = any(${sql.placeholder("ids")}::text[])`,
      ),
    ),
);

/** A row of secret columns and `v$`-prefixed version columns, apart (no version: its columns are null). */
function splitJoined(r: Record<string, unknown>): { secret: SecretRow; version: SecretVersionRow | undefined } {
  const secret: Record<string, unknown> = {};
  const stored: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(r)) {
    if (k.startsWith("v$")) stored[k.slice(2)] = v;
    else secret[k] = v;
  }
  return { secret: secret as SecretRow, version: stored.version == null ? undefined : (stored as SecretVersionRow) };
}

/** Secrets and their versions. Row-level security limits every transaction to its org; each query names it too. */
export const vaultRepo = {
  async insert(tx: Executor, row: typeof vaultSecrets.$inferInsert): Promise<SecretRow> {
    const [r] = await tx.insert(vaultSecrets).values(row).returning();
    return r;
  },

  async insertVersion(tx: Executor, row: typeof vaultSecretVersions.$inferInsert): Promise<void> {
    await tx.insert(vaultSecretVersions).values(row);
  },

  /** Oldest first (ids are time-ordered), after the cursor id. */
  list(ex: Executor, orgId: string, viewer: string, f: SecretFilter): Promise<SecretRow[]> {
    return ex
      .select()
      .from(vaultSecrets)
      .where(
        and(
          eq(vaultSecrets.orgId, orgId),
          visibleTo(viewer),
          f.scope === undefined ? undefined : eq(vaultSecrets.scope, f.scope),
          f.teamId === undefined ? undefined : eq(vaultSecrets.teamId, f.teamId),
          f.kind === undefined ? undefined : eq(vaultSecrets.kind, f.kind),
          f.after === undefined ? undefined : gt(vaultSecrets.id, f.after),
          f.ids === undefined ? undefined : sql`${vaultSecrets.id} = any(${textArray(f.ids)})`,
        ),
      )
      .orderBy(asc(vaultSecrets.id))
      .limit(f.limit);
  },

  async find(ex: Executor, orgId: string, viewer: string, id: string, lock = false): Promise<SecretRow | undefined> {
    const [r] = await (lock ? lockSecret : findSecret)(ex, { orgId, id, viewer });
    return r;
  },

  async update(tx: Executor, orgId: string, id: string, set: Partial<typeof vaultSecrets.$inferInsert>): Promise<SecretRow> {
    const [r] = await tx
      .update(vaultSecrets)
      .set(set)
      .where(and(eq(vaultSecrets.orgId, orgId), eq(vaultSecrets.id, id)))
      .returning();
    return r;
  },

  /** The secret and (cascade) its versions. */
  async delete(tx: Executor, orgId: string, id: string): Promise<void> {
    await tx.delete(vaultSecrets).where(and(eq(vaultSecrets.orgId, orgId), eq(vaultSecrets.id, id)));
  },

  /** The secret `viewer` sees, with its version `version` (default: the current one) when that exists; one round trip. */
  async findWithVersion(
    ex: Executor,
    orgId: string,
    viewer: string,
    id: string,
    version: number | undefined,
  ): Promise<{ secret: SecretRow; version: SecretVersionRow | undefined } | undefined> {
    const [r] = await findSecretWithVersion(ex, { orgId, id, viewer, version: version ?? null });
    return r && splitJoined(r);
  },

  /** The secrets of `ids` that `viewer` sees, each with its current version (missing ids are not in the answer). */
  async findManyWithVersion(
    ex: Executor,
    orgId: string,
    viewer: string,
    ids: readonly string[],
  ): Promise<{ secret: SecretRow; version: SecretVersionRow | undefined }[]> {
    if (!ids.length) return [];
    const rows = await findManySecretsWithVersion(ex, { orgId, viewer, ids: textArrayLiteral(ids) });
    return rows.map(splitJoined);
  },

  /**
   * What a resolve serves: the org's secrets, those of `teamId` and those of `userId` (the viewer's own) that `viewer`
   * sees (only `ids`, when given), each with its current version, oldest first, at most `limit`.
   */
  async listForResolve(
    ex: Executor,
    orgId: string,
    viewer: string,
    f: { teamId?: string; userId?: string; ids?: readonly string[]; limit: number },
  ): Promise<{ secret: SecretRow; version: SecretVersionRow | undefined }[]> {
    const rows = await withVersion(ex, vaultSecrets.currentVersion)
      .where(
        and(
          eq(vaultSecrets.orgId, orgId),
          visibleTo(viewer),
          // a connection's token set is no environment variable: it is used through the connections module
          eq(vaultSecrets.kind, "generic"),
          or(
            eq(vaultSecrets.scope, "org"),
            f.teamId === undefined ? undefined : and(eq(vaultSecrets.scope, "team"), eq(vaultSecrets.teamId, f.teamId)),
            f.userId === undefined ? undefined : and(eq(vaultSecrets.scope, "user"), eq(vaultSecrets.userId, f.userId)),
          ),
          f.ids === undefined ? undefined : sql`${vaultSecrets.id} = any(${textArray(f.ids)})`,
        ),
      )
      .orderBy(asc(vaultSecrets.id))
      .limit(f.limit);
    return rows.map(splitJoined);
  },

  /** Versions older than `version` (a managed secret keeps only its last two token sets). */
  async deleteVersionsBelow(tx: Executor, orgId: string, secretId: string, version: number): Promise<void> {
    await tx
      .delete(vaultSecretVersions)
      .where(and(eq(vaultSecretVersions.orgId, orgId), eq(vaultSecretVersions.secretId, secretId), lt(vaultSecretVersions.version, version)));
  },

  async findVersion(ex: Executor, orgId: string, secretId: string, version: number): Promise<SecretVersionRow | undefined> {
    const [r] = await findSecretVersion(ex, { orgId, secretId, version });
    return r;
  },

  /** Newest first, before the cursor version; metadata only (the ciphertext stays in the database). */
  listVersions(ex: Executor, orgId: string, secretId: string, opts: { before?: number; limit: number }) {
    return ex
      .select({
        version: vaultSecretVersions.version,
        kekVersion: vaultSecretVersions.kekVersion,
        createdBy: vaultSecretVersions.createdBy,
        createdAt: vaultSecretVersions.createdAt,
      })
      .from(vaultSecretVersions)
      .where(
        and(
          eq(vaultSecretVersions.orgId, orgId),
          eq(vaultSecretVersions.secretId, secretId),
          opts.before === undefined ? undefined : lt(vaultSecretVersions.version, opts.before),
        ),
      )
      .orderBy(desc(vaultSecretVersions.version))
      .limit(opts.limit);
  },
};

export type VaultRepo = typeof vaultRepo;
