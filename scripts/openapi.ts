/**
 * Writes the OpenAPI document the server generates to openapi.json (`npm run openapi`), or with --check fails when
 * the committed one is stale (run by `npm test`).
 */
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { buildApp } from "../server/src/app.ts";
import { loadConfig } from "../server/src/config.ts";
import { openPglite } from "../server/src/db/client.ts";
import { migrate } from "../server/src/db/migrate.ts";
import { createDeps } from "../server/src/deps.ts";
import { createLogger } from "../server/src/logger.ts";

const file = new URL("../openapi.json", import.meta.url);

export async function generateOpenApi(): Promise<string> {
  const db = await openPglite(undefined);
  await migrate(db);
  const config = loadConfig({ PLINTH_MASTER_KEY: randomBytes(32).toString("base64"), LOG_LEVEL: "silent", PLINTH_DATA_DIR: "/nonexistent" });
  const deps = await createDeps(config, { db, log: createLogger("silent") });
  const app = await buildApp(deps);
  await app.ready();
  const doc = JSON.stringify(app.swagger(), null, 2) + "\n";
  await app.close();
  await deps.close();
  await db.close();
  return doc;
}

if (import.meta.main) {
  const doc = await generateOpenApi();
  if (process.argv.includes("--check")) {
    let committed = "";
    try {
      committed = readFileSync(file, "utf8");
    } catch {
      // missing counts as stale
    }
    if (committed !== doc) {
      process.stderr.write("openapi.json is stale: run `npm run openapi` and commit the result\n");
      process.exit(1);
    }
    process.stdout.write("openapi.json is up to date\n");
  } else {
    writeFileSync(file, doc);
    process.stdout.write(`wrote ${file.pathname}\n`);
  }
}
