/**
 * `npm run bench vault`: the secrets vault on PostgreSQL, each figure beside a baseline measured in the same round.
 *
 *   (b) bare Fastify + pg: one transaction with the SELECT of the secret joined with its version and an audit INSERT
 *       (servers/vault-bare.ts), in an org of its own
 *   (r) Plinth POST /v1/orgs/{orgId}/secrets/{id}/reveal with an API key, in an org holding 100 secrets
 *   (R) the same in an org holding 100,000 secrets (seeded by SQL, one version each)
 *   (L) POST …/secret-leases/{id}/reveal: a runner's lease of 50 of (r)'s secrets, BENCH_LEASE_CONNECTIONS (1) at a time
 *   (W) rotation: POST …/vault/$rotate in an org of BENCH_ROTATE_VERSIONS (100,000) secret versions, each a real
 *       envelope under its own identity (encrypted here through the server's KMS code, inserted in bulk), timed until
 *       GET …/vault reports no version left on the old key; meanwhile BENCH_ROTATE_READERS (4) loops reveal a secret
 *       of the org, one request at a time each, and their latencies inside the rotation window make its p99, beside
 *       the same loops' p99 before the rotation (the baseline, same run)
 *
 * Targets (issue 10): r/b ≥ 50 % of the bare transaction's req/s; R against r within 20 % (latency and req/s); the
 * lease's p99 ≤ 10 ms (median of the rounds); the re-wrap ≥ 5,000 versions/s, reads served throughout (every reveal
 * during the rotation answers 200).
 * Knobs: BENCH_ROUNDS, BENCH_CONNECTIONS, BENCH_DURATION, BENCH_WARMUP, DATABASE_POOL_SIZE, BENCH_SCENARIOS=b,r,R,L,W,
 * BENCH_VAULT_SECRETS (the large org's size, default 100000), BENCH_ROTATE_VERSIONS, BENCH_ROTATE_READERS.
 */
import { join } from "node:path";
import pg from "pg";
import { sql } from "drizzle-orm";
import { textArray, intArray } from "../server/src/db/arrays.ts";
import { openPostgres } from "../server/src/db/client.ts";
import { createKms } from "../server/src/kms/kms.ts";
import { systemClock } from "../server/src/lib/clock.ts";
import { secretAad } from "../server/src/modules/vault/secret-values.ts";
import {
  CAN_PIN,
  ROUNDS,
  benchKnobs,
  benchWorkspace,
  busyWarning,
  createKey,
  createOrg,
  envNumber,
  evaluateRatios,
  expectStatus,
  json,
  machine,
  measure,
  plinthEnv,
  ratioTable,
  roundsReport,
  roundsTable,
  runBench,
  runRounds,
  signUp,
  startServer,
  writeResults,
  type Cleanup,
  type Measured,
  type PlanStep,
} from "./lib.ts";

const { load: LOAD, poolSize: POOL_SIZE, only: ONLY } = benchKnobs("b,r,R,L,W");
const { connections: CONNECTIONS, durationSec: DURATION, warmupSec: WARMUP } = LOAD;
const SMALL = 100;
const LARGE = envNumber("BENCH_VAULT_SECRETS", 100_000);
/** A runner reading its lease: one at a time by default (p99 of a lease's reveal, not of a queue). */
const LEASE_CONNECTIONS = envNumber("BENCH_LEASE_CONNECTIONS", 1);
const LEASE_SIZE = 50;
const ROTATE_VERSIONS = envNumber("BENCH_ROTATE_VERSIONS", 100_000);
const ROTATE_READERS = envNumber("BENCH_ROTATE_READERS", 4);

type Key = "b" | "r" | "R" | "L" | "W";
interface Scenario extends Measured {
  key: Key;
  label: string;
}

