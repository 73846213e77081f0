/**
 * bench/auth: what Plinth's authentication and its smallest database-backed route cost, against the ceilings they
 * sit on. On a real PostgreSQL, with autocannon in its own process (50 connections, 10 s each, after a 2 s
 * warm-up), one server process at a time:
 *
 *   (a) a bare Fastify route                                                → the HTTP ceiling
 *   (b) the same route inside Plinth, behind its JWT authentication          → target b/a ≥ 70 %
 *   (c) a bare Fastify route running GET /v1/me's SELECT on a plain pg.Pool → the database-bound ceiling
 *   (d) Plinth's GET /v1/me                                                 → target d/c ≥ 60 %
 *   (b+log) (b) again at the default LOG_LEVEL=info, JSON lines to a file   → target (b+log)/a ≥ 50 %
 *
 * Request logging. (a) and (c) have no logger, and the targets are about authentication and the request path, so
 * (b) and (d) run Plinth at LOG_LEVEL=warn: no per-request log lines. Plinth's default is LOG_LEVEL=info, at which
 * every request writes one JSON access line (asynchronously); (b+log) measures exactly that (LOG_FORMAT=json, stdout
 * goes to a file, as it would to a collector), so the cost of the default is on every report. BENCH_LOG_LEVEL=info
 * runs (b) and (d) at info.
 *
 * Besides req/s and p99, each row shows the server process's own CPU time per request, and how much CPU other
 * processes on the machine used meanwhile: req/s on a shared machine moves with its neighbours, CPU per request
 * much less.
 *
 * The scenarios run BENCH_ROUNDS times (default 3), round after round; each ratio is taken within a round and
 * judged by its median over the rounds.
 *
 * Knobs: BENCH_ROUNDS, BENCH_CONNECTIONS, BENCH_DURATION, BENCH_WARMUP (seconds), BENCH_LOG_LEVEL, DATABASE_POOL_SIZE
 * (Plinth's and (c)'s, default 10), BENCH_SCENARIOS=a,b (a subset), BENCH_CPU_PROF=<dir> (a V8 CPU profile of each
 * server).
 *
 * Prints the figures, the ratios with PASS or FAIL, and writes bench/results/auth-<timestamp>.json. A missed target
 * is reported (FAIL), not a failure of the bench.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../server/test/services.ts";
import {
  runBench,
  runRounds,
  busyWarning,
  evaluateRatios,
  ratioTable,
  roundsReport,
  roundsTable,
  ROUNDS,
  writeResults,
  envNumber,
  machine,
  startServer,
  type Cleanup,
  type PlanStep,
  CAN_PIN,
  measure,
  startBenchDatabase,
  type Measured,
} from "./lib.ts";

const CONNECTIONS = envNumber("BENCH_CONNECTIONS", 50);
const DURATION = envNumber("BENCH_DURATION", 10);
const WARMUP = envNumber("BENCH_WARMUP", 2);
const LOAD = { connections: CONNECTIONS, durationSec: DURATION, warmupSec: WARMUP };
const LOG_LEVEL = process.env.BENCH_LOG_LEVEL || "warn";
const POOL_SIZE = String(envNumber("DATABASE_POOL_SIZE", 10));
/** Plinth reads PLINTH_JWT_ALG itself (the servers inherit the environment); ES256 (Plinth's default) unless set. */
const JWT_ALG = process.env.PLINTH_JWT_ALG || "ES256";
const logsRequests = (level: string) => ["info", "debug", "trace"].includes(level);
/** BENCH_SCENARIOS=b,d runs a subset (when profiling, say); ratios are printed for the pairs that ran. */
const ONLY = (process.env.BENCH_SCENARIOS || "a,b,b+log,c,d").split(",").map((s) => s.trim());

type Key = "a" | "b" | "b+log" | "c" | "d";


interface Scenario extends Measured {
  key: Key;
  label: string;
  logLevel?: string;
  /** Lines Plinth logged from the warm-up to its exit (stdout, flushed when it stops). */
  logLines?: number;
}


async function expectStatus(url: string, status: number, init: RequestInit = {}): Promise<any> {
  const res = await fetch(url, init);
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: keep the text for the message
  }
  if (res.status !== status) throw new Error(`${init.method ?? "GET"} ${url}: expected ${status}, got ${res.status}: ${text.slice(0, 500)}`);
  return body;
}

