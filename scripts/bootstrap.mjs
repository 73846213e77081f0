// `npm start`, `npm test` and `npm run bench` go through here, on whatever Node npm found first (the machine's, on a
// fresh clone): install the dependencies when they are missing or older than the lockfile, then run the given
// script on the Node 24 LTS that the lockfile brings (the `node` package in node_modules/.bin).
// Usage: node scripts/bootstrap.mjs <script.ts> [args…]
import { execSync, spawn } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const marker = join(root, "node_modules", ".package-lock.json");
const lock = join(root, "package-lock.json");
const nodeBin = join(root, "node_modules", ".bin", "node");
const stale = !existsSync(marker) || !existsSync(nodeBin) || (existsSync(lock) && statSync(lock).mtimeMs > statSync(marker).mtimeMs);
if (stale) {
  process.stdout.write("plinth: installing dependencies (npm ci)…\n");
  execSync(existsSync(lock) ? "npm ci --no-audit --no-fund" : "npm install --no-audit --no-fund", { cwd: root, stdio: "inherit" });
}

const [script, ...args] = process.argv.slice(2);
if (script) {
  const child = spawn(nodeBin, [script, ...args], { cwd: root, stdio: "inherit" });
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, () => child.kill(signal));
  child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}