/** `count` secrets in the org through the API (so each is a real envelope); answers the first one's id. */
async function createSecrets(url: string, key: string, orgId: string, count: number, prefix: string): Promise<string> {
  let first = "";
  for (let i = 0; i < count; i++) {
    const s = await expectStatus(
      `${url}/v1/orgs/${orgId}/secrets`,
      201,
      json("POST", { name: `${prefix}_${i}`, value: `bench value ${prefix} ${i} ${"x".repeat(40)}` }, { "x-api-key": key }),
    );
    first ||= s.id as string;
  }
  return first;
}

/**
 * Grows the org to `total` secrets by SQL, one version each copied from an existing version's envelope (under the
 * org's real key-encryption key; they would not decrypt under their own identity, and nobody reveals them). Runs as
 * the owner with the org set, as the app's transactions do, so row-level security holds either way.
 */
async function seed(ownerUrl: string, orgId: string, total: number, have: number): Promise<void> {
  const client = new pg.Client({ connectionString: ownerUrl });
  await client.connect();
  try {
    await client.query("BEGIN");
    await client.query("select set_config('app.org_id', $1, true)", [orgId]);
    const n = total - have;
    await client.query(
      `insert into vault_secrets (id, org_id, scope, name, current_version, created_at, updated_at)
       select 'sec_seed' || lpad(i::text, 10, '0'), $1, 'org', 'SEED_' || i, 1, now(), now() from generate_series(1, $2::int) as i`,
      [orgId, n],
    );
    await client.query(
      `insert into vault_secret_versions (org_id, secret_id, version, ciphertext, nonce, wrapped_key, kek_version, created_at)
       select $1, 'sec_seed' || lpad(i::text, 10, '0'), 1, v.ciphertext, v.nonce, v.wrapped_key, v.kek_version, now()
       from generate_series(1, $2::int) as i, (select * from vault_secret_versions where org_id = $1 limit 1) as v`,
      [orgId, n],
    );
    await client.query("COMMIT");
    await client.query("ANALYZE vault_secrets");
    await client.query("ANALYZE vault_secret_versions");
    const { rows } = await client.query("select count(*)::int as n from vault_secrets where org_id = $1", [orgId]);
    if (rows[0].n !== total) throw new Error(`seeded ${rows[0].n} secrets, wanted ${total}`);
  } finally {
    await client.end();
  }
}

/**
 * Adds `count` org secrets of one version each to the org, every one a real envelope under its own identity (its
 * associated data names the secret, so a copied envelope would not re-wrap), encrypted here through the server's own
 * KMS code with the server's master key and inserted in bulk as the app role, with the org set.
 */
async function seedEnvelopes(ws: { db: { ownerUrl: string; appUrl: string }; masterKey: string }, orgId: string, count: number): Promise<void> {
  const db = await openPostgres({ ownerUrl: ws.db.ownerUrl, appUrl: ws.db.appUrl, poolSize: 2 });
  const kms = createKms({ masterKey: Buffer.from(ws.masterKey, "base64"), clock: systemClock });
  const CHUNK = 2_000;
  try {
    for (let at = 0; at < count; at += CHUNK) {
      await db.tx({ orgId }, async (tx) => {
        const rows = { id: [] as string[], name: [] as string[], ct: [] as string[], nonce: [] as string[], wrap: [] as string[], kek: [] as number[] };
        for (let i = at; i < Math.min(count, at + CHUNK); i++) {
          const id = `sec_rot${String(i).padStart(10, "0")}`;
          const aad = secretAad({ orgId, id, scope: "org", teamId: null, userId: null }, 1);
          const e = await kms.encrypt(tx, orgId, Buffer.from(`rotation bench value ${i}`), aad);
          rows.id.push(id);
          rows.name.push(`ROT_${i}`);
          rows.ct.push(e.ciphertext);
          rows.nonce.push(e.nonce);
          rows.wrap.push(e.wrappedKey);
          rows.kek.push(e.kekVersion);
        }
        await tx.execute(sql`insert into vault_secrets (id, org_id, scope, name, current_version, created_at, updated_at)
          select u.id, ${orgId}, 'org', u.name, 1, now(), now() from unnest(${textArray(rows.id)}, ${textArray(rows.name)}) as u(id, name)`);
        await tx.execute(sql`insert into vault_secret_versions (org_id, secret_id, version, ciphertext, nonce, wrapped_key, kek_version, created_at)
          select ${orgId}, u.id, 1, u.ct, u.nonce, u.wrap, u.kek, now()
            from unnest(${textArray(rows.id)}, ${textArray(rows.ct)}, ${textArray(rows.nonce)}, ${textArray(rows.wrap)}, ${intArray(rows.kek)})
              as u(id, ct, nonce, wrap, kek)`);
      });
    }
  } finally {
    await db.close();
  }
  const client = new pg.Client({ connectionString: ws.db.ownerUrl });
  await client.connect();
  try {
    await client.query("ANALYZE vault_secrets");
    await client.query("ANALYZE vault_secret_versions");
  } finally {
    await client.end();
  }
}

