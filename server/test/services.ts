/**
 * Real PostgreSQL 15 and Redis for tests and benchmarks, started as plain processes on 127.0.0.1 in a temp dir and
 * removed afterwards. initdb refuses root, so as root the server runs as the `postgres` user.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface Service {
  url: string;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** The PostgreSQL binaries: PG_BIN, else the newest /usr/lib/postgresql/<v>/bin that has initdb (15 on CI). */
export function postgresBinDir(): string {
  const env = process.env.PG_BIN;
  if (env && existsSync(join(env, "initdb"))) return env;
  const root = "/usr/lib/postgresql";
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(join(root, v, "bin", "initdb"))) : [];
  versions.sort((a, b) => Number(b) - Number(a));
  if (!versions.length) throw new Error("PostgreSQL server binaries not found (looked in PG_BIN and /usr/lib/postgresql/*/bin): apt-get install postgresql-15");
  return join(root, versions.includes("15") ? "15" : versions[0], "bin");
}

const isRoot = process.getuid?.() === 0;

function asPostgresUser(cmd: string, args: string[]): [string, string[]] {
  return isRoot ? ["runuser", ["-u", "postgres", "--", cmd, ...args]] : [cmd, args];
}

function waitForOutput(child: ChildProcess, pattern: RegExp, what: string, timeoutMs = 30_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = "";
    const timer = setTimeout(() => reject(new Error(`${what} did not start within ${timeoutMs} ms:\n${seen}`)), timeoutMs);
    const onData = (b: Buffer) => {
      seen += b.toString();
      if (pattern.test(seen)) {
        clearTimeout(timer);
        child.stdout?.off("data", onData);
        child.stderr?.off("data", onData);
        resolve();
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with code ${code}:\n${seen}`));
    });
  });
}

function stopChild(child: ChildProcess, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once("exit", () => resolve());
    child.kill(signal);
  });
}

/** A throwaway PostgreSQL cluster; `url` connects as the superuser `postgres` to database `postgres`. */
/**
 * `detached`: the process does not keep the caller alive and is killed when the caller exits (a test file that
 * started its own services); otherwise the caller stops it.
 */
export interface StartOptions {
  detached?: boolean;
}

function killOnExit(child: ChildProcess, kill: () => void): void {
  child.unref();
  (child.stdout as unknown as { unref?: () => void })?.unref?.();
  (child.stderr as unknown as { unref?: () => void })?.unref?.();
  process.once("exit", kill);
}

/** Signals the postmaster itself: runuser, its parent when we are root, does not pass signals on. */
function signalPostmaster(data: string, signal: NodeJS.Signals): void {
  try {
    const pid = Number(readFileSync(join(data, "postmaster.pid"), "utf8").split("\n")[0]);
    if (pid) process.kill(pid, signal);
  } catch {
    // not running
  }
}

export async function startPostgres(opts: StartOptions = {}): Promise<Service & { port: number; version: string }> {
  const bin = postgresBinDir();
  const dir = mkdtempSync(join(tmpdir(), "plinth-pg-"));
  if (isRoot) {
    const pw = spawnSync("id", ["-u", "postgres"]);
    const gid = spawnSync("id", ["-g", "postgres"]);
    if (pw.status !== 0) throw new Error("running as root but there is no postgres user to run PostgreSQL as");
    chownSync(dir, Number(pw.stdout.toString()), Number(gid.stdout.toString()));
  }
  const data = join(dir, "data");
  const [icmd, iargs] = asPostgresUser(join(bin, "initdb"), ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--locale=C"]);
  const init = spawnSync(icmd, iargs, { encoding: "utf8" });
  if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr || init.stdout}`);
  const port = await freePort();
  const [cmd, args] = asPostgresUser(join(bin, "postgres"), [
    "-D",
    data,
    "-p",
    String(port),
    "-k",
    dir,
    "-c",
    "listen_addresses=127.0.0.1",
    "-c",
    "fsync=off",
    "-c",
    "synchronous_commit=off",
    "-c",
    "full_page_writes=off",
    "-c",
    "max_connections=400",
    "-c",
    "shared_buffers=256MB",
  ]);
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
  await waitForOutput(child, /database system is ready to accept connections/, "PostgreSQL");
  if (opts.detached) {
    killOnExit(child, () => {
      signalPostmaster(data, "SIGQUIT");
      rmSync(dir, { recursive: true, force: true });
    });
  }
  const version = spawnSync(join(bin, "postgres"), ["--version"], { encoding: "utf8" }).stdout.trim();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    version,
    async stop() {
      const exited = new Promise<void>((resolve) => (child.exitCode !== null ? resolve() : child.once("exit", () => resolve())));
      signalPostmaster(data, "SIGINT"); // fast shutdown
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function redisServerPath(): string {
  for (const p of [process.env.REDIS_SERVER, "/usr/bin/redis-server", "/usr/local/bin/redis-server"]) if (p && existsSync(p)) return p;
  throw new Error("redis-server not found: apt-get install redis-server (or set REDIS_SERVER)");
}

/** A throwaway Redis without persistence. */
export async function startRedis(opts: StartOptions = {}): Promise<Service & { port: number }> {
  const port = await freePort();
  const child = spawn(redisServerPath(), ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "yes"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  await waitForOutput(child, /Ready to accept connections/i, "Redis");
  if (opts.detached) killOnExit(child, () => child.kill("SIGKILL"));
  return { url: `redis://127.0.0.1:${port}`, port, stop: () => stopChild(child) };
}
