/**
 * bench/tenant's floors: a bare Fastify app (no logger, no hooks, no auth) on a plain pg.Pool of the same size, as
 * the same role (plinth_app), on the same tables under the same row-level security policies. The tenant is set once
 * per connection at start-up (`-c app.org_id=…`), so these routes pay nothing per request for it:
 *
 *   GET   /bench/orgs/:orgId   the SELECT that GET /v1/orgs/{orgId} runs (orgs by primary key, live only)
 *   PATCH /bench/orgs/:orgId   {display_name}: in one transaction, the UPDATE … RETURNING that PATCH /v1/orgs/{orgId}
 *                              runs and one INSERT into audit_events (the textbook node-postgres transaction:
 *                              BEGIN, UPDATE, INSERT, COMMIT on one pooled client)
 *
 * The SQL texts come from drizzle itself (once, at boot) so they are the very statements Plinth sends. The audit row
 * is a plain insert with a sequence number this process counts (bare-audit.ts; no hash chain: that is Plinth's extra work).
 *
 * Statements are named (prepared once per connection, as Plinth's hot statements are): planning an RLS-filtered
 * statement costs PostgreSQL more than running it, so unnamed statements would make the floor a slow one.
 * BENCH_BARE_UNNAMED=1 sends them unnamed, as `pool.query(text, values)` is usually written.
 *
 * Env: BENCH_PG_URL (app-role URL), BENCH_ORG_ID (the only org these connections serve), DATABASE_POOL_SIZE.
 */
import { and, eq, isNull } from "drizzle-orm";
import { drizzle } from "drizzle-orm/node-postgres";
import Fastify from "fastify";
import pg from "pg";
import { orgs } from "../../server/src/db/schema/index.ts";
import { bareAudit } from "./bare-audit.ts";
import { serve } from "./announce.ts";

const url = process.env.BENCH_PG_URL;
const orgId = process.env.BENCH_ORG_ID;
if (!url || !orgId) throw new Error("BENCH_PG_URL and BENCH_ORG_ID are required");
const poolSize = Number(process.env.DATABASE_POOL_SIZE || 10);

const mock = drizzle.mock();
const select = mock
  .select()
  .from(orgs)
  .where(and(eq(orgs.id, "x"), isNull(orgs.deletedAt)))
  .toSQL().sql;
const update = mock
  .update(orgs)
  .set({ displayName: "x", updatedAt: new Date() })
  .where(and(eq(orgs.id, "x"), isNull(orgs.deletedAt)))
  .returning()
  .toSQL().sql;
const insert = bareAudit(mock, orgId, "org.updated", "org");
process.stderr.write(`tenant-bare queries:\n  ${select}\n  ${update}\n  ${insert.sql}\n`);

const named = process.env.BENCH_BARE_UNNAMED !== "1";
const q = (name: string, text: string, values: unknown[]) => (named ? { name, text, values } : { text, values });

const pool = new pg.Pool({ connectionString: url, max: poolSize, options: `-c app.org_id=${orgId}` });
pool.on("error", () => {});
// audit seqs of this process: after the org's last event (an earlier bare run's, say), counted here from then on
let seq = Number((await pool.query("select coalesce(max(seq), 0) as n from audit_events where org_id = $1", [orgId])).rows[0].n);

const app = Fastify();
app.get<{ Params: { orgId: string } }>("/bench/orgs/:orgId", async (req, reply) => {
  const { rows } = await pool.query(q("bare_select", select, [req.params.orgId]));
  if (!rows.length) return reply.code(404).send({ error: "not found" });
  return rows[0];
});
app.patch<{ Params: { orgId: string }; Body: { display_name: string } }>("/bench/orgs/:orgId", async (req, reply) => {
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    const { rows } = await client.query(q("bare_update", update, [req.body.display_name, new Date(), req.params.orgId]));
    if (!rows.length) {
      await client.query("ROLLBACK");
      return reply.code(404).send({ error: "not found" });
    }
    await client.query(q("bare_insert", insert.sql, insert.values(++seq, orgId, { display_name: [null, req.body.display_name] })));
    await client.query("COMMIT");
    client.release();
    return rows[0];
  } catch (e) {
    client.release(e as Error);
    throw e;
  }
});
await serve(app, () => pool.end());
