import { AsyncLocalStorage } from "node:async_hooks";
import { PGlite } from "@electric-sql/pglite";
import { sql, type SQL } from "drizzle-orm";
import { PgDialect } from "drizzle-orm/pg-core";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import { drizzle as drizzlePg } from "drizzle-orm/node-postgres";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import pg from "pg";
import * as schema from "./schema/index.ts";

export type Schema = typeof schema;
/** A query executor: the database outside a transaction, or a transaction. Repositories take one of these. */
export type Executor = PgDatabase<PgQueryResultHKT, Schema>;

/** Whom a transaction acts for; row-level security reads these. */
export interface TxScope {
  orgId?: string | null;
  userId?: string | null;
}

export const APP_ROLE = "plinth_app";

export interface Database {
  readonly kind: "pglite" | "postgres";
  /**
   * Runs fn in one transaction whose first statement sets the tenant (and, on PGlite, switches to the app role).
   * Every query inside must use the `tx` handed in: PGlite is one session and a stray query deadlocks.
   */
  tx<T>(scope: TxScope, fn: (tx: Executor) => Promise<T>): Promise<T>;
  /**
   * One read-only statement for a tenant, in its own transaction (rows as the driver parses them, not mapped): the
   * authorization engine's uncached reads. On PostgreSQL the statement is prepared once per connection, so its plan
   * is reused — planning these RLS-filtered statements costs more than running them. Only for a fixed set of
   * statement texts (values as parameters), since each distinct text is prepared on every connection.
   */
  readScoped<T>(scope: TxScope, query: SQL): Promise<T[]>;
  /** Reads of platform tables (no tenant) outside a transaction where the driver allows it. */
  read<T>(fn: (db: Executor) => Promise<T>): Promise<T>;
  /** The owner's connection, for migrations and operator tasks only. */
  owner: Executor;
  ping(): Promise<void>;
  close(): Promise<void>;
}

async function setScope(tx: Executor, scope: TxScope, switchRole: boolean): Promise<void> {
  const org = scope.orgId ?? "";
  const user = scope.userId ?? "";
  if (switchRole) {
    await tx.execute(
      sql`select set_config('role', ${APP_ROLE}, true), set_config('app.org_id', ${org}, true), set_config('app.user_id', ${user}, true)`,
    );
  } else {
    await tx.execute(sql`select set_config('app.org_id', ${org}, true), set_config('app.user_id', ${user}, true)`);
  }
}

/** Embedded PostgreSQL (PGlite) persisted under `dir`, or in memory when dir is undefined (tests). */
export async function openPglite(dir: string | undefined): Promise<Database> {
  const client = dir ? await PGlite.create(dir) : await PGlite.create();
  const orm = drizzlePglite(client, { schema }) as unknown as Executor;
  // PGlite is one session: a transaction opened inside another waits for it forever. Say so instead of hanging.
  const inside = new AsyncLocalStorage<true>();
  const transaction = <T>(scope: TxScope, fn: (tx: Executor) => Promise<T>): Promise<T> => {
    if (inside.getStore()) throw new Error("db.tx()/db.read() called inside another transaction: on PGlite that deadlocks; use the tx you were given");
    return inside.run(true, () =>
      orm.transaction(async (tx) => {
        await setScope(tx as unknown as Executor, scope, true);
        return fn(tx as unknown as Executor);
      }),
    );
  };
  return {
    kind: "pglite",
    owner: orm,
    // PGlite's default user is a superuser that bypasses RLS even when forced, so each transaction switches role.
    tx: transaction,
    readScoped: async <T>(scope: TxScope, query: SQL) =>
      ((await transaction(scope, (tx) => tx.execute(query))) as unknown as { rows: T[] }).rows,
    read: (fn) => transaction({}, fn),
    ping: async () => {
      await client.query("select 1");
    },
    close: () => client.close(),
  };
}

export interface PostgresOptions {
  ownerUrl: string;
  appUrl: string;
  poolSize: number;
}

/** Server-side prepared statement names, one per statement text (readScoped serves a fixed set of statements). */
const statementNames = new Map<string, string>();
function statementName(text: string): string {
  let n = statementNames.get(text);
  if (!n) {
    n = `plinth_s${statementNames.size + 1}`;
    statementNames.set(text, n);
  }
  return n;
}

/** PostgreSQL: requests use a pool logged in as plinth_app; the owner's pool is opened lazily and kept small. */
export async function openPostgres(opts: PostgresOptions): Promise<Database> {
  const appPool = new pg.Pool({ connectionString: opts.appUrl, max: opts.poolSize });
  let ownerPool: pg.Pool | undefined;
  appPool.on("error", () => {
    // an idle client died (server restart); the pool replaces it on next use
  });
  const app = drizzlePg(appPool, { schema }) as unknown as Executor;
  // readScoped's own connections: read-only at the session level (nothing else runs on them), with the tenant as a
  // session setting that each read checks and sets before its statement
  const scopedPool = new pg.Pool({ connectionString: opts.appUrl, max: opts.poolSize, options: "-c default_transaction_read_only=on" });
  scopedPool.on("error", () => {});
  const sessionScope = new WeakMap<pg.PoolClient, string>();
  const dialect = new PgDialect();
  const owner = (): Executor => {
    // One connection: the migration advisory lock is session-level, so lock, migrate and unlock must share it.
    ownerPool ??= new pg.Pool({ connectionString: opts.ownerUrl, max: 1 });
    return drizzlePg(ownerPool, { schema }) as unknown as Executor;
  };
  return {
    kind: "postgres",
    get owner() {
      return owner();
    },
    tx: (scope, fn) =>
      app.transaction(async (tx) => {
        await setScope(tx as unknown as Executor, scope, false);
        return fn(tx as unknown as Executor);
      }),
    read: (fn) => fn(app),
    readScoped: async <T>(scope: TxScope, query: SQL) => {
      const q = dialect.sqlToQuery(query);
      const client = await scopedPool.connect();
      try {
        // the tenant is a session setting on these connections, set only when it changes: a read for the org the
        // connection last served is one round trip (the prepared statement, in its own read-only transaction)
        const want = `${scope.orgId ?? ""}\u0000${scope.userId ?? ""}`;
        if (sessionScope.get(client) !== want) {
          sessionScope.delete(client);
          await client.query({ name: "plinth_session_scope", text: "select set_config('app.org_id', $1, false), set_config('app.user_id', $2, false)", values: [scope.orgId ?? "", scope.userId ?? ""] });
          sessionScope.set(client, want);
        }
        const r = await client.query({ name: statementName(q.sql), text: q.sql, values: q.params as unknown[] });
        client.release();
        return r.rows as T[];
      } catch (e) {
        // a connection whose state is in doubt is closed, not reused
        sessionScope.delete(client);
        client.release(e instanceof Error ? e : new Error(String(e)));
        throw e;
      }
    },
    ping: async () => {
      await appPool.query("select 1");
    },
    close: async () => {
      await appPool.end();
      await scopedPool.end();
      await ownerPool?.end();
    },
  };
}
