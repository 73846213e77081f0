/**
 * bench/vault's floor: a bare Fastify app (no logger, no hooks, no auth) on a plain pg.Pool of the same size, as the
 * same role (plinth_app), on the same tables under the same row-level security policies, the tenant set once per
 * connection at start-up (`-c app.org_id=…`):
 *
 *   POST /bench/secrets/:secretId/reveal   in one transaction (BEGIN … COMMIT on one pooled client): the SELECT of
 *                                          the secret joined with its current version that Plinth's reveal runs,
 *                                          and one INSERT into audit_events (bare-audit.ts); answers the ciphertext
 *
 * It decrypts nothing: unwrapping the org's key and the data key and opening the value (three AES-256-GCM
 * operations), the key-encryption key's row, the audit hash chain, authentication and authorization are Plinth's
 * extra work, which the ratio measures. The SQL texts come from drizzle (once, at boot), as in tenant-bare; the
 * statements are named (prepared once per connection), as Plinth's are.
 *
 * Env: BENCH_PG_URL (app-role URL), BENCH_ORG_ID (the only org these connections serve), DATABASE_POOL_SIZE.
 */
import { and, eq, getTableColumns, ne, or, sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/node-postgres";
import Fastify from "fastify";
import pg from "pg";
import { vaultSecrets, vaultSecretVersions } from "../../server/src/db/schema/vault.ts";
import { serve } from "./announce.ts";
import { bareAudit } from "./bare-audit.ts";

const url = process.env.BENCH_PG_URL;
const orgId = process.env.BENCH_ORG_ID;
if (!url || !orgId) throw new Error("BENCH_PG_URL and BENCH_ORG_ID are required");
const poolSize = Number(process.env.DATABASE_POOL_SIZE || 10);

const mock = drizzle.mock();
// the one SELECT Plinth's reveal sends: the secret with its current version (vault.repo.ts, withVersion)
const selectSecret = mock
  .select({ ...getTableColumns(vaultSecrets), ...Object.fromEntries(Object.entries(getTableColumns(vaultSecretVersions)).map(([k, c]) => [`v$${k}`, c])) })
  .from(vaultSecrets)
  .leftJoin(
    vaultSecretVersions,
    and(
      eq(vaultSecretVersions.orgId, vaultSecrets.orgId),
      eq(vaultSecretVersions.secretId, vaultSecrets.id),
      eq(vaultSecretVersions.version, sql`coalesce(${null}::integer, ${vaultSecrets.currentVersion})`),
    ),
  )
  .where(and(eq(vaultSecrets.orgId, "x"), eq(vaultSecrets.id, "x"), or(ne(vaultSecrets.scope, "user"), eq(vaultSecrets.userId, "x"))))
  .toSQL().sql;
const insert = bareAudit(mock, orgId, "secret.revealed", "secret");
process.stderr.write(`vault-bare queries:\n  ${selectSecret}\n  ${insert.sql}\n`);

const pool = new pg.Pool({ connectionString: url, max: poolSize, options: `-c app.org_id=${orgId}` });
pool.on("error", () => {});
let seq = Number((await pool.query("select coalesce(max(seq), 0) as n from audit_events where org_id = $1", [orgId])).rows[0].n);

const app = Fastify();
app.post<{ Params: { secretId: string } }>("/bench/secrets/:secretId/reveal", async (req, reply) => {
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    const { rows } = await client.query({ name: "bare_secret", text: selectSecret, values: [null, orgId, req.params.secretId, "user", "usr_bench"] });
    if (!rows.length) {
      await client.query("ROLLBACK");
      client.release();
      return reply.code(404).send({ error: "not found" });
    }
    const current = rows[0].current_version as number;
    await client.query({ name: "bare_audit", text: insert.sql, values: insert.values(++seq, req.params.secretId, { name: "BENCH", version: current }) });
    await client.query("COMMIT");
    client.release();
    return { id: req.params.secretId, version: current, ciphertext: rows[0].ciphertext };
  } catch (e) {
    client.release(e as Error);
    throw e;
  }
});
await serve(app, () => pool.end());
