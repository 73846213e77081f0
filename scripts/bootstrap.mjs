// Runs before `npm start`, `npm test` and `npm run bench`, on whatever Node npm found first (the machine's, on a
// fresh clone). Installs the dependencies when they are missing or older than the lockfile; the lockfile brings the
// `node` package, whose Node 24 then runs Plinth because npm puts node_modules/.bin first on PATH.
import { execSync } from "node:child_process";
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
