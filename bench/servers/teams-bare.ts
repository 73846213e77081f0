/**
 * Scenario (t) of bench/access: the ceiling for a tenant-scoped page. A bare Fastify route (no logger, no hooks, no
 * auth) runs the very SELECT that GET /v1/orgs/{orgId}/teams?limit=50 runs (teams.repo list) on a plain pg.Pool of
 * the same size, as plinth_app but without a transaction or set_config — so row-level security filters every row
 * out, and the bare route reads the table as its owner would: BENCH_PG_URL must be the owner's URL.
 *
 * Env: BENCH_PG_URL, BENCH_ORG_ID, DATABASE_POOL_SIZE (default 10, as Plinth's).
 */
import Fastify from "fastify";
import pg from "pg";
import { serve } from "./announce.ts";

const url = process.env.BENCH_PG_URL;
const orgId = process.env.BENCH_ORG_ID;
if (!url || !orgId) throw new Error("BENCH_PG_URL and BENCH_ORG_ID are required");
const poolSize = Number(process.env.DATABASE_POOL_SIZE || 10);
// teams.repo list(): one more row than the page, to know whether there is a next page
const text = "select id, name, description, parent_id, path, created_by, created_at, updated_at from teams where org_id = $1 order by id limit $2";

const pool = new pg.Pool({ connectionString: url, max: poolSize });
pool.on("error", () => {});

const app = Fastify();
app.get("/bench/teams", async () => {
  const { rows } = await pool.query(text, [orgId, 51]);
  const items = rows.slice(0, 50);
  return { items, next_cursor: rows.length > 50 ? Buffer.from(items[49].id).toString("base64url") : null };
});
await serve(app, () => pool.end());
