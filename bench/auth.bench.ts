import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
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
  machine,
  startServer,
  type Cleanup,
  type PlanStep,
  CAN_PIN,
  measure,
  type Measured,
  benchKnobs,
  benchWorkspace,
  plinthEnv,
  expectStatus,
  signUp,
} from "./lib.ts";

const LOG_LEVEL = process.env.BENCH_LOG_LEVEL || "warn";
/** Plinth reads PLINTH_JWT_ALG itself (the servers inherit the environment); ES256 (Plinth's default) unless set. */
const JWT_ALG = process.env.PLINTH_JWT_ALG || "ES256";
const logsRequests = (level: string) => ["info", "debug", "trace"].includes(level);
/** BENCH_SCENARIOS=b,d runs a subset (when profiling, say); ratios are printed for the pairs that ran. */
const { load: LOAD, poolSize: POOL_SIZE, only: ONLY } = benchKnobs("a,b,b+log,c,d");
const { connections: CONNECTIONS, durationSec: DURATION, warmupSec: WARMUP } = LOAD;

type Key = "a" | "b" | "b+log" | "c" | "d";

interface Scenario extends Measured {
  key: Key;
  label: string;
  logLevel?: string;
  /** Lines Plinth logged from the warm-up to its exit (stdout, flushed when it stops). */
  logLines?: number;
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
  // A throwaway PostgreSQL with one migrated database; Plinth's requests use the app role, as in production.
  const ws = await benchWorkspace(cleanup);
  const { tmp, db: pgService } = ws;
  const { appUrl } = pgService;
  const startPlinth = async (logLevel: string, log: string) =>
    // LOG_FORMAT json: what a collector reads (stdout is a file here, so it would be the default anyway)
    startServer(cleanup, "plinth.ts", await plinthEnv(ws, { poolSize: POOL_SIZE, logLevel, extra: { LOG_FORMAT: "json" } }), { stdoutFile: join(tmp, log) });
  process.stdout.write(`auth bench: ${pgService.version}, ${CONNECTIONS} connections, ${WARMUP} s warm-up + ${DURATION} s per scenario\n`);

  // Setup: register and sign in one user through Plinth's API, in a Plinth process stopped before measuring.
  let token: string;
  let userId: string;
  {
    const server = await startPlinth("warn", "plinth-setup.log");
    ({ accessToken: token, userId } = await signUp(server.url));
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
    {
      name: "(b+log)/a",
      top: "b+log",
      bottom: "a",
      metric: "rps",
      target: { op: "≥", value: 0.5 },
      what: "the same at Plinth's default LOG_LEVEL=info (one access line a request)",
    },
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
        .map(
          (s) =>
            `(${s.key}) run ${i + 1} logged ${s.logLines!.toLocaleString("en-US")} lines for ${s.result.total.toLocaleString("en-US")} measured requests and the warm-up's`,
        ),
    ),
  ];
  lines.push(...busyWarning(rounds));
  process.stdout.write(`${lines.join("\n")}\n`);

  writeResults(
    "auth",
    {
      settings: {
        rounds: rounds.length,
        connections: CONNECTIONS,
        durationSec: DURATION,
        warmupSec: WARMUP,
        logLevel: LOG_LEVEL,
        poolSize: Number(POOL_SIZE),
        jwtAlg: JWT_ALG,
      },
      machine: { ...machine(), postgres: pgService.version },
      ...roundsReport(rounds, ratios, (s) => ({ logLevel: (s as Scenario).logLevel, logLines: (s as Scenario).logLines })),
    },
    started,
  );
}

await runBench("auth", main);
