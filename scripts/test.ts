/**
 * `npm test`: format and lint (Biome), type-check, check openapi.json, start a real PostgreSQL 15 and Redis on 127.0.0.1, then run every
 * test file (each on PGlite and on PostgreSQL) with node's test runner, files in parallel.
 */
import { spawn, spawnSync } from "node:child_process";
import { availableParallelism } from "node:os";
import { prepareTemplate } from "../server/test/harness.ts";
import { startPostgres, startRedis } from "../server/test/services.ts";

function step(name: string, cmd: string, args: string[]): void {
  const t0 = Date.now();
  const r = spawnSync(cmd, args, { stdio: "inherit" });
  if (r.status !== 0) {
    process.stderr.write(`\n${name} failed\n`);
    process.exit(r.status ?? 1);
  }
  process.stdout.write(`${name}: ok (${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);
}

const args = process.argv.slice(2);
const files = args.filter((a) => !a.startsWith("-"));
const quick = files.length > 0;
if (!quick) {
  step("format and lint (biome ci; fix with npx biome check --write)", "biome", ["ci", "--colors=off"]);
  step("type check", "tsc", ["-p", "."]);
  step("openapi.json", process.execPath, ["scripts/openapi.ts", "--check"]);
}

const [pg, redis] = await Promise.all([startPostgres(), startRedis()]);
process.stdout.write(`services: ${pg.version} on ${pg.port}, Redis on ${redis.port}\n`);
let code = 1;
try {
  await prepareTemplate(pg.url);
  const concurrency = Math.max(2, availableParallelism() + 1);
  const child = spawn(
    process.execPath,
    ["--test", `--test-concurrency=${concurrency}`, "--test-timeout=120000", ...(quick ? files : ["server/**/*.test.ts"])],
    { stdio: "inherit", env: { ...process.env, PLINTH_TEST_PG_URL: pg.url, PLINTH_TEST_REDIS_URL: redis.url } },
  );
  code = await new Promise<number>((resolve) => child.on("exit", (c, s) => resolve(c ?? (s ? 1 : 0))));
} finally {
  await Promise.all([pg.stop(), redis.stop()]);
}
process.exit(code);
