/**
 * Shared machinery for the benchmarks: servers under test and the load generator each run in their own child
 * process (never in the bench's own process), one server at a time, and everything started is stopped again, also
 * when a step fails or the bench is interrupted.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { openPostgres } from "../server/src/db/client.ts";
import { migrate } from "../server/src/db/migrate.ts";
import { dbUrl } from "../server/test/harness.ts";
import { freePort, startPostgres } from "../server/test/services.ts";

export const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
export const ROOT = join(BENCH_DIR, "..");
const AUTOCANNON = join(ROOT, "node_modules", "autocannon", "autocannon.js");

/** LIFO list of things to undo; `run()` is idempotent and never throws. Also runs on SIGINT/SIGTERM. */
export function createCleanup() {
  const steps: { what: string; fn: () => Promise<void> | void }[] = [];
  let running: Promise<void> | undefined;
  let stopping = false;
  const cleanup = {
    /** True once SIGINT/SIGTERM arrived: a failure after that is the interruption, not a finding. */
    get interrupted(): boolean {
      return stopping;
    },
    add(what: string, fn: () => Promise<void> | void): void {
      steps.push({ what, fn });
    },
    run(): Promise<void> {
      running ??= (async () => {
        while (steps.length) {
          const step = steps.pop()!;
          try {
            await step.fn();
          } catch (e) {
            process.stderr.write(`cleanup: ${step.what} failed: ${(e as Error).message}\n`);
          }
        }
      })();
      return running;
    },
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    // `on`, not `once`: a second signal (Ctrl-C reaches the whole process group, run.ts forwards too) must not
    // kill the bench before it has stopped what it started
    process.on(signal, () => {
      if (!stopping) process.stderr.write(`\n${signal}: stopping child processes…\n`);
      stopping = true;
      void cleanup.run().then(() => process.exit(130));
    });
  }
  return cleanup;
}

export type Cleanup = ReturnType<typeof createCleanup>;

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve(true);
    const timer = setTimeout(() => resolve(false), ms);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** SIGTERM, then SIGKILL if the process has not gone within `graceMs`. */
export async function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  if (!(await waitExit(child, graceMs))) {
    child.kill("SIGKILL");
    await waitExit(child, graceMs);
  }
}

/**
 * On a machine with 2+ CPUs and `taskset`, the server under test runs on CPU 0 and the load generator on CPU 1, so
 * they do not take turns on one core (which charges whichever is the bottleneck for the other's wake-ups, and so
 * favours the bare server). Same for every scenario, so ratios compare like with like. BENCH_PIN=0 turns it off.
 */
export const CAN_PIN = process.env.BENCH_PIN !== "0" && cpus().length >= 2 && spawnSync("taskset", ["-c", "0", "true"]).status === 0;
export function pinned(role: "server" | "load"): [string, string[]] {
  if (!CAN_PIN) return [process.execPath, []];
  return ["taskset", ["-c", role === "server" ? "0" : "1", process.execPath]];
}

export interface RunningServer {
  name: string;
  port: number;
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/**
 * Starts `bench/servers/<script>` with this Node (TypeScript runs as is) and waits until it reports its port over
 * the IPC channel. stdout goes to `stdoutFile` (Plinth's request log, as `plinth serve` writes it to fd 1) or
 * nowhere; stderr is kept to explain a failed start.
 */
export async function startServer(
  cleanup: Cleanup,
  script: string,
  env: Record<string, string>,
  opts: { stdoutFile?: string; timeoutMs?: number } = {},
): Promise<RunningServer> {
  const out = opts.stdoutFile ? openSync(opts.stdoutFile, "a") : "ignore";
  // BENCH_CPU_PROF=<dir>: each server writes a V8 CPU profile there when it stops (open it in Chrome DevTools)
  const prof = process.env.BENCH_CPU_PROF ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];
  const [cmd, pre] = pinned("server");
  const child = spawn(cmd, [...pre, ...prof, join(BENCH_DIR, "servers", script)], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", out, "pipe", "ipc"],
  });
  if (typeof out === "number") closeSync(out); // the child has its own copy
  const stop = () => stopChild(child);
  cleanup.add(`server ${script}`, stop);
  let stderr = "";
  child.stderr!.on("data", (b: Buffer) => {
    stderr = (stderr + b.toString()).slice(-8000);
  });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${script} did not report a port within ${opts.timeoutMs ?? 60_000} ms\n${stderr}`)),
      opts.timeoutMs ?? 60_000,
    );
    child.once("message", (m: { listening?: number }) => {
      clearTimeout(timer);
      if (typeof m?.listening === "number") resolve(m.listening);
      else reject(new Error(`${script} sent an unexpected message: ${JSON.stringify(m)}`));
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited (${code ?? signal}) before listening:\n${stderr}`));
    });
  });
  child.removeAllListeners("exit");
  child.disconnect(); // the IPC channel is only for the port; no handle left open in the server under load
  return { name: script, port, url: `http://127.0.0.1:${port}`, pid: child.pid!, stop };
}

