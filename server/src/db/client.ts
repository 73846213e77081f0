import { AsyncLocalStorage } from "node:async_hooks";
import { PGlite } from "@electric-sql/pglite";
import { sql, type SQL } from "drizzle-orm";
import { PgDialect } from "drizzle-orm/pg-core";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import { drizzle as drizzlePg } from "drizzle-orm/node-postgres";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import pg from "pg";
import { queueAtCommit, runTenantWork } from "./pg-tx.ts";
import { isBoundStatement, runStatement, type BoundStatement } from "./prepared.ts";
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
   * Runs fn in one transaction with the tenant set (and, on PGlite, the app role) for every statement. Every query
   * inside must use the `tx` handed in: PGlite is one session and a stray query deadlocks. On PostgreSQL BEGIN and
   * the tenant setting travel with the first statement, and statements queued by `atCommit` with the COMMIT
   * (decision 007): a one-statement transaction is two round trips.
   */
  tx<T>(scope: TxScope, fn: (tx: Executor) => Promise<T>): Promise<T>;
  /**
   * Queues a write for the end of the transaction `tx` (a `db.tx` one): it runs after everything fn did, just before
   * COMMIT and in the same round trip; if it fails, the transaction rolls back and `db.tx` rejects. For writes whose
   * result nobody reads and which nothing later in the transaction depends on (an audit event). Elsewhere (an
   * executor of no `db.tx`) the statement runs at once.
   */
  atCommit(tx: Executor, query: SQL | BoundStatement): Promise<void>;
  /**
   * Switches the rest of transaction `tx` to act for another org (row-level security reads it): a registration
   * writing its new personal org, an invitation joining its org. The one way to do it: statements queued by
   * `atCommit` keep the org they were queued under, whatever the transaction switches to later.
   */
  actFor(tx: Executor, orgId: string): Promise<void>;
  /**
   * One read-only statement for a tenant, in its own transaction (rows as the driver parses them, not mapped): the
   * authorization engine's uncached reads. On PostgreSQL the statement is prepared once per connection, so its plan
   * is reused — planning these RLS-filtered statements costs more than running them. Only for a fixed set of
   * statement texts (values as parameters), since each distinct text is prepared on every connection.
   */
  readScoped<T>(scope: TxScope, query: SQL): Promise<T[]>;
  /** Reads of platform tables (no tenant) outside a transaction where the driver allows it. */
  read<T>(fn: (db: Executor) => Promise<T>): Promise<T>;
  /**
   * Tenant reads without a transaction block: each statement carries the tenant setting and runs in its own
   * read-only implicit transaction, one round trip each on PostgreSQL (decision 007). Statements see what was
   * committed when each starts, as they would inside a READ COMMITTED transaction; locking reads (FOR UPDATE) and
   * writes are refused, so whatever must read and write together belongs in `db.tx`.
   */
  read<T>(scope: TxScope, fn: (db: Executor) => Promise<T>): Promise<T>;
  /** The owner's connection, for migrations and operator tasks only. */
  owner: Executor;
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** Orgs a transaction switched to with actFor, by transaction: what its statements queued since then run under. */
const switchedTo = new WeakMap<Executor, string>();
const orgSetting = (orgId: string) => sql`select set_config('app.org_id', ${orgId}, true)`;

/** atCommit and actFor over a backend's own queue (`queue` returns false when tx queues nothing: run it now). */
function deferral(run: (tx: Executor, q: SQL | BoundStatement) => Promise<unknown>, queue: (tx: Executor, q: SQL | BoundStatement) => boolean) {
  const later = async (tx: Executor, q: SQL | BoundStatement) => {
    if (!queue(tx, q)) await run(tx, q);
  };
  return {
    atCommit: async (tx: Executor, query: SQL | BoundStatement) => {
      const org = switchedTo.get(tx);
      // queued behind a switch: the queue runs after the last switch, so say the org this statement belongs to
      if (org !== undefined) await later(tx, orgSetting(org));
      await later(tx, query);
    },
    actFor: async (tx: Executor, orgId: string) => {
      await tx.execute(orgSetting(orgId));
      switchedTo.set(tx, orgId);
    },
  };
}

