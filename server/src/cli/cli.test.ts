import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash, createHmac, pbkdf2Sync, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, describe, it } from "node:test";
import pg from "pg";
import { buildApp } from "../app.ts";
import { loadConfig } from "../config.ts";
import { appRolePassword, createDeps } from "../deps.ts";
import { createLogger } from "../logger.ts";
import { dbUrl, GOOD_PASSWORD } from "../../test/harness.ts";
import { freePort, startPostgres, type Service } from "../../test/services.ts";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const dirs: string[] = [];
const children: ChildProcess[] = [];

function freshDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "plinth-cli-"));
  dirs.push(dir);
  return dir;
}

/** The environment of a shell with nothing Plinth-related set, plus `env`. */
function cliEnv(env: Record<string, string>): Record<string, string> {
  return { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/tmp", LOG_LEVEL: "silent", ...env };
}

function plinth(args: string[], env: Record<string, string>) {
  const r = spawnSync(process.execPath, ["bin/plinth.mjs", ...args], { cwd: ROOT, env: cliEnv(env), encoding: "utf8", timeout: 90_000 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, all: `${r.stdout}\n${r.stderr}` };
}

/** Starts `plinth serve` and resolves once it says it is running (or rejects with its output when it exits). */
function serve(env: Record<string, string>): Promise<{ child: ChildProcess; exited: Promise<number | null> }> {
  const child = spawn(process.execPath, ["bin/plinth.mjs", "serve"], { cwd: ROOT, env: cliEnv(env), stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    let seen = "";
    const timer = setTimeout(() => reject(new Error(`plinth serve did not start within 90 s:\n${seen}`)), 90_000);
    const onData = (b: Buffer) => {
      seen += b.toString();
      if (seen.includes("Plinth is running")) {
        clearTimeout(timer);
        resolve({ child, exited });
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`plinth serve exited with ${code}:\n${seen}`));
    });
  });
}

