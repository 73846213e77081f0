/**
 * Tenant-scoped work on PostgreSQL in as few round trips as the work allows (decision 007).
 *
 * - A transaction (`db.tx`) sends nothing until its first statement, and then sends BEGIN, the tenant setting and
 *   that statement together: one round trip. Each later statement is one more, and the COMMIT one more, with the
 *   statements queued by `atCommit` (an audit event) travelling in it. A one-statement transaction costs two round
 *   trips (was four); PATCH /v1/orgs/{orgId} (locked read, update, audit event) three (was nine).
 * - A tenant read (`db.read(scope, …)`) opens no transaction block: each statement goes with the tenant setting in
 *   one batch, which PostgreSQL runs as one implicit transaction: one round trip per statement.
 *
 * The tenant setting is always transaction-local (`set_config(…, true)`): it ends with the transaction, implicit or
 * not, so a connection never carries one tenant's setting into the next piece of work, whoever it is for.
 */
import type { SQL } from "drizzle-orm";
import { NodePgDatabase, NodePgSession } from "drizzle-orm/node-postgres";
import type { PgDialect } from "drizzle-orm/pg-core";
import type pg from "pg";
import type { QueryConfig, QueryResult } from "pg";
import { NoopCache } from "drizzle-orm/cache/core";
import { NoopLogger } from "drizzle-orm/logger";
import { sendBatch, type QuietStatement, type Statement } from "./pg-batch.ts";
import { bindStatement, isBoundStatement, type BoundStatement } from "./prepared.ts";

/** The Executor type of client.ts, restated here so this file does not import it (client.ts imports this one). */
type Executor = import("./client.ts").Executor;

/** Prepared once per connection: the tenant for the current transaction only. */
const TENANT_SQL = "select set_config('app.org_id', $1, true), set_config('app.user_id', $2, true)";
const BEGIN: QuietStatement = { quiet: true, text: "begin" };
const COMMIT: QuietStatement = { quiet: true, text: "commit" };
const ROLLBACK: QuietStatement = { quiet: true, text: "rollback" };
const SESSION_OPTIONS = { logger: new NoopLogger(), cache: new NoopCache() };

export type PgWorkMode = "tx" | "read";

/**
 * What drizzle's session talks to inside one piece of tenant work: one pooled connection, and the protocol above.
 * Its `query` has the signature of pg's, which is all drizzle calls.
 */
class TenantConnection {
  /** Whether BEGIN has been sent: from then on statements go one by one, the block ends with COMMIT or ROLLBACK. */
  private open = false;
  private over = false;
  /** Batches sent whose answer is not complete yet. */
  private inFlight = 0;
  /** Called once inFlight is back to 0, when end() waits for it. */
  private drained: (() => void) | undefined;
  /** Set when a failed batch leaves the connection's prepared statements in doubt: it is then closed, not reused. */
  private inDoubt = false;
  readonly queued: Statement[] = [];
  private readonly tenant: QuietStatement;
  private readonly client: pg.PoolClient;
  readonly mode: PgWorkMode;
  private readonly finished = (inDoubt: boolean) => {
    this.inDoubt ||= inDoubt;
    if (--this.inFlight === 0) this.drained?.();
  };

  constructor(client: pg.PoolClient, orgId: string, userId: string, mode: PgWorkMode) {
    this.client = client;
    this.mode = mode;
    this.tenant = { quiet: true, name: "plinth_tenant", text: TENANT_SQL, values: [orgId, userId] };
  }

  query(config: QueryConfig, values?: unknown[]): Promise<QueryResult> {
    if (this.over) return Promise.reject(new Error("this transaction is over: a statement was sent after db.tx()/db.read() returned"));
    const statement: Statement = { config, values };
    if (this.mode === "read") return this.batch([this.tenant, statement]);
    if (!this.open) {
      this.open = true;
      return this.batch([BEGIN, this.tenant, statement]);
    }
    return this.batch([statement]);
  }

