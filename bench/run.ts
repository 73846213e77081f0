/**
 * `npm run bench [name…]`: runs every bench/*.bench.ts (or those whose name is given, e.g. `npm run bench auth`)
 * one after the other, each in its own process so one cannot disturb the next. Exits non-zero if any bench failed
 * to run; a missed performance target is reported by the bench itself, not treated as a failure.
 */
import { spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { BENCH_DIR } from "./lib.ts";

const wanted = process.argv.slice(2);
const benches = readdirSync(BENCH_DIR)
  .filter((f) => f.endsWith(".bench.ts"))
  .sort()
  .filter((f) => !wanted.length || wanted.includes(f.replace(/\.bench\.ts$/, "")));
if (!benches.length) {
  process.stderr.write(`no bench matches ${wanted.join(", ")}\n`);
  process.exit(1);
}

const failed: string[] = [];
for (const file of benches) {
  process.stdout.write(`\n=== ${file} ===\n`);
  const child = spawn(process.execPath, [join(BENCH_DIR, file)], { stdio: "inherit" });
  // Pass a signal on and wait for the bench to stop what it started rather than dying first.
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  process.on("SIGINT", forward);
  process.on("SIGTERM", forward);
  const code = await new Promise<number>((resolve) => child.once("exit", (c, s) => resolve(c ?? (s ? 1 : 0))));
  process.off("SIGINT", forward);
  process.off("SIGTERM", forward);
  if (code !== 0) failed.push(file);
}
if (failed.length) process.stderr.write(`\nfailed: ${failed.join(", ")}\n`);
process.exit(failed.length ? 1 : 0);