/** Does a PostgreSQL SCRAM-SHA-256 verifier (pg_authid.rolpassword) belong to `password`? */
function scramMatches(verifier: string, password: string): boolean {
  const m = /^SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)$/.exec(verifier);
  assert.ok(m, `a SCRAM verifier: ${verifier.slice(0, 20)}`);
  const salted = pbkdf2Sync(password, Buffer.from(m[2], "base64"), Number(m[1]), 32, "sha256");
  const clientKey = createHmac("sha256", salted).update("Client Key").digest();
  return createHash("sha256").update(clientKey).digest("base64") === m[3];
}

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("plinth CLI on an embedded data dir", () => {
  const dir = freshDir();
  const env = { PLINTH_DATA_DIR: dir };

  it("migrate sets up a fresh data dir and says migrations are up to date", () => {
    const r = plinth(["migrate"], env);
    assert.equal(r.status, 0, r.all);
    assert.match(r.stdout, /migrations are up to date/);
    assert.ok(existsSync(join(dir, "master.key")) && existsSync(join(dir, "pgdata")), readdirSync(dir).join(", "));
    assert.ok(!existsSync(join(dir, "plinth.lock")), "the lock is released on exit");
  });

  it("user create --admin makes a verified platform admin and prints its generated password once", async () => {
    const r = plinth(["user", "create", "--email", "a@example.com", "--admin"], env);
    assert.equal(r.status, 0, r.all);
    assert.match(r.stdout, /created platform admin a@example\.com \(usr_[0-9a-z]{26}\)/);
    const password = /password \(shown once\): (\S+)/.exec(r.stdout)?.[1];
    assert.ok(password && password.length >= 12, r.stdout);
    assert.equal(r.all.split(password).length, 2, "the password is printed exactly once");

    // the server's view of that data dir: the printed password signs in, and the user is a verified admin
    const config = loadConfig({ PLINTH_DATA_DIR: dir, LOG_LEVEL: "silent" });
    const deps = await createDeps(config, { log: createLogger("silent") });
    try {
      const app = await buildApp(deps);
      const login = await app.inject({ method: "POST", url: "/v1/auth/login", payload: { email: "a@example.com", password } });
      assert.equal(login.statusCode, 200, login.body);
      const me = await app.inject({ method: "GET", url: "/v1/me", headers: { authorization: `Bearer ${login.json().access_token}` } });
      assert.equal(me.json().is_platform_admin, true);
      assert.equal(me.json().email_verified, true);
      await app.close();
    } finally {
      await deps.close();
    }

    const again = plinth(["user", "create", "--email", "A@EXAMPLE.com"], env);
    assert.equal(again.status, 1, again.all);
    assert.match(again.stderr, /already exists/);
  });

  it("user create refuses a weak --password (naming it) and a missing --email, creating nobody", () => {
    const weak = plinth(["user", "create", "--email", "weak@example.com", "--password", "short"], env);
    assert.equal(weak.status, 1, weak.all);
    assert.match(weak.stderr, /--password/);
    const missing = plinth(["user", "create"], env);
    assert.equal(missing.status, 2, missing.all);
    assert.match(missing.stderr, /--email/);
    const ok = plinth(["user", "create", "--email", "weak@example.com", "--password", GOOD_PASSWORD], env);
    assert.equal(ok.status, 0, `the refused attempt left nothing behind: ${ok.all}`);
    assert.match(ok.stdout, /created user weak@example\.com/);
    assert.ok(!ok.stdout.includes("shown once"), "a given password is not echoed");
  });

  it("doctor passes with ok lines on a good embedded setup", () => {
    const r = plinth(["doctor"], env);
    assert.equal(r.status, 0, r.all);
    for (const what of ["configuration", "master key", "database", "migrations", "signing keys", "redis", "mail"]) {
      assert.match(r.stdout, new RegExp(`^\\[ok  \\] ${what}: `, "m"), `${what} ok:\n${r.stdout}`);
    }
    assert.doesNotMatch(r.stdout, /FAIL/);
    assert.match(r.stdout, /All checks passed/);
  });

  it("user disable stops an account (sign-in refused), user enable restores it, and the platform chain verifies", async () => {
    const email = `off.${randomBytes(3).toString("hex")}@example.com`;
    assert.equal(plinth(["user", "create", "--email", email, "--password", GOOD_PASSWORD], env).status, 0);
    const off = plinth(["user", "disable", "--email", email.toUpperCase()], env);
    assert.equal(off.status, 0, off.all);
    assert.match(off.stdout, new RegExp(`disabled ${email.replace(/\./g, "\\.")} \\(usr_[0-9a-z]{26}\\); revoked 0 session\\(s\\)`));
    const nobody = plinth(["user", "disable", "--email", "nobody@example.com"], env);
    assert.equal(nobody.status, 1, nobody.all);
    assert.match(nobody.stderr, /no user with email nobody@example\.com/);
    const verify = plinth(["audit", "verify", "--org", "platform"], env);
    assert.equal(verify.status, 0, verify.all);

    const config = loadConfig({ PLINTH_DATA_DIR: dir, LOG_LEVEL: "silent" });
    const deps = await createDeps(config, { log: createLogger("silent") });
    try {
      const app = await buildApp(deps);
      const login = () => app.inject({ method: "POST", url: "/v1/auth/login", payload: { email, password: GOOD_PASSWORD } });
      assert.equal((await login()).statusCode, 403);
      const user = (await deps.identity.accounts.byEmail(email))!;
      await deps.identity.accounts.enable({ kind: "operator" }, user.id, { type: "system", id: null });
      assert.equal((await login()).statusCode, 200);
      await app.close();
    } finally {
      await deps.close();
    }
  });

  it("mail list shows the verification mail of a user who registered", async () => {
    const config = loadConfig({ PLINTH_DATA_DIR: dir, LOG_LEVEL: "silent" });
    const deps = await createDeps(config, { log: createLogger("silent") });
    const email = `reg.${randomBytes(3).toString("hex")}@example.com`;
    try {
      const app = await buildApp(deps);
      const res = await app.inject({ method: "POST", url: "/v1/auth/register", payload: { email, password: GOOD_PASSWORD, name: "Mail" } });
      assert.equal(res.statusCode, 201, res.body);
      assert.ok((await deps.jobs.drain()) >= 1, "the verification mail job ran");
      await app.close();
    } finally {
      await deps.close(); // embedded data dirs are locked to one process
    }
    const r = plinth(["mail", "list"], env);
    assert.equal(r.status, 0, r.all);
    assert.match(r.stdout, new RegExp(`to ${email.replace(/\./g, "\\.")}\\nSubject: .+`));
    assert.match(r.stdout, /\/auth\/verify-email\?token=[A-Za-z0-9_-]{16,}/);
  });

  it("a second serve on the same data dir refuses, naming the holder's pid", async () => {
    const port = await freePort();
    const first = await serve({ ...env, PORT: String(port) });
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    assert.equal(ready.status, 200);
    const second = plinth(["serve"], { ...env, PORT: String(await freePort()) });
    assert.notEqual(second.status, 0, second.all);
    assert.match(second.stderr, new RegExp(`in use by another Plinth process \\(pid ${first.child.pid}\\)`));
    first.child.kill("SIGTERM");
    assert.equal(await first.exited, 0, "SIGTERM shuts down cleanly");
    assert.ok(!existsSync(join(dir, "plinth.lock")), "the lock is released");
  });
});