/** A request other than a plain GET: its method and body (`[<id>]` in the body becomes a fresh id per request). */
export interface RequestShape {
  method?: "GET" | "POST" | "PATCH" | "PUT" | "DELETE";
  body?: string;
}

export interface CannonResult {
  requestsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  total: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  durationSec: number;
}

/** One autocannon run in its own process (`-j`: JSON on stdout). Fails on any error, timeout or non-2xx answer. */
export async function cannon(
  cleanup: Cleanup,
  url: string,
  opts: { connections: number; durationSec: number; headers?: Record<string, string> } & RequestShape,
): Promise<CannonResult> {
  const args = [AUTOCANNON, "-j", "-n", "-c", String(opts.connections), "-d", String(opts.durationSec)];
  for (const [k, v] of Object.entries(opts.headers ?? {})) args.push("-H", `${k}=${v}`);
  if (opts.method) args.push("-m", opts.method);
  if (opts.body !== undefined) args.push("-b", opts.body);
  if (opts.body?.includes("[<id>]")) args.push("-I"); // autocannon puts a fresh id in each request's body
  args.push(url);
  const [cmd, pre] = pinned("load");
  const child = spawn(cmd, [...pre, ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  cleanup.add("autocannon", () => stopChild(child, 1000));
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (b: Buffer) => (stdout += b.toString()));
  child.stderr!.on("data", (b: Buffer) => (stderr = (stderr + b.toString()).slice(-4000)));
  const code = await new Promise<number | null>((resolve) => child.once("exit", (c) => resolve(c)));
  if (code !== 0) throw new Error(`autocannon exited with ${code}: ${stderr}`);
  let r: {
    requests: { average: number; total: number };
    latency: { p50: number; p99: number; max: number };
    non2xx: number;
    errors: number;
    timeouts: number;
    duration: number;
  };
  try {
    r = JSON.parse(stdout);
  } catch {
    throw new Error(`autocannon printed no JSON:\n${stdout.slice(0, 2000)}\n${stderr}`);
  }
  const result: CannonResult = {
    requestsPerSec: r.requests.average,
    p50Ms: r.latency.p50,
    p99Ms: r.latency.p99,
    maxMs: r.latency.max,
    total: r.requests.total,
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    durationSec: r.duration,
  };
  if (result.non2xx || result.errors || result.timeouts) {
    throw new Error(`${url}: ${result.non2xx} non-2xx answers, ${result.errors} errors, ${result.timeouts} timeouts: the figures would be meaningless`);
  }
  return result;
}

const CLK_TCK = (() => {
  const r = spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" });
  return Number(r.stdout?.trim()) || 100;
})();

/**
 * CPU time (user + system, ms) a process has used so far, from /proc (Linux); undefined elsewhere. Unlike req/s it
 * hardly depends on what else runs on the machine, so it shows a server's own cost per request on a busy box.
 */
export function cpuTimeMs(pid: number): number | undefined {
  return cpuTimesMs(pid)?.total;
}

/** cpuTimeMs, and of it the system (kernel) time: a socket write's TCP loopback work counts there. */
function cpuTimesMs(pid: number): { total: number; sys: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" "); // fields from 3 (state) on; comm may hold spaces
    const sys = (Number(fields[12]) * 1000) / CLK_TCK; // stime (15)
    return { total: (Number(fields[11]) * 1000) / CLK_TCK + sys, sys }; // utime (14)
  } catch {
    return undefined;
  }
}

