/**
 * bench/keys: what a request authenticated by an API key costs in Plinth, against bare Fastify and against
 * better-auth's api-key plugin. On a real PostgreSQL, with autocannon in its own process (50 connections, 10 s each,
 * after a 2 s warm-up), one server process at a time, every request carrying X-API-Key (the bare route ignores it):
 *
 *   (a)  a bare Fastify route, GET /v1/bench/ping → {ok:true}                          → the HTTP ceiling
 *   (k)  the same route under an org in Plinth, GET /v1/orgs/{orgId}/bench/ping (org:read), a viewer key, its facts
 *        cached by the warm-up: key check, tenant step, permission                     → target k/a ≥ 60 %
 *   (ba) the bare route behind better-auth's api-key plugin (@better-auth/api-key), as its documentation sets it up
 *        on a pg.Pool in the same database (its own schema), each request checked by auth.api.verifyApiKey
 *                                                                                       → target k/ba ≥ 2×
 *   (o)  Plinth's GET /v1/orgs/{orgId} with the same key: a real org route, which also reads the org in a tenant
 *        transaction                                                                   → information, no target
 *   (k-auth, only when asked) the key on Plinth's GET /v1/bench/ping: authentication alone, no tenant step
 *
 * better-auth keeps its defaults (the key's SHA-256 stored in its table and read on every verify) but one: its per-key
 * rate limit, on by default at 10 requests a day, is off, or the bench would measure 429s; the comparison is about the
 * verify path. Every scenario first shows that its route refuses a wrong key (401) and admits the right one.
 *
 * Plinth runs at LOG_LEVEL=warn (no per-request log lines; bare Fastify and better-auth's server log nothing either),
 * as bench/auth's (b). Knobs: BENCH_CONNECTIONS, BENCH_DURATION, BENCH_WARMUP (seconds), DATABASE_POOL_SIZE (every
 * server's, default 10), BENCH_SCENARIOS=a,k,ba,o,k-auth (a subset), BENCH_CPU_PROF=<dir> (a V8 CPU profile of each
 * server), BENCH_ROUNDS (default 3: the scenarios run round after round, each ratio taken within a round and judged by
 * its median). Prints the figures, the ratios with PASS or FAIL, and writes bench/results/keys-<timestamp>.json. A
 * missed target is reported (FAIL), not a failure of the bench; a non-2xx answer while measuring is.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { newSecret } from "../server/src/modules/keys/api-keys.format.ts";
import {
  CAN_PIN,
  ROUNDS,
  busyWarning,
  evaluateRatios,
  machine,
  measure,
  ratioTable,
  roundsReport,
  roundsTable,
  runBench,
  runRounds,
  startServer,
  writeResults,
  type Cleanup,
  type Measured,
  type PlanStep,
  benchKnobs,
  benchWorkspace,
  plinthEnv,
  expectStatus,
  signUp,
  createOrg,
  createKey,
} from "./lib.ts";

const { load: LOAD, poolSize: POOL_SIZE, only: ONLY } = benchKnobs("a,k,ba,o");
const { connections: CONNECTIONS, durationSec: DURATION, warmupSec: WARMUP } = LOAD;

type Key = "a" | "k" | "ba" | "o" | "k-auth";

interface Scenario extends Measured {
  key: Key;
  label: string;
  /** (ba) only: what one verify did to better-auth's apikey table, from PostgreSQL's statistics. */
  perRequest?: { rowsUpdated: number; indexScans: number };
}

/** A key of the same shape with one character changed: what a typo or a guess looks like. */
function tamper(secret: string): string {
  const last = secret.at(-1);
  return secret.slice(0, -1) + (last === "A" ? "B" : "A");
}

/** Shows that a key route refuses what it must (each answer 401) and admits `good` with {ok:true}. */
async function checkRefusals(url: string, good: string, wrong: string[]): Promise<void> {
  await expectStatus(url, 401);
  for (const key of wrong) await expectStatus(url, 401, { headers: { "x-api-key": key } });
  const ok = await expectStatus(url, 200, { headers: { "x-api-key": good } });
  if (ok?.ok !== true) throw new Error(`${url} admitted the key but answered ${JSON.stringify(ok)}`);
}