describe("plinth CLI configuration and connectivity errors", () => {
  const key = randomBytes(32).toString("base64");

  it("any command with PORT=abc exits 78 naming PORT, before touching the data dir", () => {
    const dir = freshDir();
    for (const args of [["migrate"], ["serve"], ["user", "create", "--email", "x@example.com"], ["mail", "list"], ["keys", "list"]]) {
      const r = plinth(args, { PLINTH_DATA_DIR: dir, PORT: "abc" });
      assert.equal(r.status, 78, `${args.join(" ")}: ${r.all}`);
      assert.match(r.stderr, /configuration error: PORT: /);
    }
    // doctor reports the failed check in its own format, and exits 78 like every other command
    const doctor = plinth(["doctor"], { PLINTH_DATA_DIR: dir, PORT: "abc" });
    assert.equal(doctor.status, 78, doctor.all);
    assert.match(doctor.stdout, /\[FAIL\] configuration: PORT: /);
    assert.deepEqual(readdirSync(dir), []);
  });

  it("a short PLINTH_MASTER_KEY exits 78 naming PLINTH_MASTER_KEY", () => {
    const r = plinth(["migrate"], { PLINTH_DATA_DIR: freshDir(), PLINTH_MASTER_KEY: "short" });
    assert.equal(r.status, 78, r.all);
    assert.match(r.stderr, /configuration error: PLINTH_MASTER_KEY: /);
  });

  it("doctor says an unreachable DATABASE_URL is unreachable, and blames nothing else", async () => {
    const url = `postgres://plinth@127.0.0.1:${await freePort()}/plinth`; // nothing listens there
    const r = plinth(["doctor"], { PLINTH_DATA_DIR: freshDir(), DATABASE_URL: url, PLINTH_MASTER_KEY: key });
    assert.equal(r.status, 1, r.all);
    assert.match(r.stdout, /^\[FAIL\] database: unreachable: .*ECONNREFUSED/m);
    assert.doesNotMatch(r.stdout, /\[FAIL\] (migrations|signing keys)/, "no misleading advice about migrations or the master key");
    assert.match(r.stdout, /1 problem\(s\) found/);
  });
});

describe("plinth serve on PostgreSQL", () => {
  // Its own throwaway cluster: this test lets serve give the cluster-wide role plinth_app the password derived from
  // the master key (no DATABASE_APP_URL), which on the shared test cluster would race every other file's plinth_app.
  let svc: (Service & { port: number }) | undefined;
  after(() => svc?.stop());

  it("migrates, gives plinth_app the password derived from the master key, and serves /readyz", async () => {
    svc = await startPostgres({ detached: true });
    const admin = new pg.Client({ connectionString: svc.url });
    await admin.connect();
    try {
      await admin.query("CREATE DATABASE plinth_cli");
      const masterKey = randomBytes(32);
      const port = await freePort();
      const { child, exited } = await serve({
        PLINTH_DATA_DIR: freshDir(),
        DATABASE_URL: dbUrl(svc.url, "plinth_cli"),
        PLINTH_MASTER_KEY: masterKey.toString("base64"),
        PORT: String(port),
      });
      const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
      assert.equal(ready.status, 200, await ready.clone().text());
      const body = (await ready.json()) as { checks: { database: { detail: string }; migrations: { ok: boolean } } };
      assert.equal(body.checks.database.detail, "postgres reachable");
      assert.equal(body.checks.migrations.ok, true);

      const role = await admin.query<{ rolpassword: string; rolcanlogin: boolean }>(
        "select rolpassword, rolcanlogin from pg_authid where rolname = 'plinth_app'",
      );
      assert.equal(role.rows[0].rolcanlogin, true);
      assert.ok(scramMatches(role.rows[0].rolpassword, appRolePassword(masterKey)), "the role's password is the derived one");
      assert.ok(!scramMatches(role.rows[0].rolpassword, appRolePassword(randomBytes(32))));
      const sessions = await admin.query<{ usename: string }>("select distinct usename from pg_stat_activity where datname = 'plinth_cli'");
      assert.ok(
        sessions.rows.some((r) => r.usename === "plinth_app"),
        "requests run as plinth_app",
      );

      child.kill("SIGTERM");
      assert.equal(await exited, 0);
    } finally {
      await admin.end();
    }
  });
});