interface Rotation {
  versions: number;
  seconds: number;
  versionsPerSec: number;
  /** The reader loops' reveals before the rotation (baseline) and during it */
  before: { n: number; p50: number; p99: number };
  during: { n: number; p50: number; p99: number; failed: number };
}

const pct = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? Math.round(s[Math.min(s.length - 1, Math.floor(q * s.length))] * 10) / 10 : Number.NaN;
};

/**
 * Reader loops, one request at a time each, until `stop()`: each reveal's latency and whether it answered 200.
 */
async function readLoops(readers: number, url: string, headers: Record<string, string>, stop: () => boolean): Promise<{ ms: number[]; failed: number }> {
  const ms: number[] = [];
  let failed = 0;
  await Promise.all(
    Array.from({ length: readers }, async () => {
      while (!stop()) {
        const t = performance.now();
        const r = await fetch(url, { method: "POST", headers });
        await r.arrayBuffer();
        ms.push(performance.now() - t);
        if (r.status !== 200) failed++;
      }
    }),
  );
  return { ms, failed };
}

// secret names are upper-case (^[A-Z_][A-Z0-9_]*$)
const PREFIX: Record<Exclude<Key, "L" | "W">, string> = { b: "BENCH_BARE", r: "BENCH_SMALL", R: "BENCH_LARGE" };

