import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { sql } from "drizzle-orm";
import { migrate as migratePglite } from "drizzle-orm/pglite/migrator";
import { migrate as migratePg } from "drizzle-orm/node-postgres/migrator";
import type { PgliteDatabase } from "drizzle-orm/pglite";
import type { NodePgDatabase } from "drizzle-orm/node-postgres";
import pg from "pg";
import { APP_ROLE, type Database } from "./client.ts";

/** Tables the app role may only insert into and read: history is never rewritten by a request. */
const APPEND_ONLY_TABLES = ["audit_events"];

export const MIGRATIONS_FOLDER = fileURLToPath(new URL("./migrations", import.meta.url));

interface Journal {
  entries: { idx: number; when: number; tag: string }[];
}

function journal(): Journal {
  return JSON.parse(readFileSync(`${MIGRATIONS_FOLDER}/meta/_journal.json`, "utf8")) as Journal;
}

/** Applies pending migrations, then grants the app role its rights on every table (so new tables are covered). */
export async function migrate(db: Database, appPassword?: string): Promise<{ applied: number }> {
  const before = await appliedCount(db);
  if (db.kind === "pglite") {
    await migratePglite(db.owner as unknown as PgliteDatabase, { migrationsFolder: MIGRATIONS_FOLDER });
  } else {
    // One instance migrates at a time; the others wait on the lock and then find nothing to do.
    await db.owner.execute(sql`select pg_advisory_lock(7262836)`);
    try {
      await migratePg(db.owner as unknown as NodePgDatabase, { migrationsFolder: MIGRATIONS_FOLDER });
    } finally {
      await db.owner.execute(sql`select pg_advisory_unlock(7262836)`);
    }
  }
  await db.owner.execute(sql.raw(`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${APP_ROLE}`));
  for (const table of APPEND_ONLY_TABLES) {
    await db.owner.execute(sql.raw(`REVOKE UPDATE, DELETE, TRUNCATE ON ${table} FROM ${APP_ROLE}`));
  }
  await db.owner.execute(sql.raw(`GRANT USAGE ON SCHEMA drizzle TO ${APP_ROLE}`));
  await db.owner.execute(sql.raw(`GRANT SELECT ON drizzle.__drizzle_migrations TO ${APP_ROLE}`));
  if (appPassword !== undefined) {
    await db.owner.execute(sql.raw(`ALTER ROLE ${APP_ROLE} LOGIN PASSWORD ${pg.escapeLiteral(appPassword)}`));
  }
  return { applied: (await appliedCount(db)) - before };
}

async function appliedCount(db: Database, useOwner = true): Promise<number> {
  try {
    const exec = (q: ReturnType<typeof sql>) => (useOwner ? db.owner.execute(q) : db.read((r) => r.execute(q)));
    const res = await exec(sql`select count(*)::int as n from drizzle.__drizzle_migrations`);
    return Number((res as unknown as { rows: { n: number }[] }).rows[0].n);
  } catch {
    return 0;
  }
}

/** Migration status for /readyz and `plinth doctor`: how many the code has and how many the database applied. */
export async function migrationStatus(db: Database): Promise<{ expected: number; applied: number }> {
  return { expected: journal().entries.length, applied: await appliedCount(db, false) };
}
