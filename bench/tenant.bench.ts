import { join } from "node:path";
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
  json,
  signUp,
  createOrg,
  createKey,
} from "./lib.ts";

const { load: LOAD, poolSize: POOL_SIZE, only: ONLY } = benchKnobs("p,o,pw,w");
const { connections: CONNECTIONS, durationSec: DURATION, warmupSec: WARMUP } = LOAD;

type Key = "p" | "o" | "pw" | "w" | "p0" | "pw0";

interface Scenario extends Measured {
  key: Key;
  label: string;
}

async function main(cleanup: Cleanup): Promise<void> {
  const started = Date.now();
  const ws = await benchWorkspace(cleanup);
  const { tmp, db: pgService } = ws;
  const { appUrl } = pgService;
  process.stdout.write(`tenant bench: ${pgService.version}, ${CONNECTIONS} connections, ${WARMUP} s warm-up + ${DURATION} s per scenario\n`);

  const startPlinth = async (log: string) => startServer(cleanup, "plinth.ts", await plinthEnv(ws, { poolSize: POOL_SIZE }), { stdoutFile: join(tmp, log) });

  // Setup through Plinth's API, in a process stopped before measuring: a user; an org for Plinth's routes with a
  // viewer key (reads) and an admin key (writes); a second org for the bare app's writes (its audit rows are not
  // chained, so they stay out of Plinth's org).
  let orgId: string;
  let bareOrgId: string;
  let viewerKey: string;
  let adminKey: string;
  {
    const server = await startPlinth("plinth-setup.log");
    const { bearer } = await signUp(server.url);
    orgId = await createOrg(server.url, bearer, "Bench Org");
    bareOrgId = await createOrg(server.url, bearer, "Bare Org");
    viewerKey = await createKey(server.url, bearer, orgId, "bench-viewer", ["viewer"]);
    adminKey = await createKey(server.url, bearer, orgId, "bench-admin", ["admin"]);
    await server.stop();
  }
  const patchBody = JSON.stringify({ display_name: "bench [<id>]" });
  const patch = { method: "PATCH" as const, body: patchBody };

  const bare = async (
    key: Key,
    label: string,
    org: string,
    check: (url: string) => Promise<void>,
    shape: { method?: "PATCH"; body?: string } = {},
  ): Promise<Scenario> => {
    const unnamed = key.endsWith("0") ? "1" : "0";
    const server = await startServer(cleanup, "tenant-bare.ts", {
      BENCH_PG_URL: appUrl,
      BENCH_ORG_ID: org,
      DATABASE_POOL_SIZE: POOL_SIZE,
      BENCH_BARE_UNNAMED: unnamed,
    });
    const path = `/bench/orgs/${org}`;
    await check(server.url + path);
    const m = await measure(cleanup, server, path, { ...LOAD, ...shape, headers: { "content-type": "application/json" } });
    await server.stop();
    return { key, label, ...m };
  };
  const plinth = async (
    key: Key,
    label: string,
    secret: string,
    check: (url: string) => Promise<void>,
    shape: { method?: "PATCH"; body?: string } = {},
  ): Promise<Scenario> => {
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
        bare(
          "pw",
          label,
          bareOrgId,
          async (url) => {
            const org = await expectStatus(url, 200, json("PATCH", { display_name: "check" }));
            if (org?.display_name !== "check") throw new Error(`the bare PATCH did not change the org: ${JSON.stringify(org)}`);
          },
          patch,
        ),
    },
    {
      key: "pw0",
      label: "bare Fastify + pg: the same, unnamed",
      run: (label) =>
        bare(
          "pw0",
          label,
          bareOrgId,
          async (url) => {
            const org = await expectStatus(url, 200, json("PATCH", { display_name: "check" }));
            if (org?.display_name !== "check") throw new Error(`the bare PATCH did not change the org: ${JSON.stringify(org)}`);
          },
          patch,
        ),
    },
    {
      key: "w",
      label: "Plinth PATCH /v1/orgs/{orgId}, API key",
      run: (label) =>
        plinth(
          "w",
          label,
          adminKey,
          async (url) => {
            const org = await expectStatus(url, 200, json("PATCH", { display_name: "check" }, { "x-api-key": adminKey }));
            if (org?.display_name !== "check") throw new Error(`PATCH did not change the org: ${JSON.stringify(org)}`);
            const audit = await expectStatus(`${url}/audit?action=org.updated&limit=1`, 200, { headers: { "x-api-key": adminKey } });
            if (audit?.items?.[0]?.diff?.display_name?.[1] !== "check") throw new Error(`PATCH wrote no audit event: ${JSON.stringify(audit)}`);
          },
          patch,
        ),
    },
  ];
  const rounds = await runRounds(plan, ONLY, ROUNDS);

  const ratios = evaluateRatios(rounds, [
    { name: "o/p", top: "o", bottom: "p", metric: "rps", target: { op: "≥", value: 0.6 }, what: "Plinth's tenant-scoped read vs the bare SELECT" },
    { name: "o/p CPU", top: "o", bottom: "p", metric: "cpu", format: "times", target: { op: "≤", value: 1.5 }, what: "the same, server CPU per request" },
    { name: "o/p db", top: "o", bottom: "p", metric: "db", format: "times", what: "the same, PostgreSQL's CPU per request" },
    { name: "o/p0", top: "o", bottom: "p0", metric: "rps", what: "the read vs the bare SELECT sent unnamed (parsed and planned per call)" },
    {
      name: "w/pw",
      top: "w",
      bottom: "pw",
      metric: "rps",
      target: { op: "≥", value: 0.5 },
      what: "Plinth's tenant-scoped write + chained audit event vs the bare UPDATE + INSERT",
    },
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

  writeResults(
    "tenant",
    {
      settings: { rounds: rounds.length, connections: CONNECTIONS, durationSec: DURATION, warmupSec: WARMUP, poolSize: Number(POOL_SIZE) },
      machine: { ...machine(), postgres: pgService.version },
      ...roundsReport(rounds, ratios),
    },
    started,
  );
}

await runBench("tenant", main);