/**
 * What one better-auth verify does to its apikey table: PostgreSQL's statistics before and after 200 requests. A
 * backend reports its counts when it ends (an idle one may hold them for 10 s), so each reading first ends the
 * better-auth server's idle connections (its pool opens new ones).
 */
async function verifyWrites(ownerUrl: string, url: string, key: string): Promise<{ rowsUpdated: number; indexScans: number }> {
  const owner = new pg.Client({ connectionString: ownerUrl });
  await owner.connect();
  try {
    const read = async () => {
      await owner.query("select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'bench-better-auth' and state = 'idle'");
      await new Promise((r) => setTimeout(r, 500));
      const { rows } = await owner.query("select n_tup_upd, idx_scan from pg_stat_user_tables where schemaname = 'better_auth' and relname = 'apikey'");
      return { upd: Number(rows[0]?.n_tup_upd ?? 0), idx: Number(rows[0]?.idx_scan ?? 0) };
    };
    const n = 200;
    const before = await read();
    for (let i = 0; i < n; i++) await expectStatus(url, 200, { headers: { "x-api-key": key } });
    const after = await read();
    return { rowsUpdated: (after.upd - before.upd) / n, indexScans: (after.idx - before.idx) / n };
  } finally {
    await owner.end();
  }
}

async function main(cleanup: Cleanup): Promise<void> {
  const started = Date.now();
  const ws = await benchWorkspace(cleanup);
  const { tmp, db: pgService } = ws;
  const { ownerUrl } = pgService;
  process.stdout.write(`keys bench: ${pgService.version}, ${CONNECTIONS} connections, ${WARMUP} s warm-up + ${DURATION} s per scenario\n`);

  const startPlinth = async (log: string) => startServer(cleanup, "plinth.ts", await plinthEnv(ws, { poolSize: POOL_SIZE }), { stdoutFile: join(tmp, log) });

  // Setup through Plinth's API, in a process stopped before measuring: a user, an org of theirs, a viewer key in it.
  let orgId: string;
  let secret: string;
  {
    const server = await startPlinth("plinth-setup.log");
    const { bearer } = await signUp(server.url);
    orgId = await createOrg(server.url, bearer);
    secret = await createKey(server.url, bearer, orgId, "bench", ["viewer"]);
    await server.stop();
  }
  const apiKeyHeader = { "x-api-key": secret };
  // wrong keys for Plinth: a typo (refused by the checksum, no database) and a well-formed unknown key (read, not found)
  const plinthWrong = [tamper(secret), newSecret()];

  const inPlinth = async (key: Key, label: string, path: string, check: (url: string) => Promise<void>): Promise<Scenario> => {
    const server = await startPlinth(`plinth-${key}.log`);
    await check(server.url + path);
    const m = await measure(cleanup, server, path, { ...LOAD, headers: apiKeyHeader });
    await server.stop();
    return { key, label, ...m };
  };

  const plan: (PlanStep<Scenario> & { key: Key })[] = [
    {
      key: "a",
      label: "bare Fastify route",
      run: async (label) => {
        const server = await startServer(cleanup, "bare.ts", {});
        await expectStatus(`${server.url}/v1/bench/ping`, 200);
        const m = await measure(cleanup, server, "/v1/bench/ping", { ...LOAD, headers: apiKeyHeader });
        await server.stop();
        return { key: "a", label, ...m };
      },
    },
    {
      key: "k",
      label: "Plinth org route, API key (warm)",
      run: (label) => inPlinth("k", label, `/v1/orgs/${orgId}/bench/ping`, (url) => checkRefusals(url, secret, plinthWrong)),
    },
    {
      key: "k-auth",
      label: "Plinth /v1/bench/ping, API key",
      run: (label) => inPlinth("k-auth", label, "/v1/bench/ping", (url) => checkRefusals(url, secret, plinthWrong)),
    },
    {
      key: "ba",
      label: "better-auth verifyApiKey + route",
      run: async (label) => {
        const keyFile = join(tmp, "better-auth.key");
        const server = await startServer(cleanup, "better-auth.ts", { BENCH_PG_URL: ownerUrl, BENCH_BA_KEY_FILE: keyFile, DATABASE_POOL_SIZE: POOL_SIZE });
        const baKey = readFileSync(keyFile, "utf8");
        const url = `${server.url}/v1/bench/ping`;
        await checkRefusals(url, baKey, [tamper(baKey), randomBytes(48).toString("base64url").slice(0, baKey.length)]);
        const perRequest = await verifyWrites(ownerUrl, url, baKey);
        const m = await measure(cleanup, server, "/v1/bench/ping", { ...LOAD, headers: { "x-api-key": baKey } });
        await server.stop();
        return { key: "ba", label, ...m, perRequest };
      },
    },
    {
      key: "o",
      label: "Plinth GET /v1/orgs/{orgId}, API key",
      run: (label) =>
        inPlinth("o", label, `/v1/orgs/${orgId}`, async (url) => {
          await expectStatus(url, 401, { headers: { "x-api-key": plinthWrong[1] } });
          const org = await expectStatus(url, 200, { headers: apiKeyHeader });
          if (org.id !== orgId) throw new Error(`GET /v1/orgs/{orgId} answered the wrong org: ${JSON.stringify(org)}`);
        }),
    },
  ];
  const rounds = await runRounds(plan, ONLY, ROUNDS);

  const ratios = evaluateRatios(rounds, [
    { name: "k/a", top: "k", bottom: "a", metric: "rps", target: { op: "≥", value: 0.6 }, what: "Plinth's key-authenticated org route vs bare Fastify" },
    { name: "k/a CPU", top: "k", bottom: "a", metric: "cpu", format: "times", what: "the same, server CPU per request" },
    // not from CPU: better-auth's cost is largely PostgreSQL's, outside its server process
    {
      name: "k/ba",
      top: "k",
      bottom: "ba",
      metric: "rps",
      format: "times",
      target: { op: "≥", value: 2 },
      what: "Plinth's key check vs better-auth's verifyApiKey",
    },
    { name: "k-auth/a", top: "k-auth", bottom: "a", metric: "rps", what: "the key check alone (no tenant step) vs bare Fastify" },
    { name: "o/a", top: "o", bottom: "a", metric: "rps", what: "GET /v1/orgs/{orgId} (a database read) vs bare Fastify" },
  ]);

  const lines = [
    "",
    `Plinth keys bench: ${rounds.length} run(s), ${CONNECTIONS} connections, ${DURATION} s per scenario after ${WARMUP} s warm-up; autocannon in its own process`,
    `${pgService.version}; Node ${process.version}; ${machine().cpus} CPU(s) ${machine().cpuModel}; ${CAN_PIN ? "server pinned to CPU 0, autocannon to CPU 1" : "no CPU pinning"}`,
    `Plinth: LOG_LEVEL=warn (no request logging), DATABASE_POOL_SIZE=${POOL_SIZE}, a viewer key by X-API-Key; better-auth: @better-auth/api-key defaults,` +
      " its per-key rate limit OFF (default 10 requests/day would answer 429)",
    "",
    ...roundsTable(rounds, 46, 9),
    "",
    ...ratioTable(ratios),
  ];
  const ba = rounds.flat().find((s) => s.key === "ba");
  if (ba?.perRequest) {
    lines.push(
      "",
      `(ba) per verify (200 of them, from PostgreSQL's statistics): ${ba.perRequest.rowsUpdated.toFixed(2)} apikey rows updated, ${ba.perRequest.indexScans.toFixed(2)} index scans` +
        " (its server CPU µs/req leaves out PostgreSQL's share)",
    );
  }
  lines.push(...busyWarning(rounds));
  process.stdout.write(`${lines.join("\n")}\n`);

  writeResults(
    "keys",
    {
      settings: {
        rounds: rounds.length,
        connections: CONNECTIONS,
        durationSec: DURATION,
        warmupSec: WARMUP,
        poolSize: Number(POOL_SIZE),
        betterAuthRateLimit: "off",
      },
      machine: { ...machine(), postgres: pgService.version },
      ...roundsReport(rounds, ratios, (s) => ({ perRequest: (s as Scenario).perRequest })),
    },
    started,
  );
}

await runBench("keys", main);
