/**
 * Builds Plinth the way `plinth serve` does (loadConfig → createDeps → buildApp) on PGlite or on a real PostgreSQL,
 * with helpers to make users and call routes. `npm test` starts PostgreSQL and Redis once and passes their URLs in
 * PLINTH_TEST_PG_URL / PLINTH_TEST_REDIS_URL; a file run alone starts its own.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from "fastify";
import { sql } from "drizzle-orm";
import pg from "pg";
import type { Logger } from "pino";
import { buildApp } from "../src/app.ts";
import { loadConfig } from "../src/config.ts";
import { openPglite, type Database } from "../src/db/client.ts";
import { migrate } from "../src/db/migrate.ts";
import { createDeps, type Deps } from "../src/deps.ts";
import type { Clock } from "../src/lib/clock.ts";
import { createLogger } from "../src/logger.ts";
import { DEFAULT_ABUSE_RULES, type AbuseRules } from "../src/modules/identity/abuse.ts";
import { startPostgres, startRedis } from "./services.ts";

export type Backend = "pglite" | "postgres";
export const BACKENDS: Backend[] = ["pglite", "postgres"];

export const TEMPLATE_DB = "plinth_template";
export const APP_ROLE_PASSWORD = "plinth-test-app-password";

let ownPg: Promise<string> | undefined;
let ownRedis: Promise<string> | undefined;

/** Superuser URL of the test PostgreSQL cluster (with the migrated template database ready). */
export function postgresUrl(): Promise<string> {
  if (process.env.PLINTH_TEST_PG_URL) return Promise.resolve(process.env.PLINTH_TEST_PG_URL);
  ownPg ??= (async () => {
    const svc = await startPostgres({ detached: true });
    await prepareTemplate(svc.url);
    return svc.url;
  })();
  return ownPg;
}

export function redisUrl(): Promise<string> {
  if (process.env.PLINTH_TEST_REDIS_URL) return Promise.resolve(process.env.PLINTH_TEST_REDIS_URL);
  ownRedis ??= (async () => {
    const svc = await startRedis({ detached: true });
    return svc.url;
  })();
  return ownRedis;
}

export function dbUrl(serverUrl: string, database: string, user?: string, password?: string): string {
  const u = new URL(serverUrl);
  u.pathname = `/${database}`;
  if (user) u.username = user;
  if (password) u.password = password;
  return u.toString();
}