function countLines(file: string): number {
  try {
    if (!statSync(file).size) return 0;
    let n = 0;
    for (const c of readFileSync(file)) if (c === 10) n++;
    return n;
  } catch {
    return 0;
  }
}


async function main(cleanup: Cleanup): Promise<void> {
  const started = Date.now();
  const tmp = mkdtempSync(join(tmpdir(), "plinth-bench-"));
  cleanup.add("temp dir", () => rmSync(tmp, { recursive: true, force: true }));

  // A throwaway PostgreSQL with one migrated database; Plinth's requests use the app role, as in production.
  const pgService = await startBenchDatabase(cleanup);
  const { ownerUrl, appUrl } = pgService;

  const masterKey = randomBytes(32).toString("base64");
  const plinthEnv = (port: number, logLevel: string): Record<string, string> => ({
    PORT: String(port),
    // fixed, so that a token issued by one Plinth process is valid in the next: the issuer is the public URL
    PLINTH_PUBLIC_URL: "http://plinth.bench",
    PLINTH_MASTER_KEY: masterKey,
    PLINTH_DATA_DIR: join(tmp, "data"),
    DATABASE_URL: ownerUrl,
    DATABASE_APP_URL: appUrl,
    DATABASE_POOL_SIZE: POOL_SIZE,
    PLINTH_AUTO_MIGRATE: "false",
    LOG_LEVEL: logLevel,
    LOG_FORMAT: "json", // what a collector reads (stdout is a file here, so it would be the default anyway)
    REDIS_URL: "", // in-process rate limiting, whatever the caller's environment says
    SMTP_URL: "",
  });
  const startPlinth = async (logLevel: string, log: string) =>
    startServer(cleanup, "plinth.ts", plinthEnv(await freePort(), logLevel), { stdoutFile: join(tmp, log) });
  process.stdout.write(`auth bench: ${pgService.version}, ${CONNECTIONS} connections, ${WARMUP} s warm-up + ${DURATION} s per scenario\n`);

  // Setup: register and sign in one user through Plinth's API, in a Plinth process stopped before measuring.
  let token: string;
  let userId: string;
  {
    const server = await startPlinth("warn", "plinth-setup.log");
    const email = `bench.${Date.now()}@example.com`;
    const password = `bench passphrase ${randomBytes(6).toString("hex")}`;
    const post = (body: unknown): RequestInit => ({ method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const user = await expectStatus(`${server.url}/v1/auth/register`, 201, post({ email, password, name: "Bench User" }));
    const tokens = await expectStatus(`${server.url}/v1/auth/login`, 200, post({ email, password }));
    token = tokens.access_token;
    userId = user.id;
    await server.stop();
  }
  const bearer = { authorization: `Bearer ${token}` };

  /** (b): the trivial route inside Plinth; first shows that it really refuses a request without a token. */
  const pingInPlinth = async (key: Key, label: string, logLevel: string): Promise<Scenario> => {
    const log = `plinth-${key}.log`;
    const server = await startPlinth(logLevel, log);
    await expectStatus(`${server.url}/v1/bench/ping`, 401);
    await expectStatus(`${server.url}/v1/bench/ping`, 200, { headers: bearer });
    const before = countLines(join(tmp, log));
    const m = await measure(cleanup, server, "/v1/bench/ping", { ...LOAD, headers: bearer });
    await server.stop(); // the log is written asynchronously: count once the process has flushed it and exited
    const logLines = countLines(join(tmp, log)) - before;
    return { key, label, logLevel, ...m, logLines };
  };

  const plan: (PlanStep<Scenario> & { key: Key })[] = [
    {
      key: "a",
      label: "bare Fastify route",
      run: async (label) => {
        const server = await startServer(cleanup, "bare.ts", {});
        await expectStatus(`${server.url}/v1/bench/ping`, 200);
        const m = await measure(cleanup, server, "/v1/bench/ping", LOAD);
        await server.stop();
        return { key: "a", label, ...m };
      },
    },
    { key: "b", label: "same route in Plinth, JWT auth", run: (label) => pingInPlinth("b", label, LOG_LEVEL) },
    // (b) at Plinth's default level, unless (b) already ran at a level that logs every request
    ...(logsRequests(LOG_LEVEL)
      ? []
      : [{ key: "b+log" as const, label: "(b) with LOG_LEVEL=info (the default)", run: (label: string) => pingInPlinth("b+log", label, "info") }]),
    {
      key: "c",
      label: "bare Fastify + pg.Pool, same SELECT",
      run: async (label) => {
        const server = await startServer(cleanup, "pg-bare.ts", { BENCH_PG_URL: appUrl, BENCH_USER_ID: userId, DATABASE_POOL_SIZE: POOL_SIZE });
        const row = await expectStatus(`${server.url}/bench/me`, 200);
        if (row.id !== userId) throw new Error(`(c) answered the wrong row: ${JSON.stringify(row)}`);
        const m = await measure(cleanup, server, "/bench/me", LOAD);
        await server.stop();
        return { key: "c", label, ...m };
      },
    },
    {
      key: "d",
      label: "Plinth GET /v1/me",
      run: async (label) => {
        const log = "plinth-d.log";
        const server = await startPlinth(LOG_LEVEL, log);
        const me = await expectStatus(`${server.url}/v1/me`, 200, { headers: bearer });
        if (me.id !== userId) throw new Error(`/v1/me answered the wrong user: ${JSON.stringify(me)}`);
        const before = countLines(join(tmp, log));
        const m = await measure(cleanup, server, "/v1/me", { ...LOAD, headers: bearer });
        await server.stop();
        const logLines = countLines(join(tmp, log)) - before;
        return { key: "d", label, logLevel: LOG_LEVEL, ...m, logLines };
      },
    },
  ];
  const rounds = await runRounds(plan, ONLY, ROUNDS);

  const ratios = evaluateRatios(rounds, [
    { name: "b/a", top: "b", bottom: "a", metric: "rps", target: { op: "≥", value: 0.7 }, what: "Plinth + JWT auth vs bare Fastify" },
    { name: "b/a CPU", top: "b", bottom: "a", metric: "cpu", format: "times", what: "the same, server CPU per request" },
    { name: "(b+log)/a", top: "b+log", bottom: "a", metric: "rps", target: { op: "≥", value: 0.5 }, what: "the same at Plinth's default LOG_LEVEL=info (one access line a request)" },
    { name: "(b+log)/a CPU", top: "b+log", bottom: "a", metric: "cpu", format: "times", what: "the same, server CPU per request" },
    { name: "d/c", top: "d", bottom: "c", metric: "rps", target: { op: "≥", value: 0.6 }, what: "GET /v1/me vs the database-bound limit" },
    { name: "d/c CPU", top: "d", bottom: "c", metric: "cpu", format: "times", what: "the same, server CPU per request" },
  ]);

  const lines = [
    "",
    `Plinth auth bench: ${rounds.length} run(s), ${CONNECTIONS} connections, ${DURATION} s per scenario after ${WARMUP} s warm-up; autocannon in its own process`,
    `${pgService.version}; Node ${process.version}; ${machine().cpus} CPU(s) ${machine().cpuModel}; ${CAN_PIN ? "server pinned to CPU 0, autocannon to CPU 1" : "no CPU pinning"}`,
    `Plinth (b, d): LOG_LEVEL=${LOG_LEVEL}, so request logging is ${logsRequests(LOG_LEVEL) ? "ON (one JSON access line per request, stdout → file)" : "OFF"}` +
      `; DATABASE_POOL_SIZE=${POOL_SIZE}; ${JWT_ALG} tokens; job worker on`,
    "",
    ...roundsTable(rounds, 46, 8),
    "",
    ...ratioTable(ratios),
    "",
    ...rounds.flatMap((round, i) =>
      round
        .filter((s) => s.logLines !== undefined && s.logLevel && logsRequests(s.logLevel))
        .map((s) => `(${s.key}) run ${i + 1} logged ${s.logLines!.toLocaleString("en-US")} lines for ${s.result.total.toLocaleString("en-US")} measured requests and the warm-up's`),
    ),
  ];
  lines.push(...busyWarning(rounds));
  process.stdout.write(`${lines.join("\n")}\n`);

  writeResults("auth", {
    settings: { rounds: rounds.length, connections: CONNECTIONS, durationSec: DURATION, warmupSec: WARMUP, logLevel: LOG_LEVEL, poolSize: Number(POOL_SIZE), jwtAlg: JWT_ALG },
    machine: { ...machine(), postgres: pgService.version },
    ...roundsReport(rounds, ratios, (s) => ({ logLevel: (s as Scenario).logLevel, logLines: (s as Scenario).logLines })),
  }, started);
}

await runBench("auth", main);