async function main(cleanup: Cleanup): Promise<void> {
  const started = Date.now();
  const ws = await benchWorkspace(cleanup);
  const { tmp, db } = ws;
  process.stdout.write(`vault bench: ${db.version}, ${CONNECTIONS} connections, ${WARMUP} s warm-up + ${DURATION} s per scenario\n`);
  const startPlinth = async (log: string) => startServer(cleanup, "plinth.ts", await plinthEnv(ws, { poolSize: POOL_SIZE }), { stdoutFile: join(tmp, log) });

  let orgW: { orgId: string; key: string; adminKey: string; secretId: string } | undefined;
  // Setup through the API: three orgs, a developer key in each (secrets:read), their secrets.
  const orgs = {} as Record<Exclude<Key, "L" | "W">, { orgId: string; key: string; auditKey: string; secretId: string }>;
  {
    const server = await startPlinth("plinth-setup.log");
    const { bearer } = await signUp(server.url);
    for (const [k, name, count] of [
      ["b", "Bare Org", SMALL],
      ["r", "Small Org", SMALL],
      ["R", "Large Org", SMALL],
    ] as const) {
      const orgId = await createOrg(server.url, bearer, name);
      const key = await createKey(server.url, bearer, orgId, `bench-${k}`, ["developer"]);
      // the developer key reveals; a second key (admin) reads the audit log afterwards
      const auditKey = await createKey(server.url, bearer, orgId, `bench-${k}-audit`, ["admin"]);
      orgs[k] = { orgId, key, auditKey, secretId: await createSecrets(server.url, key, orgId, count, PREFIX[k]) };
    }
    if (ONLY.includes("W")) {
      const orgId = await createOrg(server.url, bearer, "Rotation Org");
      const key = await createKey(server.url, bearer, orgId, "bench-W", ["developer"]);
      const adminKey = await createKey(server.url, bearer, orgId, "bench-W-admin", ["admin"]);
      orgW = { orgId, key, adminKey, secretId: await createSecrets(server.url, key, orgId, 1, "BENCH_ROTATE") };
    }
    await server.stop();
  }
  if (ONLY.includes("R")) {
    const t0 = Date.now();
    await seed(db.ownerUrl, orgs.R.orgId, LARGE, SMALL);
    process.stdout.write(`seeded ${LARGE.toLocaleString("en-US")} secrets in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  }
  if (orgW) {
    const t1 = Date.now();
    await seedEnvelopes(ws, orgW.orgId, ROTATE_VERSIONS - 1);
    process.stdout.write(`seeded ${ROTATE_VERSIONS.toLocaleString("en-US")} envelopes for the rotation in ${((Date.now() - t1) / 1000).toFixed(1)} s\n`);
  }

  const revealed = (id: string) => (body: { id?: string; value?: string; version?: number }) => {
    if (body?.id !== id || body.version !== 1) throw new Error(`answered the wrong secret: ${JSON.stringify(body).slice(0, 300)}`);
  };
  const bare = async (label: string): Promise<Scenario> => {
    const { orgId, secretId } = orgs.b;
    const server = await startServer(cleanup, "vault-bare.ts", { BENCH_PG_URL: db.appUrl, BENCH_ORG_ID: orgId, DATABASE_POOL_SIZE: POOL_SIZE });
    const path = `/bench/secrets/${secretId}/reveal`;
    revealed(secretId)(await expectStatus(server.url + path, 200, { method: "POST" }));
    const m = await measure(cleanup, server, path, { ...LOAD, method: "POST" });
    await server.stop();
    return { key: "b", label, ...m };
  };
  const plinth = async (key: "r" | "R", label: string): Promise<Scenario> => {
    const { orgId, key: secret, auditKey, secretId } = orgs[key];
    const server = await startPlinth(`plinth-${key}.log`);
    const path = `/v1/orgs/${orgId}/secrets/${secretId}/reveal`;
    await expectStatus(server.url + path, 401, { method: "POST" });
    const body = await expectStatus(server.url + path, 200, { method: "POST", headers: { "x-api-key": secret } });
    revealed(secretId)(body);
    if (!body.value?.startsWith(`bench value ${PREFIX[key]} 0 `)) throw new Error("revealed the wrong value");
    const m = await measure(cleanup, server, path, { ...LOAD, method: "POST", headers: { "x-api-key": secret } });
    // every reveal is audited: the measured ones too
    const audit = await expectStatus(`${server.url}/v1/orgs/${orgId}/audit?action=secret.revealed&limit=1`, 200, { headers: { "x-api-key": auditKey } });
    if (audit?.items?.[0]?.target?.id !== secretId) {
      throw new Error(`no secret.revealed event for the reveals: ${JSON.stringify(audit).slice(0, 300)}`);
    }
    await server.stop();
    return { key, label, ...m };
  };

  // a runner's lease of 50 of the small org's secrets (issued per run: a lease lives an hour at most), read whole
  const lease = async (label: string): Promise<Scenario> => {
    const { orgId, key: secret } = orgs.r;
    const server = await startPlinth("plinth-L.log");
    const headers = { "x-api-key": secret };
    const names = Array.from({ length: LEASE_SIZE }, (_, i) => `${PREFIX.r}_${i}`);
    const issued = await expectStatus(`${server.url}/v1/orgs/${orgId}/secret-leases`, 201, json("POST", { names, ttl_seconds: 3600 }, headers));
    const path = `/v1/orgs/${orgId}/secret-leases/${issued.id}/reveal`;
    const body = await expectStatus(server.url + path, 200, { method: "POST", headers });
    if (body?.data?.length !== LEASE_SIZE || !body.data[0].value?.startsWith(`bench value ${PREFIX.r} 0 `)) {
      throw new Error(`the lease answered the wrong values: ${JSON.stringify(body).slice(0, 300)}`);
    }
    const m = await measure(cleanup, server, path, { ...LOAD, connections: LEASE_CONNECTIONS, method: "POST", headers });
    await server.stop();
    return { key: "L", label, ...m };
  };

  // (W) one rotation: every version of the org moves to a new KEK (each round rotates again: the same work)
  const rotation = async (): Promise<Rotation> => {
    const w = orgW as NonNullable<typeof orgW>;
    const server = await startPlinth("plinth-W.log");
    const reader = { "x-api-key": w.key };
    const admin = { "x-api-key": w.adminKey };
    const revealUrl = `${server.url}/v1/orgs/${w.orgId}/secrets/${w.secretId}/reveal`;
    const statusUrl = `${server.url}/v1/orgs/${w.orgId}/vault`;
    if ((await expectStatus(statusUrl, 200, { headers: admin })).pending_versions !== 0) throw new Error("a rotation is still running");
    let until = Date.now() + WARMUP * 1000;
    await readLoops(ROTATE_READERS, revealUrl, reader, () => Date.now() > until);
    until = Date.now() + 5_000;
    const before = await readLoops(ROTATE_READERS, revealUrl, reader, () => Date.now() > until);
    let done = false;
    const during = readLoops(ROTATE_READERS, revealUrl, reader, () => done);
    const t0 = performance.now();
    await expectStatus(`${server.url}/v1/orgs/${w.orgId}/vault/$rotate`, 202, { method: "POST", headers: admin });
    for (;;) {
      const status = await expectStatus(statusUrl, 200, { headers: admin });
      if (status.pending_versions === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const seconds = (performance.now() - t0) / 1000;
    done = true;
    const d = await during;
    await server.stop();
    return {
      versions: ROTATE_VERSIONS,
      seconds: Math.round(seconds * 100) / 100,
      versionsPerSec: Math.round(ROTATE_VERSIONS / seconds),
      before: { n: before.ms.length, p50: pct(before.ms, 0.5), p99: pct(before.ms, 0.99) },
      during: { n: d.ms.length, p50: pct(d.ms, 0.5), p99: pct(d.ms, 0.99), failed: d.failed + before.failed },
    };
  };

  const plan: (PlanStep<Scenario> & { key: Key })[] = [
    { key: "b", label: "bare Fastify + pg: SELECT secret ⋈ version + INSERT audit, 1 tx", run: (label) => bare(label) },
    { key: "r", label: `Plinth reveal, org of ${SMALL} secrets`, run: (label) => plinth("r", label) },
    { key: "R", label: `Plinth reveal, org of ${LARGE.toLocaleString("en-US")} secrets`, run: (label) => plinth("R", label) },
    { key: "L", label: `Plinth lease of ${LEASE_SIZE} secrets, ${LEASE_CONNECTIONS} conn.`, run: (label) => lease(label) },
  ];
  const rounds = await runRounds(plan, ONLY, ROUNDS);
  const rotations: Rotation[] = [];
  if (orgW) {
    for (let i = 0; i < ROUNDS; i++) {
      process.stdout.write(`  [run ${i + 1}/${ROUNDS}] (W) rotation of ${ROTATE_VERSIONS.toLocaleString("en-US")} versions, ${ROTATE_READERS} readers …\n`);
      rotations.push(await rotation());
    }
  }
  const ratios = evaluateRatios(rounds, [
    { name: "r/b", top: "r", bottom: "b", metric: "rps", target: { op: "≥", value: 0.5 }, what: "reveal vs the bare transaction" },
    { name: "r/b CPU", top: "r", bottom: "b", metric: "cpu", format: "times", what: "the same, server CPU per request" },
    { name: "r/b db", top: "r", bottom: "b", metric: "db", format: "times", what: "the same, PostgreSQL's CPU per request" },
    { name: "R/r", top: "R", bottom: "r", metric: "rps", target: { op: "≥", value: 1 / 1.2 }, what: `reveal in ${LARGE} secrets vs in ${SMALL}: req/s` },
    { name: "R/r p50", top: "R", bottom: "r", metric: "p50", format: "times", target: { op: "≤", value: 1.2 }, what: "the same, median latency" },
  ]);

  // an absolute target (issue 10): the median over the rounds of each round's p99
  const leaseP99s = rounds.map((r) => r.find((s) => s.key === "L")?.result.p99Ms).filter((v): v is number => v !== undefined);
  const leaseP99 = leaseP99s.length ? leaseP99s.sort((a, b) => a - b)[Math.floor(leaseP99s.length / 2)] : undefined;
  const leaseLine =
    leaseP99 === undefined
      ? []
      : [
          `lease p99      ${`${leaseP99} ms`.padStart(8)}    ≤ 10 ms  ${leaseP99 <= 10 ? "PASS" : "FAIL"}     (L) reveal of a ${LEASE_SIZE}-secret lease, ${LEASE_CONNECTIONS} connection(s): p99 per round ${leaseP99s.join(", ")} ms`,
        ];
  const mid = <T>(xs: T[], f: (x: T) => number) => xs.map(f).sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const rotationLines = rotations.length
    ? [
        "",
        `(W) rotation of ${ROTATE_VERSIONS.toLocaleString("en-US")} versions with ${ROTATE_READERS} reader loops revealing throughout:`,
        ...rotations.map(
          (r, i) =>
            `  run ${i + 1}: ${r.seconds} s, ${r.versionsPerSec.toLocaleString("en-US")} versions/s; reveals before p50 ${r.before.p50} / p99 ${r.before.p99} ms (${r.before.n}), during p50 ${r.during.p50} / p99 ${r.during.p99} ms (${r.during.n}), not 200: ${r.during.failed}`,
        ),
        `re-wrap        ${`${mid(rotations, (r) => r.versionsPerSec).toLocaleString("en-US")}/s`.padStart(8)}  ≥ 5,000/s  ${mid(rotations, (r) => r.versionsPerSec) >= 5000 ? "PASS" : "FAIL"}     versions re-wrapped per second, median of the runs`,
        `reads during   ${`${mid(rotations, (r) => r.during.p99)} ms`.padStart(8)}  all 200    ${rotations.every((r) => r.during.failed === 0) ? "PASS" : "FAIL"}     p99 of reveals during the rotation (before it: ${mid(rotations, (r) => r.before.p99)} ms, the baseline)`,
      ]
    : [];
  const lines = [
    "",
    `Plinth vault bench: ${rounds.length} run(s), ${CONNECTIONS} connections, ${DURATION} s per scenario after ${WARMUP} s warm-up; autocannon in its own process`,
    `${db.version}; Node ${process.version}; ${machine().cpus} CPU(s) ${machine().cpuModel}; ${CAN_PIN ? "server pinned to CPU 0, autocannon to CPU 1" : "no CPU pinning"}`,
    `Plinth: LOG_LEVEL=warn, DATABASE_POOL_SIZE=${POOL_SIZE}, API key (developer) by X-API-Key; every reveal decrypted and audited`,
    "",
    ...roundsTable(rounds, 52, 6, { db: true }),
    "",
    ...ratioTable(ratios),
    ...leaseLine,
    ...rotationLines,
    ...busyWarning(rounds),
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
  writeResults(
    "vault",
    {
      settings: {
        rounds: rounds.length,
        connections: CONNECTIONS,
        leaseConnections: LEASE_CONNECTIONS,
        durationSec: DURATION,
        warmupSec: WARMUP,
        poolSize: Number(POOL_SIZE),
        large: LARGE,
      },
      leaseP99Ms: leaseP99,
      rotations,
      machine: { ...machine(), postgres: db.version },
      ...roundsReport(rounds, ratios),
    },
    started,
  );
}

await runBench("vault", main);
