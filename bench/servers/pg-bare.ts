/**
 * Scenario (c): the database-bound limit. A bare Fastify route (no logger, no hooks) runs the very SELECT that
 * GET /v1/me issues through drizzle (identity.repo findUserById), on a plain pg.Pool of the same size, as the same
 * role (plinth_app), and answers the row as JSON.
 *
 * The user id comes from the environment, as /v1/me takes it from the token: no path parameter to parse.
 *
 * Env: BENCH_PG_URL (app-role URL), BENCH_USER_ID, DATABASE_POOL_SIZE (default 10, as Plinth's).
 */
import { eq } from "drizzle-orm";
import { drizzle } from "drizzle-orm/node-postgres";
import Fastify from "fastify";
import pg from "pg";
import { users } from "../../server/src/db/schema/index.ts";
import { serve } from "./announce.ts";

const url = process.env.BENCH_PG_URL;
const userId = process.env.BENCH_USER_ID;
if (!url || !userId) throw new Error("BENCH_PG_URL and BENCH_USER_ID are required");
const poolSize = Number(process.env.DATABASE_POOL_SIZE || 10);

// Take the SQL text from drizzle itself (once, at boot) so the query is exactly the one /v1/me runs:
// select "id", "email", … from "users" where "users"."id" = $1 limit $2
const probe = drizzle.mock().select().from(users).where(eq(users.id, "x")).limit(1).toSQL();
const text = probe.sql;
process.stderr.write(`pg-bare query: ${text}\n`);

const pool = new pg.Pool({ connectionString: url, max: poolSize });
pool.on("error", () => {});

const app = Fastify();
app.get("/bench/me", async (_req, reply) => {
  const { rows } = await pool.query(text, [userId, 1]);
  if (!rows.length) return reply.code(404).send({ error: "not found" });
  return rows[0];
});
await serve(app, () => pool.end());
