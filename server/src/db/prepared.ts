/**
 * Hot queries built once. drizzle builds a query's SQL text anew on every call (and, on node-postgres, a fresh
 * query object with its type parsers): for a one-row read by primary key that costs more CPU than sending it and
 * reading the answer. A query defined here is built once per driver, with `sql.placeholder()` where its values go,
 * and each call only fills the values in and runs it on the executor it is given — a `db.tx`, a `db.read` or the
 * pool — so it stays inside the caller's transaction and tenant like any other query. On PostgreSQL it is also a
 * named prepared statement, parsed and planned once per connection, and runs without drizzle's per-call layers
 * (runnerOf).
 */
import { Column, DrizzleQueryError, fillPlaceholders, is, type SQL } from "drizzle-orm";
import { NoopCache } from "drizzle-orm/cache/core";
import { NoopLogger } from "drizzle-orm/logger";
import { NodePgPreparedQuery } from "drizzle-orm/node-postgres";
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
export function preparedQuery<T, V extends Record<string, unknown>>(
  name: string,
  build: (ex: Executor) => { prepare(name: string): Prepared<T> },
): (ex: Executor, values: V) => Promise<T> {
  if (names.has(name)) throw new Error(`prepared query "${name}" is defined twice`);
  names.add(name);
  const statementName = `plinth_q_${name}`;
  // one built query per driver (node-postgres, PGlite), run on the caller's client
  const byDriver = new Map<object, (client: unknown, values: V) => Promise<T>>();
  return (ex, values) => {
    const session = (ex as unknown as { session: Session }).session;
    let run = byDriver.get(session.constructor);
    if (!run) {
      run = runnerOf<T, V>(build(ex).prepare(statementName));
      byDriver.set(session.constructor, run);
    }
    return run(session.client, values);
  };
}

/** What a node-postgres prepared query holds once built (drizzle-orm/node-postgres/session.js). */
interface NodePgBuilt {
  queryString: string;
  params: unknown[];
  queryConfig: { name?: string; text: string; rowMode: "array"; types: unknown };
  fields?: { path: string[]; field: unknown }[];
  customResultMapper?: unknown;
  logger: unknown;
  cache?: unknown;
}

/**
 * How a built query runs on a client. On node-postgres, a select or `returning` of plain columns (every prepared
 * query of ours) runs here: the values filled in, the driver called with the built configuration, each row mapped
 * by a mapper made once from its columns; what drizzle's execute does for it, minus its layers of async wrappers
 * (tracing spans, the result cache, the query logger: all off) and the per-row search for each column's decoder.
 * Anything else (PGlite, joins, computed fields, a logger) goes through drizzle's execute on a copy of the built
 * query that talks to the caller's client.
 */
function runnerOf<T, V extends Record<string, unknown>>(built: Prepared<T>): (client: unknown, values: V) => Promise<T> {
  const b = built as unknown as NodePgBuilt;
  // (drizzle's join bookkeeping, joinsNotNullableMap, only touches nested fields, which rowMapper declines)
  const mapRow =
    is(built, NodePgPreparedQuery) && !b.customResultMapper && is(b.logger, NoopLogger) && (b.cache === undefined || is(b.cache, NoopCache))
      ? rowMapper(b.fields)
      : undefined;
  if (mapRow) {
    return async (client, values) => {
      const params = fillPlaceholders(b.params, values);
      let rows: unknown[][];
      try {
        rows = (await (client as { query(c: unknown, v: unknown[]): Promise<{ rows: unknown[][] }> }).query(b.queryConfig, params)).rows;
      } catch (e) {
        throw new DrizzleQueryError(b.queryString, params, e as Error); // as drizzle reports a failed query
      }
      return rows.map(mapRow) as T;
    };
  }
  // an object per call that inherits everything from the built query but the client it talks to
  const Bound = function (this: { client: unknown }, client: unknown) {
    this.client = client;
  } as unknown as new (
    client: unknown,
  ) => Prepared<T>;
  Bound.prototype = built;
  return (client, values) => new Bound(client).execute(values);
}

/** A row mapper for fields that are all plain columns at the top level (drizzle's mapResultRow, made once); else undefined. */
function rowMapper(fields: NodePgBuilt["fields"]): ((row: unknown[]) => Record<string, unknown>) | undefined {
  if (!fields?.length || !fields.every((f) => f.path.length === 1 && is(f.field, Column))) return undefined;
  const keys = fields.map((f) => f.path[0]);
  const decoders = fields.map((f) => f.field as Column);
  return (row) => {
    const out: Record<string, unknown> = {};
    for (let i = 0; i < keys.length; i++) {
      const raw = row[i];
      out[keys[i]] = raw === null ? null : decoders[i].mapFromDriverValue(raw);
    }
    return out;
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
