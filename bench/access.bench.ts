/**
 * bench/access: the authorization engine at size, and the tenant-scoped read path over HTTP. On a real PostgreSQL,
 * one org with 1,000 teams up to 6 deep, 10,000 members (each in a team, 5 % maintainers) and 100,000 relationship
 * grants (to users, teams and the org) on 20,000 resources:
 *
 *   in-process, as the app role (RLS on):
 *     uncached  a check with nothing cached: membership (role, custom role, teams, peer grants) + the object's
 *               grants, each read in one transaction                          → target p99 ≤ 2 ms
 *     cached    the same checks once their facts are cached (one core)       → target ≥ 200,000 checks/s
 *   over HTTP (autocannon in its own process, 50 connections):
 *     (t) a bare Fastify route running the teams page SELECT on a plain pg.Pool (no auth, no RLS, no transaction)
 *     (p) Plinth's GET /v1/orgs/{orgId}/teams?limit=50 with a member's token    → target p/t ≥ 50 %
 *
 * Knobs: BENCH_CONNECTIONS, BENCH_DURATION, BENCH_WARMUP (seconds), DATABASE_POOL_SIZE, BENCH_SCENARIOS=engine,http,
 * BENCH_TRACE=1 (list the uncached checks over 2 ms), BENCH_EXPLAIN=1 (print the plans of the engine's reads).
 * Prints a table and writes bench/results/access-<timestamp>.json. A missed target is reported (BELOW), not a failure.
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { PerformanceObserver } from "node:perf_hooks";
import pg from "pg";
import { openPostgres } from "../server/src/db/client.ts";
import { systemClock } from "../server/src/lib/clock.ts";
import { newId } from "../server/src/lib/ids.ts";
import { createAccessService } from "../server/src/modules/access/access.service.ts";
import { RELATIONS, type ObjectType, type Relation } from "../server/src/modules/access/relations.ts";
import {
  CAN_PIN,
  runBench,
  num,
  scenarioHeader,
  scenarioRow,
  writeResults,
  machine,
  startServer,
  type Cleanup,
  measure,
  type Measured,
  benchKnobs,
  benchWorkspace,
  plinthEnv,
  expectStatus,
  signUp,
} from "./lib.ts";

const { load: LOAD, poolSize: POOL_SIZE, only: ONLY } = benchKnobs("engine,http");

const TEAMS = 1_000;
const MAX_DEPTH = 6;
const MEMBERS = 10_000;
const OBJECTS = 20_000;
const GRANTS = 100_000;
const SAMPLE = 2_000;

/** Deterministic pseudo-random numbers, so every run seeds the same org. */
function rng(seed: number) {
  let s = seed >>> 0;
  return (n: number) => {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    s = (s ^ (s >>> 12)) >>> 0;
    return s % n;
  };
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

interface Seeded {
  orgId: string;
  users: string[];
  objects: { type: ObjectType; id: string }[];
  counts: { teams: number; depth: number; members: number; grants: number };
}

/** The org, as the table owner (bulk inserts through unnest: seconds, not minutes). */
async function seed(client: pg.Client): Promise<Seeded> {
  const rand = rng(42);
  const orgId = newId("org");
  await client.query("insert into orgs (id, name, slug) values ($1, 'Bench Org', $2)", [orgId, `bench-${randomBytes(4).toString("hex")}`]);

  const users = Array.from({ length: MEMBERS }, () => newId("user"));
  await client.query(
    "insert into users (id, email, name) select id, 'member' || n || '@bench.example', 'Member ' || n from unnest($1::text[]) with ordinality as u(id, n)",
    [users],
  );
  const roles = users.map((_, i) => (i === 0 ? "owner" : i < 50 ? "admin" : i < 2_000 ? "developer" : "viewer"));
  await client.query("insert into memberships (org_id, user_id, role) select $1, * from unnest($2::text[], $3::text[])", [orgId, users, roles]);

  const teams: { id: string; parent: string | null; path: string[] }[] = [];
  let depth = 0;
  for (let i = 0; i < TEAMS; i++) {
    const id = newId("team");
    let parent: (typeof teams)[number] | undefined;
    if (i >= 10) {
      // pick a parent that leaves room below MAX_DEPTH
      for (let tries = 0; tries < 20 && !parent; tries++) {
        const c = teams[rand(teams.length)];
        if (c.path.length < MAX_DEPTH) parent = c;
      }
    }
    const path = parent ? [...parent.path, id] : [id];
    depth = Math.max(depth, path.length);
    teams.push({ id, parent: parent?.id ?? null, path });
  }
  // parents before children (insertion order), so the parent foreign key holds row by row
  await client.query(
    "insert into teams (id, org_id, name, parent_id, path) select id, $1, 'Team ' || n, parent, string_to_array(path, ',') from unnest($2::text[], $3::text[], $4::text[]) with ordinality as t(id, parent, path, n)",
    [orgId, teams.map((t) => t.id), teams.map((t) => t.parent), teams.map((t) => t.path.join(","))],
  );
  const placements = users.map((u) => ({ user: u, team: teams[rand(teams.length)].id, role: rand(20) === 0 ? "maintainer" : "member" }));
  await client.query(
    "insert into team_members (team_id, org_id, user_id, role) select team, $1, u, r from unnest($2::text[], $3::text[], $4::text[]) as x(team, u, r)",
    [orgId, placements.map((p) => p.team), placements.map((p) => p.user), placements.map((p) => p.role)],
  );

  const types: ObjectType[] = ["conversation", "secret", "document", "agent"];
  const objects = Array.from({ length: OBJECTS }, (_, i) => ({ type: types[i % types.length], id: `obj_${i.toString().padStart(8, "0")}` }));
  const seen = new Set<string>();
  const g = { id: [] as string[], st: [] as string[], sid: [] as string[], rel: [] as string[], ot: [] as string[], oid: [] as string[] };
  while (g.id.length < GRANTS) {
    const o = objects[rand(objects.length)];
    const r = rand(10);
    const [st, sid] = r < 6 ? ["user", users[rand(users.length)]] : r < 9 ? ["team", teams[rand(teams.length)].id] : ["org", orgId];
    const rel = RELATIONS[rand(RELATIONS.length)];
    const key = `${o.type}|${o.id}|${rel}|${st}|${sid}`;
    if (seen.has(key)) continue;
    seen.add(key);
    g.id.push(newId("grant"));
    g.st.push(st);
    g.sid.push(sid);
    g.rel.push(rel);
    g.ot.push(o.type);
    g.oid.push(o.id);
  }
  for (let i = 0; i < GRANTS; i += 20_000) {
    const s = (a: string[]) => a.slice(i, i + 20_000);
    await client.query(
      "insert into grants (id, org_id, subject_type, subject_id, relation, object_type, object_id, kind) select id, $1, st, sid, rel, ot, oid, 'share' from unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) as g(id, st, sid, rel, ot, oid)",
      [orgId, s(g.id), s(g.st), s(g.sid), s(g.rel), s(g.ot), s(g.oid)],
    );
  }
  // settle the bulk load now (vacuum, statistics, a checkpoint), or autovacuum and the checkpointer do it during
  // the measurement and their I/O lands in the latency tail
  await client.query("vacuum (analyze)");
  await client.query("checkpoint");
  return { orgId, users, objects, counts: { teams: TEAMS, depth, members: MEMBERS, grants: GRANTS } };
}

/** BENCH_EXPLAIN=1: the plans of the engine's uncached reads, as the app role under RLS (for tuning, not a figure). */
async function explain(appUrl: string, s: Seeded): Promise<void> {
  const { PgDialect } = await import("drizzle-orm/pg-core");
  const { sql } = await import("drizzle-orm");
  const client = new pg.Client({ connectionString: appUrl });
  await client.connect();
  const user = s.users[123];
  const object = s.objects[456];
  await client.query("begin");
  await client.query("select set_config('app.org_id', $1, true), set_config('app.user_id', $2, true)", [s.orgId, user]);
  const dialect = new PgDialect();
  const now = new Date().toISOString();
  for (const [name, q] of [
    [
      "membership",
      sql`select m.role from memberships m join orgs o on o.id = m.org_id where m.org_id = ${s.orgId} and m.user_id = ${user} and o.deleted_at is null`,
    ],
    ["teams", sql`select t.id, t.path from team_members tm join teams t on t.id = tm.team_id where tm.org_id = ${s.orgId} and tm.user_id = ${user}`],
    [
      "peer",
      sql`select g.id from grants g where g.org_id = ${s.orgId} and g.kind = 'peer' and g.subject_type = 'user' and g.subject_id = ${user} and (g.expires_at is null or g.expires_at > ${now}::timestamptz)`,
    ],
    [
      "object grants",
      sql`select g.id from grants g where g.org_id = ${s.orgId} and g.object_type = ${object.type} and g.object_id = ${object.id} and g.kind = 'share'`,
    ],
  ] as const) {
    const { sql: text } = dialect.sqlToQuery(q.inlineParams());
    const r = await client.query(`explain (analyze, buffers) ${text}`);
    process.stdout.write(`\n--- ${name}\n${r.rows.map((x: Record<string, string>) => x["QUERY PLAN"]).join("\n")}\n`);
  }
  await client.query("rollback");
  await client.end();
}

interface EngineResult {
  uncached: { checks: number; perSec: number; p50Us: number; p90Us: number; p99Us: number; maxUs: number; allowed: number };
  cached: { checks: number; perSec: number; p50Us: number; p99Us: number };
}

/** The engine in this process on the app role's pool: uncached checks one at a time, then cached ones on one core. */
async function engineBench(appUrl: string, s: Seeded): Promise<EngineResult> {
  const db = await openPostgres({ ownerUrl: appUrl, appUrl, poolSize: Number(POOL_SIZE) });
  try {
    const access = createAccessService({ db, clock: systemClock });
    const rand = rng(7);
    const checks = Array.from({ length: SAMPLE }, () => ({
      user: s.users[rand(s.users.length)],
      object: s.objects[rand(s.objects.length)],
      relation: RELATIONS[1 + rand(RELATIONS.length - 1)] as Relation,
    }));
    const one = async (c: (typeof checks)[number]) => {
      const d = await access.checkUser(s.orgId, c.user, c.relation, c.object);
      if (!d) throw new Error(`seeded member ${c.user} not found`);
      return d.allowed;
    };
    // one unmeasured pass: the pool's connections, their prepared statements, and PostgreSQL's buffer cache warm up as
    // in a server that has been running — "uncached" means the engine's cache is empty for every check, not the
    // database's
    for (const c of checks) {
      access.clearCache();
      await one(c);
    }
    const lat: number[] = [];
    const startedAt: number[] = [];
    const gcs: { start: number; ms: number; kind: number }[] = [];
    const gcWatch = process.env.BENCH_TRACE
      ? new PerformanceObserver((list) => {
          for (const e of list.getEntries())
            gcs.push({ start: e.startTime, ms: e.duration, kind: (e as PerformanceEntry & { detail?: { kind: number } }).detail?.kind ?? 0 });
        })
      : undefined;
    gcWatch?.observe({ entryTypes: ["gc"] });
    let allowed = 0;
    const t0 = process.hrtime.bigint();
    for (const c of checks) {
      access.clearCache();
      startedAt.push(performance.now());
      const a = process.hrtime.bigint();
      if (await one(c)) allowed++;
      lat.push(Number(process.hrtime.bigint() - a) / 1000);
    }
    gcWatch?.disconnect();
    const uncachedSec = Number(process.hrtime.bigint() - t0) / 1e9;
    if (process.env.BENCH_TRACE) {
      const slow = lat.map((l, i) => [i, Math.round(l)]).filter(([, l]) => l > 2000);
      process.stdout.write(
        `slow uncached checks (index:µs): ${slow.map(([i, l]) => `${i}:${l}:${checks[i].user}:${checks[i].object.type}:${checks[i].relation}`).join(" ")}\n`,
      );
      // the same checks again, alone: slow again means the data (plan, rows), fast means the moment (timers, GC, I/O)
      const again: string[] = [];
      for (const [i] of slow) {
        access.clearCache();
        const a = process.hrtime.bigint();
        await one(checks[i]);
        again.push(`${i}:${Math.round(Number(process.hrtime.bigint() - a) / 1000)}`);
      }
      process.stdout.write(`the same checks re-run (index:µs): ${again.join(" ")}\n`);
      // which slow checks had a garbage collection inside them
      const inGc = slow.filter(([i]) => gcs.some((g) => g.start < startedAt[i] + lat[i] / 1000 && g.start + g.ms > startedAt[i]));
      // the floor under an uncached check: readScoped of a statement that reads nothing
      const floor: number[] = [];
      const { sql } = await import("drizzle-orm");
      for (let i = 0; i < 2000; i++) {
        const a = process.hrtime.bigint();
        await db.readScoped({ orgId: s.orgId }, sql`select ${i}::int as n`);
        floor.push(Number(process.hrtime.bigint() - a) / 1000);
      }
      floor.sort((a, b) => a - b);
      process.stdout.write(`readScoped of 'select $1': p50 ${pct(floor, 50).toFixed(0)} µs p99 ${pct(floor, 99).toFixed(0)} µs\n`);
      process.stdout.write(`slow checks at ms since start: ${slow.map(([i]) => (startedAt[i] - startedAt[0]).toFixed(0)).join(" ")}\n`);
      process.stdout.write(
        `GCs during the measured pass: ${gcs.length} (${gcs.map((g) => `${g.kind}:${g.ms.toFixed(2)}ms`).join(" ")}); slow checks overlapping one: ${inGc.length} of ${slow.length}\n`,
      );
    }
    lat.sort((a, b) => a - b);
    const uncached = {
      checks: checks.length,
      perSec: checks.length / uncachedSec,
      p50Us: pct(lat, 50),
      p90Us: pct(lat, 90),
      p99Us: pct(lat, 99),
      maxUs: lat[lat.length - 1],
      allowed,
    };

    for (const c of checks) await one(c); // every fact cached
    const cachedLat: number[] = [];
    for (let i = 0; i < 20_000; i++) {
      const c = checks[i % checks.length];
      const a = process.hrtime.bigint();
      await one(c);
      cachedLat.push(Number(process.hrtime.bigint() - a) / 1000);
    }
    cachedLat.sort((a, b) => a - b);
    let n = 0;
    const until = performance.now() + 2_000;
    const start = performance.now();
    while (performance.now() < until) {
      for (let i = 0; i < 1_000; i++) await one(checks[(n + i) % checks.length]);
      n += 1_000;
    }
    const cached = { checks: n, perSec: n / ((performance.now() - start) / 1000), p50Us: pct(cachedLat, 50), p99Us: pct(cachedLat, 99) };
    return { uncached, cached };
  } finally {
    await db.close();
  }
}

async function main(cleanup: Cleanup): Promise<void> {
  const started = Date.now();
  const ws = await benchWorkspace(cleanup);
  const { tmp, db: pgService } = ws;
  const { ownerUrl, appUrl } = pgService;

  const owner = new pg.Client({ connectionString: ownerUrl });
  await owner.connect();
  owner.on("error", () => {}); // PostgreSQL stopping at the end must not crash the report
  const seedStart = Date.now();
  const s = await seed(owner);
  process.stdout.write(
    `access bench: ${pgService.version}; seeded 1 org, ${s.counts.teams} teams (${s.counts.depth} deep), ${s.counts.members} members, ${s.counts.grants} grants in ${((Date.now() - seedStart) / 1000).toFixed(1)} s\n`,
  );

  if (process.env.BENCH_EXPLAIN) await explain(appUrl, s);
  let engine: EngineResult | undefined;
  if (ONLY.includes("engine")) {
    process.stdout.write("  engine: uncached and cached checks …\n");
    engine = await engineBench(appUrl, s);
  }

  const http: { key: string; label: string; m: Measured }[] = [];
  if (ONLY.includes("http")) {
    const env = () => plinthEnv(ws, { poolSize: POOL_SIZE });
    // a member of the big org, signed in through the API (a developer: teams:read, not teams:update)
    const plinth = await startServer(cleanup, "plinth.ts", await env(), { stdoutFile: join(tmp, "plinth.log") });
    const { userId, bearer } = await signUp(plinth.url);
    await owner.query("insert into memberships (org_id, user_id, role) values ($1, $2, 'developer')", [s.orgId, userId]);
    const path = `/v1/orgs/${s.orgId}/teams?limit=50`;
    const page = await expectStatus(plinth.url + path, 200, { headers: bearer });
    if (page.items?.length !== 50) throw new Error(`teams page: expected 50 items, got ${JSON.stringify(page).slice(0, 300)}`);
    await expectStatus(plinth.url + path, 401);

    const bare = await startServer(cleanup, "teams-bare.ts", { BENCH_PG_URL: ownerUrl, BENCH_ORG_ID: s.orgId, DATABASE_POOL_SIZE: POOL_SIZE });
    const barePage = await expectStatus(`${bare.url}/bench/teams`, 200);
    if (barePage.items?.length !== 50) throw new Error(`bare teams page: ${JSON.stringify(barePage).slice(0, 300)}`);
    process.stdout.write("  (t) bare Fastify + pg.Pool, the same SELECT …\n");
    http.push({ key: "t", label: "bare Fastify + pg.Pool, teams page SELECT", m: await measure(cleanup, bare, "/bench/teams", LOAD) });
    await bare.stop();
    process.stdout.write("  (p) Plinth GET /v1/orgs/{orgId}/teams?limit=50 …\n");
    http.push({ key: "p", label: "Plinth GET …/teams?limit=50 (auth, RLS, tx)", m: await measure(cleanup, plinth, path, { ...LOAD, headers: bearer }) });
    await plinth.stop();
  }
  await owner.end();

  const verdict = (ok: boolean) => (ok ? "PASS " : "BELOW");
  const lines = [
    "",
    `Plinth access bench — ${pgService.version}; Node ${process.version}; ${machine().cpus} CPU(s) ${machine().cpuModel}; ${CAN_PIN ? "HTTP servers pinned to CPU 0, autocannon to CPU 1" : "no CPU pinning"}`,
  ];
  const targets: { name: string; value: number; target: number; pass: boolean }[] = [];
  if (engine) {
    const uncachedOk = engine.uncached.p99Us <= 2_000;
    const cachedOk = engine.cached.perSec >= 200_000;
    targets.push({ name: "uncached p99 µs", value: engine.uncached.p99Us, target: 2_000, pass: uncachedOk });
    targets.push({ name: "cached checks/s", value: engine.cached.perSec, target: 200_000, pass: cachedOk });
    lines.push(
      "",
      `engine (in-process, app role, RLS on; ${SAMPLE} distinct checks, ${engine.uncached.allowed} of them allowed)`,
      `  uncached  ${num(engine.uncached.perSec).padStart(9)} checks/s   p50 ${num(engine.uncached.p50Us)} µs   p90 ${num(engine.uncached.p90Us)} µs   p99 ${num(engine.uncached.p99Us)} µs   max ${num(engine.uncached.maxUs)} µs   target p99 ≤ 2,000 µs  ${verdict(uncachedOk)}`,
      `  cached    ${num(engine.cached.perSec).padStart(9)} checks/s   p50 ${engine.cached.p50Us.toFixed(1)} µs   p99 ${engine.cached.p99Us.toFixed(1)} µs   target ≥ 200,000/s      ${verdict(cachedOk)}`,
    );
  }
  if (http.length) {
    lines.push("", scenarioHeader("HTTP", 54));
    for (const h of http) lines.push(scenarioRow(h.key, h.label, h.m, 54, 4));
    const t = http.find((h) => h.key === "t");
    const p = http.find((h) => h.key === "p");
    if (t && p) {
      const ratio = p.m.result.requestsPerSec / t.m.result.requestsPerSec;
      targets.push({ name: "p/t", value: ratio, target: 0.5, pass: ratio >= 0.5 });
      lines.push(
        "",
        `p/t  ${(ratio * 100).toFixed(1)} %   target ≥ 50.0 %  ${verdict(ratio >= 0.5)}  Plinth's authorized, tenant-scoped page vs the bare SELECT`,
      );
    }
  }
  process.stdout.write(`${lines.join("\n")}\n`);
  writeResults(
    "access",
    {
      machine: { ...machine(), postgres: pgService.version },
      seeded: s.counts,
      engine,
      http: http.map((h) => ({ key: h.key, label: h.label, ...h.m.result, serverCpuUsPerReq: h.m.serverCpuUsPerReq, foreignCpus: h.m.foreignCpus })),
      targets,
    },
    started,
  );
}

await runBench("access", main);