  /** Statements' final word: the last one's result (a failure fails them all). */
  private batch(statements: (Statement | QuietStatement)[]): Promise<QueryResult> {
    this.inFlight++;
    return sendBatch(this.client, statements, this.finished);
  }

  /**
   * Ends the work after fn succeeded: the queued statements, then COMMIT, in one round trip. Nothing to send (a
   * read, say) gives the connection back at once, with no promise to wait for.
   */
  commit(): Promise<void> | undefined {
    if (this.over) return undefined;
    if (!this.queued.length && !this.open) return this.end();
    // with no block open, the queued statements run as one implicit transaction, the tenant set first
    return this.batch(this.open ? [...this.queued, COMMIT] : [this.tenant, ...this.queued]).then(
      () => {
        this.open = false;
        return this.end();
      },
      async (e: unknown) => {
        await this.end();
        throw e;
      },
    );
  }

  /**
   * Gives the connection back: after ROLLBACK when a block is still open (fn or the commit failed), once every batch
   * sent has been answered. Synchronous (undefined) when there is nothing to wait for.
   */
  end(): Promise<void> | undefined {
    if (this.over) return undefined;
    this.over = true;
    if (!this.open && !this.inFlight) {
      this.client.release(this.inDoubt ? new Error("a batch failed before its named statements were known to be prepared") : undefined);
      return undefined;
    }
    return this.endAfterAnswers();
  }

  private async endAfterAnswers(): Promise<void> {
    let destroy: Error | undefined;
    if (this.open) {
      this.open = false;
      try {
        await this.batch([ROLLBACK]);
      } catch (e) {
        destroy = e as Error; // a connection that cannot roll back is not reused
      }
    }
    if (this.inFlight) await new Promise<void>((resolve) => (this.drained = resolve));
    if (!destroy && this.inDoubt) destroy = new Error("a batch failed before its named statements were known to be prepared");
    this.client.release(destroy);
  }
}

const connections = new WeakMap<Executor, TenantConnection>();

/** Runs fn on a connection of `pool` with the tenant (org, user) set for every statement it sends. */
export async function runTenantWork<T>(
  pool: pg.Pool,
  dialect: PgDialect,
  scope: { orgId: string; userId: string },
  mode: PgWorkMode,
  fn: (tx: Executor) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  const conn = new TenantConnection(client, scope.orgId, scope.userId, mode);
  const session = new NodePgSession(conn as unknown as pg.PoolClient, dialect, undefined, SESSION_OPTIONS);
  const tx = new NodePgDatabase(dialect, session, undefined) as unknown as Executor;
  // a nested transaction would send its BEGIN through this connection: not supported (nothing needs it)
  (tx as unknown as { transaction: unknown }).transaction = refuseNested;
  connections.set(tx, conn);
  let result: T;
  try {
    result = await fn(tx);
  } catch (e) {
    await conn.end();
    throw e;
  }
  const committing = conn.commit();
  if (committing) await committing;
  return result;
}

const refuseNested = () => Promise.reject(new Error("nested transactions are not supported"));

/**
 * Queues a write to run at the end of `tx`, just before COMMIT and in the same round trip. For statements whose
 * result nobody needs and whose failure fails the whole transaction (an audit event). Returns false when `tx` is
 * not a PostgreSQL transaction of this file (the caller then runs the statement itself).
 */
export function queueAtCommit(tx: Executor, query: SQL | BoundStatement, dialect: PgDialect): boolean {
  const conn = connections.get(tx);
  if (!conn) return false;
  if (conn.mode === "read") throw new Error("atCommit() inside db.read(): reads write nothing; use db.tx()");
  if (isBoundStatement(query)) {
    const { name, text, values } = bindStatement(query, dialect);
    conn.queued.push({ config: { name, text }, values });
  } else {
    const q = dialect.sqlToQuery(query);
    conn.queued.push({ config: { text: q.sql }, values: q.params as unknown[] });
  }
  return true;
}