interface ProcSnapshot {
  at: number;
  /** CPU time all CPUs spent busy (not idle or iowait), from /proc/stat. */
  machineBusyMs: number;
  /** CPU time of this process's children it has reaped (autocannon), from /proc/self/stat. */
  reapedMs: number;
  procs: Map<number, { ppid: number; cpuMs: number; comm: string }>;
}

function statCpuMs(stat: string): { ppid: number; cpuMs: number; reapedMs: number; comm: string } {
  const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" "); // from field 3 (state) on: the name may hold spaces
  return {
    ppid: Number(f[1]),
    cpuMs: ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK, // utime, stime
    reapedMs: ((Number(f[13]) + Number(f[14])) * 1000) / CLK_TCK, // cutime, cstime
    comm,
  };
}

function snapshotProcs(): ProcSnapshot | undefined {
  try {
    const cpu = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal …: busy is everything but idle and iowait
    const machineBusyMs = ((cpu.slice(0, 8).reduce((a, b) => a + b, 0) - cpu[3] - cpu[4]) * 1000) / CLK_TCK;
    const reapedMs = statCpuMs(readFileSync("/proc/self/stat", "utf8")).reapedMs;
    const procs = new Map<number, { ppid: number; cpuMs: number; comm: string }>();
    for (const name of readdirSync("/proc")) {
      if (!/^\d+$/.test(name)) continue;
      try {
        const { ppid, cpuMs, comm } = statCpuMs(readFileSync(`/proc/${name}/stat`, "utf8"));
        procs.set(Number(name), { ppid, cpuMs, comm });
      } catch {
        // gone meanwhile
      }
    }
    return { at: Date.now(), machineBusyMs, reapedMs, procs };
  } catch {
    return undefined; // no /proc
  }
}

/**
 * Measures the CPU used *outside* this bench while `fn` runs (the whole machine's busy time minus this process, its
 * descendants and the children it reaped), in CPUs (1.0 = one core busy all along): other work the figures
 * competed with. Short-lived processes count too. undefined where /proc is missing. Also the CPU time (ms) our
 * own PostgreSQL's processes used meanwhile (those of the bench's descendants named `postgres`).
 */
export async function withForeignCpu<T>(fn: () => Promise<T>): Promise<{ value: T; foreignCpus?: number; postgresMs?: number }> {
  const before = snapshotProcs();
  const value = await fn();
  const after = snapshotProcs();
  if (!before || !after) return { value };
  const ours = new Set<number>([process.pid]);
  for (const snap of [before, after]) {
    for (let grew = true; grew; ) {
      grew = false;
      for (const [pid, p] of snap.procs) if (!ours.has(pid) && ours.has(p.ppid)) ours.add(pid), (grew = true);
    }
  }
  let oursMs = after.reapedMs - before.reapedMs;
  let postgresMs = 0;
  for (const pid of ours) {
    const a = after.procs.get(pid);
    if (!a) continue;
    const used = a.cpuMs - (before.procs.get(pid)?.cpuMs ?? 0);
    oursMs += used;
    if (a.comm === "postgres") postgresMs += used;
  }
  const foreignMs = after.machineBusyMs - before.machineBusyMs - oursMs;
  return { value, foreignCpus: Math.max(0, foreignMs) / (after.at - before.at), postgresMs };
}

export function machine() {
  return { node: process.version, cpus: availableParallelism(), cpuModel: cpus()[0]?.model ?? "unknown", platform: `${process.platform}-${process.arch}` };
}