/** Migrates a template database once; each test file copies it (CREATE DATABASE … TEMPLATE) in milliseconds. */
export async function prepareTemplate(serverUrl: string): Promise<void> {
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${TEMPLATE_DB}`);
  await admin.query(`CREATE DATABASE ${TEMPLATE_DB}`);
  await admin.end();
  const { openPostgres } = await import("../src/db/client.ts");
  const db = await openPostgres({ ownerUrl: dbUrl(serverUrl, TEMPLATE_DB), appUrl: dbUrl(serverUrl, TEMPLATE_DB), poolSize: 1 });
  await migrate(db, APP_ROLE_PASSWORD);
  await db.close();
}

let dbCounter = 0;
async function freshPostgresDatabase(): Promise<{ ownerUrl: string; appUrl: string }> {
  const server = await postgresUrl();
  const name = `t_${process.pid}_${++dbCounter}_${randomBytes(3).toString("hex")}`;
  const admin = new pg.Client({ connectionString: server });
  await admin.connect();
  try {
    // concurrent copies of one template can collide on its lock; retry briefly
    for (let i = 0; ; i++) {
      try {
        await admin.query(`CREATE DATABASE ${name} TEMPLATE ${TEMPLATE_DB}`);
        break;
      } catch (e) {
        if (i > 20 || !/being accessed by other users/.test((e as Error).message)) throw e;
        await new Promise((r) => setTimeout(r, 50 + i * 20));
      }
    }
  } finally {
    await admin.end();
  }
  return { ownerUrl: dbUrl(server, name), appUrl: dbUrl(server, name, "plinth_app", APP_ROLE_PASSWORD) };
}

/** Relaxed per-IP limits (every test request comes from 127.0.0.1); per-account limits stay as shipped. */
export const TEST_ABUSE_RULES: AbuseRules = {
  ...DEFAULT_ABUSE_RULES,
  loginPerIp: { ...DEFAULT_ABUSE_RULES.loginPerIp, points: 100_000 },
  registerPerIp: { ...DEFAULT_ABUSE_RULES.registerPerIp, points: 100_000 },
  registerPerEmail: { ...DEFAULT_ABUSE_RULES.registerPerEmail, points: 100_000 },
  emailPerIp: { ...DEFAULT_ABUSE_RULES.emailPerIp, points: 100_000 },
  credentialFailuresPerIp: { ...DEFAULT_ABUSE_RULES.credentialFailuresPerIp, points: 100_000 },
};

export interface TestAppOptions {
  backend: Backend;
  env?: Record<string, string>;
  clock?: Clock;
  abuseRules?: AbuseRules;
  /** Run the job worker (default true). */
  worker?: boolean;
  /** The app's logger (default: createLogger at LOG_LEVEL, silent); tests capture log lines with createLogger(level, stream). */
  log?: Logger;
  /**
   * Run as a second instance on `other`'s database, with its master key: on PostgreSQL with its URLs (own pools), on
   * PGlite on the same in-memory database (which stays `other`'s to close: close this one first).
   */
  sameDatabaseAs?: TestApp;
}

export interface TestApp {
  app: FastifyInstance;
  deps: Deps;
  backend: Backend;
  db: Database;
  inject(opts: InjectOptions): Promise<LightMyRequestResponse>;
  /** JSON request with an optional bearer token. */
  call(method: string, url: string, body?: unknown, token?: string, headers?: Record<string, string>): Promise<LightMyRequestResponse>;
  close(): Promise<void>;
}

export async function createTestApp(opts: TestAppOptions): Promise<TestApp> {
  const other = opts.sameDatabaseAs;
  const env: Record<string, string> = {
    PLINTH_MASTER_KEY: (other?.deps.config.masterKey ?? randomBytes(32)).toString("base64"),
    PLINTH_PUBLIC_URL: "http://plinth.test",
    LOG_LEVEL: "silent",
    PLINTH_DATA_DIR: "/nonexistent-plinth-test-data-dir",
    ...opts.env,
  };
  let db: Database | undefined;
  let ownsDb = false;
  if (other && other.backend !== opts.backend) throw new Error("sameDatabaseAs: the other app runs on another backend");
  if (opts.backend === "postgres") {
    const od = other?.deps.config.database;
    if (od && (od.kind !== "postgres" || !od.appUrl)) throw new Error("sameDatabaseAs: the other app has no PostgreSQL URLs");
    const urls = od?.kind === "postgres" ? { ownerUrl: od.url, appUrl: od.appUrl ?? "" } : await freshPostgresDatabase();
    env.DATABASE_URL = urls.ownerUrl;
    env.DATABASE_APP_URL = urls.appUrl;
    env.PLINTH_AUTO_MIGRATE = "false";
  } else if (other) {
    db = other.db;
  } else {
    db = await openPglite(undefined);
    ownsDb = true;
    await migrate(db);
  }
  const config = loadConfig(env);
  const deps = await createDeps(config, {
    db,
    clock: opts.clock,
    abuseRules: opts.abuseRules ?? TEST_ABUSE_RULES,
    log: opts.log ?? createLogger(config.logLevel),
  });
  const app = await buildApp(deps);
  await app.ready();
  if (opts.worker !== false) deps.jobs.start();
  const t: TestApp = {
    app,
    deps,
    backend: opts.backend,
    db: deps.db,
    inject: (o) => app.inject(o),
    call(method, url, body, token, headers = {}) {
      return app.inject({
        method: method as InjectOptions["method"],
        url,
        headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
        ...(body !== undefined ? { payload: body as InjectOptions["payload"] } : {}),
      });
    },
    async close() {
      await app.close();
      await deps.close();
      if (db && ownsDb) await db.close();
    },
  };
  return t;
}

let userCounter = 0;
export function uniqueEmail(tag = "user"): string {
  return `${tag}.${process.pid}.${++userCounter}.${randomBytes(3).toString("hex")}@example.com`;
}

export const GOOD_PASSWORD = "a sturdy passphrase 42";

export interface TestUser {
  id: string;
  email: string;
  password: string;
  access_token: string;
  refresh_token: string;
}

/** Registers and signs in a fresh user. */
export async function signUp(t: TestApp, name = "Test User"): Promise<TestUser> {
  const email = uniqueEmail();
  const reg = await t.call("POST", "/v1/auth/register", { email, password: GOOD_PASSWORD, name });
  if (reg.statusCode !== 201) throw new Error(`register failed: ${reg.statusCode} ${reg.body}`);
  const login = await t.call("POST", "/v1/auth/login", { email, password: GOOD_PASSWORD });
  if (login.statusCode !== 200) throw new Error(`login failed: ${login.statusCode} ${login.body}`);
  return { id: reg.json().id, email, password: GOOD_PASSWORD, ...login.json() };
}

/** Asserts the common shape of every error: problem+json with code, detail and request id, no stack. */
export function problemOf(res: LightMyRequestResponse): {
  code: string;
  status: number;
  detail: string;
  field?: string;
  errors?: { field: string; reason: string }[];
  request_id: string;
  reason?: string;
} {
  const type = String(res.headers["content-type"] ?? "");
  if (!type.startsWith("application/problem+json")) throw new Error(`expected problem+json, got ${type}: ${res.body}`);
  if (/\bat .*\.(ts|js):\d+/.test(res.body)) throw new Error(`stack trace in response: ${res.body}`);
  const p = res.json();
  if (p.status !== res.statusCode || typeof p.code !== "string" || typeof p.request_id !== "string" || typeof p.detail !== "string") {
    throw new Error(`malformed problem document: ${res.body}`);
  }
  return p;
}

/** A 400 (VALIDATION_FAILED unless `code` says otherwise) whose `errors` (or `field`) name exactly `field`. */
export function assertFieldError(res: LightMyRequestResponse, field: string, code = "VALIDATION_FAILED"): void {
  assert.equal(res.statusCode, 400, res.body);
  const p = problemOf(res);
  assert.equal(p.code, code, res.body);
  const fields = [...(p.errors ?? []).map((e) => e.field), p.field];
  assert.ok(fields.includes(field), `expected an error naming ${field}: ${res.body}`);
}

export type Problem = ReturnType<typeof problemOf> & Record<string, unknown>;

/**
 * Asserts `res` is a problem+json answer with this status and code, and returns the document. `expect` is the field
 * at fault (the problem's `field`), or members the document must have, compared deeply (`{ permission: "keys:create" }`).
 */
export function assertProblem(res: LightMyRequestResponse, status: number, code: string, expect?: string | Record<string, unknown>): Problem {
  assert.equal(res.statusCode, status, res.body);
  const p = problemOf(res) as Problem;
  assert.equal(p.code, code, res.body);
  const members = typeof expect === "string" ? { field: expect } : (expect ?? {});
  for (const [k, v] of Object.entries(members)) assert.deepEqual(p[k], v, `${k} in ${res.body}`);
  return p;
}

export function uniqueSlug(tag = "org"): string {
  return `${tag}-${randomBytes(5).toString("hex")}`;
}

/** Creates an organization through the API; `owner` becomes its owner. Returns its id. */
export async function makeOrg(t: TestApp, owner: TestUser, name = "Test Org", slug = uniqueSlug()): Promise<string> {
  const res = await t.call("POST", "/v1/orgs", { name, slug }, owner.access_token);
  if (res.statusCode !== 201) throw new Error(`create org failed: ${res.statusCode} ${res.body}`);
  return res.json().id as string;
}

/**
 * Makes `user` a member of `orgId` with `role` (or changes their role) directly in the table, as an accepted
 * invitation would, and drops the org's cached access so the next request sees it.
 */
export async function addMember(t: TestApp, orgId: string, user: { id: string }, role: string): Promise<void> {
  await t.db.owner.execute(
    sql`insert into memberships (org_id, user_id, role) values (${orgId}, ${user.id}, ${role}) on conflict (org_id, user_id) do update set role = excluded.role`,
  );
  await t.deps.access.invalidate(orgId);
}

export interface TestKey {
  id: string;
  name: string;
  secret: string;
}

/**
 * Creates an API key in `orgId` as `by` (a user, or any bearer credential); asserts 201. The name is unique unless
 * the body gives one; a body that names no roles, permissions or inherit gets roles ["viewer"].
 */
export async function makeKey(t: TestApp, orgId: string, by: TestUser | string, body: Record<string, unknown> = {}): Promise<TestKey> {
  const grants = "roles" in body || "permissions" in body || "inherit" in body ? {} : { roles: ["viewer"] };
  const res = await t.call(
    "POST",
    `/v1/orgs/${orgId}/keys`,
    { name: `k-${randomBytes(4).toString("hex")}`, ...grants, ...body },
    typeof by === "string" ? by : by.access_token,
  );
  assert.equal(res.statusCode, 201, res.body);
  return res.json() as TestKey;
}