/** PGlite: the first statement of every transaction switches to the app role and sets the tenant, both local to it. */
async function setScope(tx: Executor, scope: TxScope): Promise<void> {
  await tx.execute(
    sql`select set_config('role', ${APP_ROLE}, true), set_config('app.org_id', ${scope.orgId ?? ""}, true), set_config('app.user_id', ${scope.userId ?? ""}, true)`,
  );
}

/** Embedded PostgreSQL (PGlite) persisted under `dir`, or in memory when dir is undefined (tests). */
export async function openPglite(dir: string | undefined): Promise<Database> {
  const client = dir ? await PGlite.create(dir) : await PGlite.create();
  const orm = drizzlePglite(client, { schema }) as unknown as Executor;
  // PGlite is one session: a transaction opened inside another waits for it forever. Say so instead of hanging.
  const inside = new AsyncLocalStorage<true>();
  /** Statements queued by atCommit, per open transaction. */
  const queued = new WeakMap<Executor, (SQL | BoundStatement)[]>();
  const dialect = new PgDialect();
  const run = (tx: Executor, q: SQL | BoundStatement) => (isBoundStatement(q) ? runStatement(tx, q, dialect) : tx.execute(q));
  const transaction = <T>(scope: TxScope, fn: (tx: Executor) => Promise<T>, readOnly = false): Promise<T> => {
    if (inside.getStore()) throw new Error("db.tx()/db.read() called inside another transaction: on PGlite that deadlocks; use the tx you were given");
    return inside.run(true, () =>
      orm.transaction(
        async (t) => {
          const tx = t as unknown as Executor;
          await setScope(tx, scope);
          if (readOnly) return fn(tx);
          const later: (SQL | BoundStatement)[] = [];
          queued.set(tx, later);
          const result = await fn(tx);
          for (const q of later) await run(tx, q);
          return result;
        },
        readOnly ? { accessMode: "read only" } : undefined,
      ),
    );
  };
  return {
    kind: "pglite",
    owner: orm,
    // PGlite's default user is a superuser that bypasses RLS even when forced, so each transaction switches role.
    tx: transaction,
    ...deferral(run, (tx, q) => {
      const later = queued.get(tx);
      later?.push(q);
      return later !== undefined;
    }),
    readScoped: async <T>(scope: TxScope, query: SQL) => ((await transaction(scope, (tx) => tx.execute(query), true)) as unknown as { rows: T[] }).rows,
    read: <T>(a: TxScope | ((db: Executor) => Promise<T>), b?: (db: Executor) => Promise<T>) =>
      typeof a === "function" ? transaction({}, a) : transaction(a, b!, true),
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
    tx: (scope, fn) => runTenantWork(appPool, dialect, { orgId: scope.orgId ?? "", userId: scope.userId ?? "" }, "tx", fn),
    ...deferral(
      (tx, q) => (isBoundStatement(q) ? runStatement(tx, q, dialect) : tx.execute(q)),
      (tx, q) => queueAtCommit(tx, q, dialect),
    ),
    // tenant reads on the read-only connections: nothing on them can write, whatever a statement tries
    read: <T>(a: TxScope | ((db: Executor) => Promise<T>), b?: (db: Executor) => Promise<T>) =>
      typeof a === "function" ? a(app) : runTenantWork(scopedPool, dialect, { orgId: a.orgId ?? "", userId: a.userId ?? "" }, "read", b!),
    readScoped: async <T>(scope: TxScope, query: SQL) => {
      const q = dialect.sqlToQuery(query);
      const client = await scopedPool.connect();
      try {
        // the tenant is a session setting on these connections, set only when it changes: a read for the org the
        // connection last served is one round trip (the prepared statement, in its own read-only transaction)
        const want = `${scope.orgId ?? ""}\u0000${scope.userId ?? ""}`;
        if (sessionScope.get(client) !== want) {
          sessionScope.delete(client);
          await client.query({
            name: "plinth_session_scope",
            text: "select set_config('app.org_id', $1, false), set_config('app.user_id', $2, false)",
            values: [scope.orgId ?? "", scope.userId ?? ""],
          });
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