/** Number from the environment (positive), else the fallback. */
export function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got "${raw}"`);
  return n;
}

/** The knobs every HTTP bench reads: load shape, pool size, and which scenarios run (BENCH_SCENARIOS, else `defaults`). */
export function benchKnobs(defaults: string) {
  const connections = envNumber("BENCH_CONNECTIONS", 50);
  const durationSec = envNumber("BENCH_DURATION", 10);
  const warmupSec = envNumber("BENCH_WARMUP", 2);
  return {
    load: { connections, durationSec, warmupSec },
    poolSize: String(envNumber("DATABASE_POOL_SIZE", 10)),
    only: (process.env.BENCH_SCENARIOS || defaults).split(",").map((s) => s.trim()),
  };
}

/** Fetches `url` and insists on `status`; answers the body, parsed when it is JSON. */
// biome-ignore lint/suspicious/noExplicitAny: a bench reads whatever JSON it asked for
export async function expectStatus(url: string, status: number, init: RequestInit = {}): Promise<any> {
  const res = await fetch(url, init);
  const text = await res.text();
  if (res.status !== status) throw new Error(`${init.method ?? "GET"} ${url}: expected ${status}, got ${res.status}: ${text.slice(0, 500)}`);
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** A JSON request. */
export const json = (method: string, body: unknown, headers: Record<string, string> = {}): RequestInit => ({
  method,
  headers: { "content-type": "application/json", ...headers },
  body: JSON.stringify(body),
});

export interface BenchWorkspace {
  /** a temp dir, removed at cleanup: Plinth's data dir and the servers' log files */
  tmp: string;
  db: BenchDatabase;
  /** the master key every Plinth process of the run shares, so one's tokens and keys hold in the next */
  masterKey: string;
}

/** What every HTTP bench starts with: a temp dir and a throwaway, migrated PostgreSQL (see startBenchDatabase). */
export async function benchWorkspace(cleanup: Cleanup): Promise<BenchWorkspace> {
  const tmp = mkdtempSync(join(tmpdir(), "plinth-bench-"));
  cleanup.add("temp dir", () => rmSync(tmp, { recursive: true, force: true }));
  const db = await startBenchDatabase(cleanup);
  return { tmp, db, masterKey: randomBytes(32).toString("base64") };
}

/**
 * Plinth's environment in a bench (servers/plinth.ts): the workspace's database through the app role, migrations
 * already applied, a fixed public URL (the token issuer, so a token from one process holds in the next), in-process
 * rate limits and caches and no mail whatever the caller's environment says, LOG_LEVEL warn unless asked.
 */
export async function plinthEnv(
  ws: BenchWorkspace,
  opts: { poolSize: string; logLevel?: string; extra?: Record<string, string> },
): Promise<Record<string, string>> {
  return {
    PORT: String(await freePort()),
    PLINTH_PUBLIC_URL: "http://plinth.bench",
    PLINTH_MASTER_KEY: ws.masterKey,
    PLINTH_DATA_DIR: join(ws.tmp, "data"),
    DATABASE_URL: ws.db.ownerUrl,
    DATABASE_APP_URL: ws.db.appUrl,
    DATABASE_POOL_SIZE: opts.poolSize,
    PLINTH_AUTO_MIGRATE: "false",
    LOG_LEVEL: opts.logLevel ?? "warn",
    REDIS_URL: "",
    SMTP_URL: "",
    ...opts.extra,
  };
}

/** Registers and signs in a new user through Plinth's API. */
export async function signUp(baseUrl: string): Promise<{ userId: string; accessToken: string; bearer: Record<string, string> }> {
  const email = `bench.${Date.now()}.${randomBytes(3).toString("hex")}@example.com`;
  const password = `bench passphrase ${randomBytes(6).toString("hex")}`;
  const user = await expectStatus(`${baseUrl}/v1/auth/register`, 201, json("POST", { email, password, name: "Bench User" }));
  const { access_token } = await expectStatus(`${baseUrl}/v1/auth/login`, 200, json("POST", { email, password }));
  return { userId: user.id as string, accessToken: access_token as string, bearer: { authorization: `Bearer ${access_token}` } };
}

/** A new org of the signed-in caller's. */
export async function createOrg(baseUrl: string, bearer: Record<string, string>, name = "Bench Org"): Promise<string> {
  const org = await expectStatus(`${baseUrl}/v1/orgs`, 201, json("POST", { name, slug: `bench-${randomBytes(4).toString("hex")}` }, bearer));
  return org.id as string;
}

/** A new API key in the org with these roles; answers its secret. */
export async function createKey(baseUrl: string, bearer: Record<string, string>, orgId: string, name: string, roles: string[]): Promise<string> {
  return (await expectStatus(`${baseUrl}/v1/orgs/${orgId}/keys`, 201, json("POST", { name, roles }, bearer))).secret as string;
}

export interface Measured {
  result: CannonResult;
  /** The server process's own CPU time per request (user + system), in µs. */
  serverCpuUsPerReq?: number;
  /** Of serverCpuUsPerReq, the system (kernel) time: mostly socket reads and writes. */
  serverSysUsPerReq?: number;
  /** CPU used meanwhile by processes outside the bench, in cores: other load competing for the machine. */
  foreignCpus?: number;
  /** CPU time the bench's own PostgreSQL spent per request (all its processes), in µs. */
  dbCpuUsPerReq?: number;
}

/** A warm-up run (discarded), then the measured run, with the server's CPU time and the machine's other load. */
export async function measure(
  cleanup: Cleanup,
  server: RunningServer,
  path: string,
  opts: { connections: number; durationSec: number; warmupSec: number; headers?: Record<string, string> } & RequestShape,
): Promise<Measured> {
  const { connections, headers, method, body } = opts;
  await cannon(cleanup, server.url + path, { connections, durationSec: opts.warmupSec, headers, method, body });
  const cpu0 = cpuTimesMs(server.pid);
  const {
    value: result,
    foreignCpus,
    postgresMs,
  } = await withForeignCpu(() => cannon(cleanup, server.url + path, { connections, durationSec: opts.durationSec, headers, method, body }));
  const cpu1 = cpuTimesMs(server.pid);
  const per = (ms: number) => (ms * 1000) / result.total;
  const serverCpuUsPerReq = cpu0 && cpu1 && result.total ? per(cpu1.total - cpu0.total) : undefined;
  const serverSysUsPerReq = cpu0 && cpu1 && result.total ? per(cpu1.sys - cpu0.sys) : undefined;
  const dbCpuUsPerReq = postgresMs !== undefined && result.total ? per(postgresMs) : undefined;
  return { result, serverCpuUsPerReq, serverSysUsPerReq, foreignCpus, dbCpuUsPerReq };
}

/**
 * A throwaway PostgreSQL with one migrated database `plinth_bench`: the owner's URL, and the app role's (the role
 * Plinth's requests run as), with a fresh password.
 */
export interface BenchDatabase {
  version: string;
  ownerUrl: string;
  appUrl: string;
}

export async function startBenchDatabase(cleanup: Cleanup): Promise<BenchDatabase> {
  const pgService = await startPostgres();
  cleanup.add("PostgreSQL", () => pgService.stop());
  const admin = new pg.Client({ connectionString: pgService.url });
  await admin.connect();
  await admin.query("CREATE DATABASE plinth_bench");
  await admin.end();
  const ownerUrl = dbUrl(pgService.url, "plinth_bench");
  const appPassword = randomBytes(18).toString("base64url");
  const appUrl = dbUrl(pgService.url, "plinth_bench", "plinth_app", appPassword);
  const migrator = await openPostgres({ ownerUrl, appUrl: ownerUrl, poolSize: 1 });
  try {
    await migrate(migrator, appPassword);
  } finally {
    await migrator.close();
  }
  return { version: pgService.version, ownerUrl, appUrl };
}

/** Writes a bench's report to bench/results/<name>-<time>.json and says where, with the run's wall time. */
export function writeResults(name: string, report: object, started: number): void {
  const dir = join(BENCH_DIR, "results");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
  writeFileSync(file, `${JSON.stringify({ bench: name, at: new Date().toISOString(), ...report, wallSec: (Date.now() - started) / 1000 }, null, 2)}\n`);
  process.stdout.write(`\nresults: ${file}  (${((Date.now() - started) / 1000).toFixed(0)} s)\n`);
}

/** Runs a bench's main with cleanup of everything it started, and exits: 0, 1 on failure, 130 when interrupted. */
export async function runBench(name: string, main: (cleanup: Cleanup) => Promise<void>): Promise<never> {
  const cleanup = createCleanup();
  let code = 0;
  try {
    await main(cleanup);
  } catch (e) {
    code = cleanup.interrupted ? 130 : 1;
    if (!cleanup.interrupted) process.stderr.write(`${name} bench failed: ${(e as Error).stack ?? e}\n`);
  } finally {
    await cleanup.run();
  }
  process.exit(code);
}

/** 12,345: a whole number with thousands separators, for the printed tables. */
export const num = (n: number) => Math.round(n).toLocaleString("en-US");

/** The header of an HTTP scenario table, its first column `width` wide. */
export function scenarioHeader(first: string, width: number, opts: { db?: boolean } = {}): string {
  return `${first.padEnd(width)}${"req/s".padStart(9)}${"p99 ms".padStart(8)}${"server CPU µs/req (sys)".padStart(25)}${opts.db ? "db CPU µs/req".padStart(15) : ""}${"other load".padStart(12)}`;
}

/** One measured HTTP scenario as a table row: `(key) label`, padded to `width`, then its figures. */
export function scenarioRow(
  key: string,
  label: string,
  m: Pick<Measured, "result" | "serverCpuUsPerReq" | "serverSysUsPerReq" | "foreignCpus" | "dbCpuUsPerReq">,
  width: number,
  keyWidth: number,
  opts: { db?: boolean } = {},
): string {
  return `${`(${key})`.padEnd(keyWidth)}${label.padEnd(width - keyWidth)}${scenarioFigures(m, opts)}`;
}

/** A scenario's figures, in scenarioHeader's columns. */
function scenarioFigures(
  m: Pick<Measured, "result" | "serverCpuUsPerReq" | "serverSysUsPerReq" | "foreignCpus" | "dbCpuUsPerReq">,
  opts: { db?: boolean } = {},
): string {
  return (
    `${num(m.result.requestsPerSec).padStart(9)}${String(m.result.p99Ms).padStart(8)}` +
    `${(m.serverCpuUsPerReq === undefined ? "-" : `${m.serverCpuUsPerReq.toFixed(0)}${m.serverSysUsPerReq === undefined ? "" : ` (${m.serverSysUsPerReq.toFixed(0)})`}`).padStart(25)}` +
    `${opts.db ? (m.dbCpuUsPerReq === undefined ? "-" : m.dbCpuUsPerReq.toFixed(0)).padStart(15) : ""}` +
    `${(m.foreignCpus === undefined ? "-" : `${m.foreignCpus.toFixed(2)} CPU`).padStart(12)}`
  );
}

/** How many times a bench runs its scenarios (BENCH_ROUNDS, default 3); every ratio is taken within one round. */
export const ROUNDS = envNumber("BENCH_ROUNDS", 3);

/** One scenario of a bench's plan: run(label) starts its server, checks it, measures it and stops it. */
export interface PlanStep<S> {
  key: string;
  label: string;
  run: (label: string) => Promise<S>;
}

/**
 * Runs the steps of `plan` whose key is in `only`, all of them once per round, `rounds` times: round 1 every
 * scenario, then round 2, and so on, so that a baseline and the figure compared with it are measured minutes apart
 * at most, and a change in the machine's other load during the run falls on every scenario alike.
 */
export async function runRounds<S>(plan: PlanStep<S>[], only: string[], rounds = ROUNDS): Promise<S[][]> {
  const out: S[][] = [];
  for (let r = 1; r <= rounds; r++) {
    const round: S[] = [];
    for (const step of plan) {
      if (!only.includes(step.key)) continue;
      process.stdout.write(`  ${rounds > 1 ? `[run ${r}/${rounds}] ` : ""}(${step.key}) ${step.label} …\n`);
      round.push(await step.run(step.label));
    }
    out.push(round);
  }
  return out;
}

export function median(xs: number[]): number | undefined {
  if (!xs.length) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export interface RoundScenario extends Measured {
  key: string;
  label: string;
}

type Metric = "rps" | "cpu" | "db" | "p50";
const METRIC: Record<Metric, (s: RoundScenario) => number | undefined> = {
  rps: (s) => s.result.requestsPerSec,
  cpu: (s) => s.serverCpuUsPerReq,
  db: (s) => s.dbCpuUsPerReq,
  p50: (s) => s.result.p50Ms,
};
const metricOf = (s: RoundScenario | undefined, metric: Metric): number | undefined => (s ? METRIC[metric](s) : undefined);
const UNIT: Record<Metric, string> = { rps: "req/s", cpu: "µs/req server CPU", db: "µs/req PostgreSQL CPU", p50: "ms p50 latency" };

/**
 * A figure against its baseline: metric(top) / metric(bottom), both from the same round. req/s: higher is better,
 * so targets are `≥`; CPU per request and latency: lower is better, so targets are `≤` (a multiple of the baseline's).
 */
export interface RatioSpec {
  name: string;
  top: string;
  bottom: string;
  metric: Metric;
  target?: { op: "≥" | "≤"; value: number };
  /** How the ratio reads: a percentage (default) or a multiple. */
  format?: "pct" | "times";
  what: string;
}

export interface RatioOutcome {
  name: string;
  what: string;
  format: "pct" | "times";
  metric: Metric;
  /** One per round (undefined where a scenario of the pair did not run or had no figure). */
  values: (number | undefined)[];
  median?: number;
  target?: { op: "≥" | "≤"; value: number };
  /** The median against the target. */
  pass?: boolean;
  /** The medians over the rounds of the figure and of its baseline, to print beside the ratio. */
  topMedian?: number;
  bottomMedian?: number;
  top: string;
  bottom: string;
}

/** Each ratio per round, its median over the rounds, and the median against its target. */
export function evaluateRatios(rounds: RoundScenario[][], specs: RatioSpec[]): RatioOutcome[] {
  return specs
    .map((spec) => {
      const values = rounds.map((round) => {
        const top = metricOf(
          round.find((s) => s.key === spec.top),
          spec.metric,
        );
        const bottom = metricOf(
          round.find((s) => s.key === spec.bottom),
          spec.metric,
        );
        return top && bottom ? top / bottom : undefined;
      });
      const mid = median(values.filter((v): v is number => v !== undefined));
      const figures = (key: string) =>
        median(
          rounds
            .map((r) =>
              metricOf(
                r.find((s) => s.key === key),
                spec.metric,
              ),
            )
            .filter((v): v is number => v !== undefined),
        );
      const pass = mid === undefined || !spec.target ? undefined : spec.target.op === "≥" ? mid >= spec.target.value : mid <= spec.target.value;
      return {
        name: spec.name,
        what: spec.what,
        format: spec.format ?? "pct",
        metric: spec.metric,
        values,
        median: mid,
        target: spec.target,
        pass,
        topMedian: figures(spec.top),
        bottomMedian: figures(spec.bottom),
        top: spec.top,
        bottom: spec.bottom,
      };
    })
    .filter((r) => r.median !== undefined);
}

const showRatio = (v: number | undefined, format: "pct" | "times") =>
  v === undefined ? "-" : format === "times" ? `${v.toFixed(2)}×` : `${(v * 100).toFixed(1)} %`;

/**
 * The ratios as a table: each round's value, the median, the target and PASS or FAIL (the median against it), and
 * the medians of the figure and of its baseline.
 */
export function ratioTable(outcomes: RatioOutcome[]): string[] {
  const rounds = Math.max(0, ...outcomes.map((o) => o.values.length));
  const runCols = rounds > 1 ? Array.from({ length: rounds }, (_, i) => `run ${i + 1}`.padStart(9)).join("") : "";
  const nameWidth = Math.max(11, ...outcomes.map((o) => o.name.length + 2));
  const header = `${"ratio".padEnd(nameWidth)}${runCols}${(rounds > 1 ? "median" : "value").padStart(9)}${"target".padStart(12)}  verdict  figure vs baseline (medians)`;
  const rows = outcomes.map((o) => {
    const cells = rounds > 1 ? o.values.map((v) => showRatio(v, o.format).padStart(9)).join("") : "";
    const target = o.target ? `${o.target.op} ${showRatio(o.target.value, o.format)}` : "";
    const verdict = o.pass === undefined ? "-      " : o.pass ? "PASS   " : "FAIL   ";
    const figures = `(${o.top}) ${num(o.topMedian!)} vs (${o.bottom}) ${num(o.bottomMedian!)} ${UNIT[o.metric]}`;
    return `${o.name.padEnd(nameWidth)}${cells}${showRatio(o.median, o.format).padStart(9)}${target.padStart(12)}  ${verdict}  ${figures.padEnd(44)} ${o.what}`;
  });
  return [header, ...rows];
}

/**
 * The scenarios' figures, by scenario: one row per round and, with several rounds, their medians (each column's
 * median on its own).
 */
export function roundsTable(rounds: RoundScenario[][], width: number, keyWidth: number, opts: { db?: boolean } = {}): string[] {
  const many = rounds.length > 1;
  const lines = [`${"scenario".padEnd(width)}${many ? "run".padStart(7) : ""}${scenarioHeader("", 0, opts)}`];
  const keys = [...new Set(rounds.flat().map((s) => s.key))];
  const mid = (xs: (number | undefined)[]) => median(xs.filter((v): v is number => v !== undefined));
  for (const key of keys) {
    const runs = rounds.map((r) => r.find((s) => s.key === key));
    const label = runs.find(Boolean)!.label;
    runs.forEach((s, i) => {
      if (!s) return;
      const first = i === 0 ? `${`(${key})`.padEnd(keyWidth)}${label.padEnd(width - keyWidth)}` : "".padEnd(width);
      lines.push(`${first}${many ? String(i + 1).padStart(7) : ""}${scenarioFigures(s, opts)}`);
    });
    if (many) {
      const present = runs.filter((s): s is RoundScenario => s !== undefined);
      const m: Pick<Measured, "result" | "serverCpuUsPerReq" | "serverSysUsPerReq" | "foreignCpus" | "dbCpuUsPerReq"> = {
        result: { ...present[0].result, requestsPerSec: mid(present.map((s) => s.result.requestsPerSec))!, p99Ms: mid(present.map((s) => s.result.p99Ms))! },
        serverCpuUsPerReq: mid(present.map((s) => s.serverCpuUsPerReq)),
        serverSysUsPerReq: mid(present.map((s) => s.serverSysUsPerReq)),
        dbCpuUsPerReq: mid(present.map((s) => s.dbCpuUsPerReq)),
        foreignCpus: mid(present.map((s) => s.foreignCpus)),
      };
      lines.push(`${"".padEnd(width)}${"median".padStart(7)}${scenarioFigures(m, opts)}`);
    }
  }
  return lines;
}

/** What a bench's results file says about its rounds: every round's scenarios, and the ratios with their medians. */
export function roundsReport(rounds: RoundScenario[][], outcomes: RatioOutcome[], extra: (s: RoundScenario) => object = () => ({})): object {
  return {
    rounds: rounds.map((round) =>
      round.map((s) => ({
        key: s.key,
        label: s.label,
        ...s.result,
        serverCpuUsPerReq: s.serverCpuUsPerReq,
        serverSysUsPerReq: s.serverSysUsPerReq,
        dbCpuUsPerReq: s.dbCpuUsPerReq,
        foreignCpus: s.foreignCpus,
        ...extra(s),
      })),
    ),
    ratios: outcomes.map(({ name, values, median, target, pass, topMedian, bottomMedian, metric }) => ({
      name,
      metric,
      values,
      median,
      target,
      pass,
      topMedian,
      bottomMedian,
    })),
  };
}

/**
 * The lines warning that other processes competed for the CPU during some scenarios (none when nothing did), and
 * how much: the median and the highest "other load" of the scenarios measured.
 */
export function busyWarning(scenarios: { key: string; foreignCpus?: number }[][] | { key: string; foreignCpus?: number }[]): string[] {
  const rounds = (Array.isArray(scenarios[0]) ? scenarios : [scenarios]) as { key: string; foreignCpus?: number }[][];
  const busy = rounds.flatMap((round, i) => round.filter((s) => (s.foreignCpus ?? 0) > 0.1).map((s) => `(${s.key})${rounds.length > 1 ? `#${i + 1}` : ""}`));
  if (!busy.length) return [];
  const loads = rounds
    .flat()
    .map((s) => s.foreignCpus)
    .filter((v): v is number => v !== undefined);
  return [
    "",
    `warning: other processes used the CPU during ${busy.join(" ")} ("other load", in cores of ${machine().cpus}; median ${median(loads)!.toFixed(2)},` +
      ` at most ${Math.max(...loads).toFixed(2)}): req/s and the ratios are unreliable then; server CPU µs/req much less so`,
  ];
}
