/**
 * Scenario (ba) of bench/keys: bare.ts's route, GET /v1/bench/ping → {ok:true}, behind better-auth's API-key check.
 * better-auth is set up as its documentation recommends: betterAuth({ database: pg.Pool, plugins: [apiKey()] }) with
 * the api-key plugin (@better-auth/api-key), and each request's X-API-Key (the plugin's default header) is checked
 * with its documented server-side call, auth.api.verifyApiKey({ body: { key } }); not valid → 401.
 *
 * The plugin's defaults stand (keys stored as SHA-256 in the database, read there on every verify, no cache) except
 * one: its per-key rate limit is on by default at 10 requests a day, which would make the bench measure 429s, so it
 * is off here. The comparison is about the verify path (bench/keys prints this too).
 *
 * At boot, in the database Plinth's scenarios use, but in a schema of its own (better_auth, chosen by search_path as
 * better-auth documents for a non-default schema, so its tables never meet Plinth's in `public`): creates its tables
 * with its own migrations (getMigrations), signs up one user and creates one API key for it through its API, and
 * writes the key to BENCH_BA_KEY_FILE before announcing the port.
 *
 * Env: BENCH_PG_URL (a URL that may create a schema: the owner's), BENCH_BA_KEY_FILE, DATABASE_POOL_SIZE (default 10,
 * as Plinth's).
 */
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { apiKey } from "@better-auth/api-key";
import { betterAuth } from "better-auth";
import { getMigrations } from "better-auth/db/migration";
import Fastify from "fastify";
import pg from "pg";
import { serve } from "./announce.ts";

const url = process.env.BENCH_PG_URL;
const keyFile = process.env.BENCH_BA_KEY_FILE;
if (!url || !keyFile) throw new Error("BENCH_PG_URL and BENCH_BA_KEY_FILE are required");
const poolSize = Number(process.env.DATABASE_POOL_SIZE || 10);
const SCHEMA = "better_auth";

const setup = new pg.Client({ connectionString: url });
await setup.connect();
await setup.query(`create schema if not exists ${SCHEMA}`);
await setup.end();

// application_name: lets bench/keys find these connections in pg_stat_activity
const pool = new pg.Pool({ connectionString: url, max: poolSize, options: `-c search_path=${SCHEMA}`, application_name: "bench-better-auth" });
pool.on("error", () => {});

const auth = betterAuth({
  baseURL: "http://127.0.0.1",
  secret: randomBytes(32).toString("base64"),
  database: pool,
  emailAndPassword: { enabled: true },
  // off: the default (10 requests per key per day) would answer 429 after the tenth request of the bench
  plugins: [apiKey({ rateLimit: { enabled: false } })],
});

const { runMigrations } = await getMigrations(auth.options);
await runMigrations();
const email = `bench.${Date.now()}@example.com`;
const { user } = await auth.api.signUpEmail({ body: { email, password: `bench passphrase ${randomBytes(6).toString("hex")}`, name: "Bench User" } });
const created = await auth.api.createApiKey({ body: { userId: user.id, name: "bench" } });
writeFileSync(keyFile, created.key, { mode: 0o600 });

const app = Fastify();
app.get("/v1/bench/ping", async (req, reply) => {
  const key = req.headers["x-api-key"];
  if (typeof key !== "string" || !key) return reply.code(401).send({ error: "Send an API key: X-API-Key." });
  const result = await auth.api.verifyApiKey({ body: { key } });
  if (!result.valid) return reply.code(401).send({ error: result.error?.code ?? "INVALID_API_KEY" });
  return { ok: true };
});
await serve(app, () => pool.end());
