/**
 * Hot queries built once. drizzle builds a query's SQL text anew on every call (and, on node-postgres, a fresh
 * query object with its type parsers): for a one-row read by primary key that costs more CPU than sending it and
 * reading the answer. A query defined here is built once per driver, with `sql.placeholder()` where its values go,
 * and each call only fills the values in and runs it on the executor it is given — a `db.tx`, a `db.read` or the
 * pool — so it stays inside the caller's transaction and tenant like any other query. On PostgreSQL it is also a
 * named prepared statement: parsed and planned once per connection.
 */
import { fillPlaceholders, type SQL } from "drizzle-orm";
import type { PgDialect } from "drizzle-orm/pg-core";
import type { Executor } from "./client.ts";

interface Prepared<T> {
  execute(values?: Record<string, unknown>): Promise<T>;
}

type Session = { client: unknown; constructor: object };

const names = new Set<string>();

/**
 * `name` is the statement's name on the server (unique across the code base; checked at definition); `build`
 * writes the query with `sql.placeholder(key)` for each value of `values`.
 */
export function preparedQuery<T, V extends Record<string, unknown>>(name: string, build: (ex: Executor) => { prepare(name: string): Prepared<T> }): (ex: Executor, values: V) => Promise<T> {
  if (names.has(name)) throw new Error(`prepared query "${name}" is defined twice`);
  names.add(name);
  const statementName = `plinth_q_${name}`;
  // one built query per driver (node-postgres, PGlite): its session's client is swapped for the caller's
  const byDriver = new Map<object, new (client: unknown) => Prepared<T>>();
  return (ex, values) => {
    const session = (ex as unknown as { session: Session }).session;
    let Bound = byDriver.get(session.constructor);
    if (!Bound) {
      // an object per call that inherits everything from the built query but the client it talks to
      const built = build(ex).prepare(statementName);
      Bound = function (this: { client: unknown }, client: unknown) {
        this.client = client;
      } as unknown as new (client: unknown) => Prepared<T>;
      Bound.prototype = built;
      byDriver.set(session.constructor, Bound);
    }
    return new Bound(session.client).execute(values);
  };
}

/** A raw statement built once, with its values for one run: what `db.atCommit` takes besides plain SQL. */
export interface BoundStatement {
  readonly statement: PreparedStatement;
  readonly values: Record<string, unknown>;
}

export interface PreparedStatement {
  /** The statement's name on the server. */
  readonly name: string;
  /** The SQL, `sql.placeholder(key)` where its values go. */
  readonly query: SQL;
  /** Its text and parameters, built on first use. */
  compiled?: { sql: string; params: unknown[] };
}

/**
 * A raw `sql` statement with `sql.placeholder(key)` for its values, built once: each call binds values to it. For
 * hot statements that drizzle's builders cannot write (the audit chain's append). Values go to the driver as
 * they are (text, numbers, null; JSON as text).
 */
export function preparedStatement<V extends Record<string, unknown>>(name: string, query: SQL): (values: V) => BoundStatement {
  if (names.has(name)) throw new Error(`prepared statement "${name}" is defined twice`);
  names.add(name);
  const statement: PreparedStatement = { name: `plinth_q_${name}`, query };
  return (values) => ({ statement, values });
}

export function isBoundStatement(q: unknown): q is BoundStatement {
  return typeof q === "object" && q !== null && "statement" in q && "values" in q;
}

/** The text and the parameters of a bound statement, its text built once. */
export function bindStatement(b: BoundStatement, dialect: PgDialect): { name: string; text: string; values: unknown[] } {
  const compiled = (b.statement.compiled ??= dialect.sqlToQuery(b.statement.query));
  return { name: b.statement.name, text: compiled.sql, values: fillPlaceholders(compiled.params, b.values) };
}

/** Runs a bound statement now on `ex` (rows as the driver gives them), through its session like `ex.execute`. */
export function runStatement(ex: Executor, b: BoundStatement, dialect: PgDialect): Promise<unknown> {
  const compiled = (b.statement.compiled ??= dialect.sqlToQuery(b.statement.query));
  const session = (ex as unknown as { session: { prepareQuery(q: unknown, fields: undefined, name: string, arrayMode: false): Prepared<unknown> } }).session;
  return session.prepareQuery(compiled, undefined, b.statement.name, false).execute(b.values);
}
