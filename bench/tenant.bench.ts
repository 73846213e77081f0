/**
 * bench/tenant: what the tenant-scoped read and write path (`db.tx({ orgId })` and what stands around it) costs,
 * against a bare Fastify + `pg` app doing the same SQL on the same tables. On a real PostgreSQL, with autocannon in
 * its own process (50 connections, 10 s each, after a 2 s warm-up), one server process at a time:
 *
 *   (p)  bare Fastify + pg: GET /bench/orgs/{orgId}, the SELECT of an org by primary key that Plinth runs, as the
 *        same role under the same RLS policies (the tenant set once per connection), a named statement (prepared
 *        once per connection, as Plinth's are)                                                 → the read floor
 *   (o)  Plinth's GET /v1/orgs/{orgId} with a warm API key (viewer): key check (with the session-revocation
 *        check), tenant step, permission, the read (`db.read({ orgId })`), the response schema
 *                                                           → target o/p ≥ 60 % of req/s, ≤ 1.5× server CPU/req
 *   (pw) bare Fastify + pg: PATCH /bench/orgs/{orgId} {display_name}: BEGIN, the UPDATE … RETURNING Plinth runs,
 *        one INSERT into audit_events, COMMIT, on one pooled client, named statements          → the write floor
 *   (p0, pw0, only when asked) (p) and (pw) with unnamed statements, as `pool.query(text, values)` is usually
 *        written: PostgreSQL then parses and plans the RLS-filtered statement on every call
 *   (w)  Plinth's PATCH /v1/orgs/{orgId} {display_name} with a warm API key (admin): the locked read, the update
 *        and its hash-chained org.updated audit event in one tenant transaction            → target w/pw ≥ 50 %
 *
 * Every PATCH body carries a fresh value (autocannon's [<id>]), so each request really changes the org and writes
 * an audit row. Both write routes change one org row each, so concurrent requests queue on its row lock, in Plinth
 * and in the bare app alike: their req/s say how long a write holds the lock.
 *
 * Plinth runs at LOG_LEVEL=warn (no per-request log lines; the bare app logs nothing either). Each row also shows
 * the server process's CPU per request, and PostgreSQL's (all its processes; the bench's own database, nothing
 * else runs on it).
 *
 * The scenarios run BENCH_ROUNDS times (default 3), round after round; each ratio is taken within a round (the
 * figure and its baseline measured minutes apart) and judged by its median over the rounds. Knobs: BENCH_ROUNDS,
 * BENCH_CONNECTIONS, BENCH_DURATION, BENCH_WARMUP (seconds), DATABASE_POOL_SIZE (every server's, default 10),
 * BENCH_SCENARIOS=p,o,pw,w (a subset; add p0,pw0 for the unnamed floors), BENCH_CPU_PROF=<dir> (a V8 CPU profile of
 * each server). Prints the figures, the ratios with PASS or FAIL, and writes bench/results/tenant-<time>.json. A
 * missed target is reported (FAIL), not a failure of the bench; a non-2xx answer while measuring is.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../server/test/services.ts";
import {
  CAN_PIN,
  ROUNDS,
  busyWarning,
  envNumber,
  evaluateRatios,
  machine,
  measure,
  ratioTable,
  roundsReport,
  roundsTable,
  runBench,
  runRounds,
  startBenchDatabase,
  startServer,
  writeResults,
  type Cleanup,
  type Measured,
  type PlanStep,
} from "./lib.ts";

const CONNECTIONS = envNumber("BENCH_CONNECTIONS", 50);
const DURATION = envNumber("BENCH_DURATION", 10);
const WARMUP = envNumber("BENCH_WARMUP", 2);
const LOAD = { connections: CONNECTIONS, durationSec: DURATION, warmupSec: WARMUP };
const POOL_SIZE = String(envNumber("DATABASE_POOL_SIZE", 10));
const ONLY = (process.env.BENCH_SCENARIOS || "p,o,pw,w").split(",").map((s) => s.trim());

type Key = "p" | "o" | "pw" | "w" | "p0" | "pw0";

interface Scenario extends Measured {
  key: Key;
  label: string;
}

async function expectStatus(url: string, status: number, init: RequestInit = {}): Promise<any> {
  const res = await fetch(url, init);
  const text = await res.text();
  if (res.status !== status) throw new Error(`${init.method ?? "GET"} ${url}: expected ${status}, got ${res.status}: ${text.slice(0, 500)}`);
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

const json = (method: string, body: unknown, headers: Record<string, string> = {}): RequestInit => ({
  method,
  headers: { "content-type": "application/json", ...headers },
  body: JSON.stringify(body),
});

async function main(cleanup: Cleanup): Promise<void> {
  const started = Date.now();
  const tmp = mkdtempSync(join(tmpdir(), "plinth-bench-"));
  cleanup.add("temp dir", () => rmSync(tmp, { recursive: true, force: true }));
  const pgService = await startBenchDatabase(cleanup);
  const { appUrl, ownerUrl } = pgService;
  process.stdout.write(`tenant bench: ${pgService.version}, ${CONNECTIONS} connections, ${WARMUP} s warm-up + ${DURATION} s per scenario\n`);

  const masterKey = randomBytes(32).toString("base64");
  const startPlinth = async (log: string) =>
    startServer(
      cleanup,
      "plinth.ts",
      {
        PORT: String(await freePort()),
        PLINTH_PUBLIC_URL: "http://plinth.bench",
        PLINTH_MASTER_KEY: masterKey,
        PLINTH_DATA_DIR: join(tmp, "data"),
        DATABASE_URL: ownerUrl,
        DATABASE_APP_URL: appUrl,
        DATABASE_POOL_SIZE: POOL_SIZE,
        PLINTH_AUTO_MIGRATE: "false",
        LOG_LEVEL: "warn",
        REDIS_URL: "",
        SMTP_URL: "",
      },
      { stdoutFile: join(tmp, log) },
    );

  // Setup through Plinth's API, in a process stopped before measuring: a user; an org for Plinth's routes with a
  // viewer key (reads) and an admin key (writes); a second org for the bare app's writes (its audit rows are not
  // chained, so they stay out of Plinth's org).
  let orgId: string;
  let bareOrgId: string;
  let viewerKey: string;
  let adminKey: string;
  {
    const server = await startPlinth("plinth-setup.log");
    const email = `bench.${Date.now()}@example.com`;
    const password = `bench passphrase ${randomBytes(6).toString("hex")}`;
    await expectStatus(`${server.url}/v1/auth/register`, 201, json("POST", { email, password, name: "Bench User" }));
    const { access_token } = await expectStatus(`${server.url}/v1/auth/login`, 200, json("POST", { email, password }));
    const bearer = { authorization: `Bearer ${access_token}` };
    const newOrg = async (name: string) => (await expectStatus(`${server.url}/v1/orgs`, 201, json("POST", { name, slug: `bench-${randomBytes(4).toString("hex")}` }, bearer))).id as string;
    orgId = await newOrg("Bench Org");
    bareOrgId = await newOrg("Bare Org");
    const key = async (name: string, role: string) => (await expectStatus(`${server.url}/v1/orgs/${orgId}/keys`, 201, json("POST", { name, roles: [role] }, bearer))).secret as string;
    viewerKey = await key("bench-viewer", "viewer");
    adminKey = await key("bench-admin", "admin");
    await server.stop();
  }
  const patchBody = JSON.stringify({ display_name: "bench [<id>]" });
  const patch = { method: "PATCH" as const, body: patchBody };

  const bare = async (key: Key, label: string, org: string, check: (url: string) => Promise<void>, shape: { method?: "PATCH"; body?: string } = {}): Promise<Scenario> => {
    const unnamed = key.endsWith("0") ? "1" : "0";
    const server = await startServer(cleanup, "tenant-bare.ts", { BENCH_PG_URL: appUrl, BENCH_ORG_ID: org, DATABASE_POOL_SIZE: POOL_SIZE, BENCH_BARE_UNNAMED: unnamed });
    const path = `/bench/orgs/${org}`;
    await check(server.url + path);
    const m = await measure(cleanup, server, path, { ...LOAD, ...shape, headers: { "content-type": "application/json" } });
    await server.stop();
    return { key, label, ...m };
  };
  const plinth = async (key: Key, label: string, secret: string, check: (url: string) => Promise<void>, shape: { method?: "PATCH"; body?: string } = {}): Promise<Scenario> => {
    const server = await startPlinth(`plinth-${key}.log`);
    const path = `/v1/orgs/${orgId}`;
    await check(server.url + path);
    const m = await measure(cleanup, server, path, { ...LOAD, ...shape, headers: { "x-api-key": secret, "content-type": "application/json" } });
    await server.stop();
    return { key, label, ...m };
  };
  const sameOrg = (want: string) => (org: { id?: string }) => {
    if (org?.id !== want) throw new Error(`answered the wrong org: ${JSON.stringify(org)}`);
  };

  const plan: (PlanStep<Scenario> & { key: Key })[] = [
    {
      key: "p",
      label: "bare Fastify + pg: SELECT org by id",
      run: (label) => bare("p", label, orgId, async (url) => sameOrg(orgId)(await expectStatus(url, 200))),
    },
    {
      key: "p0",
      label: "bare Fastify + pg: the same, unnamed",
      run: (label) => bare("p0", label, orgId, async (url) => sameOrg(orgId)(await expectStatus(url, 200))),
    },
    {
      key: "o",
      label: "Plinth GET /v1/orgs/{orgId}, API key",
      run: (label) =>
        plinth("o", label, viewerKey, async (url) => {
          await expectStatus(url, 401);
          sameOrg(orgId)(await expectStatus(url, 200, { headers: { "x-api-key": viewerKey } }));
          // the viewer may read but not write: the write scenario below needs its admin key
          await expectStatus(url, 403, json("PATCH", { display_name: "no" }, { "x-api-key": viewerKey }));
        }),
    },
    {
      key: "pw",
      label: "bare Fastify + pg: UPDATE + INSERT audit",
      run: (label) =>
        bare("pw", label, bareOrgId, async (url) => {
          const org = await expectStatus(url, 200, json("PATCH", { display_name: "check" }));
          if (org?.display_name !== "check") throw new Error(`the bare PATCH did not change the org: ${JSON.stringify(org)}`);
        }, patch),
    },
    {
      key: "pw0",
      label: "bare Fastify + pg: the same, unnamed",
      run: (label) =>
        bare("pw0", label, bareOrgId, async (url) => {
          const org = await expectStatus(url, 200, json("PATCH", { display_name: "check" }));
          if (org?.display_name !== "check") throw new Error(`the bare PATCH did not change the org: ${JSON.stringify(org)}`);
        }, patch),
    },
    {
      key: "w",
      label: "Plinth PATCH /v1/orgs/{orgId}, API key",
      run: (label) =>
        plinth("w", label, adminKey, async (url) => {
          const org = await expectStatus(url, 200, json("PATCH", { display_name: "check" }, { "x-api-key": adminKey }));
          if (org?.display_name !== "check") throw new Error(`PATCH did not change the org: ${JSON.stringify(org)}`);
          const audit = await expectStatus(`${url}/audit?action=org.updated&limit=1`, 200, { headers: { "x-api-key": adminKey } });
          if (audit?.items?.[0]?.diff?.display_name?.[1] !== "check") throw new Error(`PATCH wrote no audit event: ${JSON.stringify(audit)}`);
        }, patch),
    },
  ];
  const rounds = await runRounds(plan, ONLY, ROUNDS);

  const ratios = evaluateRatios(rounds, [
    { name: "o/p", top: "o", bottom: "p", metric: "rps", target: { op: "≥", value: 0.6 }, what: "Plinth's tenant-scoped read vs the bare SELECT" },
    { name: "o/p CPU", top: "o", bottom: "p", metric: "cpu", format: "times", target: { op: "≤", value: 1.5 }, what: "the same, server CPU per request" },
    { name: "o/p db", top: "o", bottom: "p", metric: "db", format: "times", what: "the same, PostgreSQL's CPU per request" },
    { name: "o/p0", top: "o", bottom: "p0", metric: "rps", what: "the read vs the bare SELECT sent unnamed (parsed and planned per call)" },
    { name: "w/pw", top: "w", bottom: "pw", metric: "rps", target: { op: "≥", value: 0.5 }, what: "Plinth's tenant-scoped write + chained audit event vs the bare UPDATE + INSERT" },
    { name: "w/pw CPU", top: "w", bottom: "pw", metric: "cpu", format: "times", what: "the same, server CPU per request" },
    { name: "w/pw db", top: "w", bottom: "pw", metric: "db", format: "times", what: "the same, PostgreSQL's CPU per request" },
    { name: "w/pw0", top: "w", bottom: "pw0", metric: "rps", what: "the write vs the bare UPDATE + INSERT sent unnamed" },
  ]);

  const lines = [
    "",
    `Plinth tenant bench: ${rounds.length} run(s), ${CONNECTIONS} connections, ${DURATION} s per scenario after ${WARMUP} s warm-up; autocannon in its own process`,
    `${pgService.version}; Node ${process.version}; ${machine().cpus} CPU(s) ${machine().cpuModel}; ${CAN_PIN ? "server pinned to CPU 0, autocannon to CPU 1" : "no CPU pinning"}`,
    `Plinth: LOG_LEVEL=warn (no request logging), DATABASE_POOL_SIZE=${POOL_SIZE}, API keys by X-API-Key (viewer for GET, admin for PATCH)`,
    "",
    ...roundsTable(rounds, 48, 6, { db: true }),
    "",
    ...ratioTable(ratios),
    ...busyWarning(rounds),
  ];
  process.stdout.write(`${lines.join("\n")}\n`);

  writeResults("tenant", {
    settings: { rounds: rounds.length, connections: CONNECTIONS, durationSec: DURATION, warmupSec: WARMUP, poolSize: Number(POOL_SIZE) },
    machine: { ...machine(), postgres: pgService.version },
    ...roundsReport(rounds, ratios),
  }, started);
}

await runBench("tenant", main);
