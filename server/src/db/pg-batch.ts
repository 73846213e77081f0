/**
 * Several statements to PostgreSQL in one round trip: each one's Parse/Bind/Describe/Execute, then a single Sync.
 * PostgreSQL runs them in order as one implicit transaction (unless a BEGIN among them opens a block, which then
 * lasts past the Sync) and answers once; a statement that fails rolls back that implicit transaction and the server
 * skips the rest up to the Sync. node-postgres sends a Sync after every statement, so this is a custom Submittable
 * on node-postgres' connection: pg encodes and decodes the messages, this file sequences them and reads the rows.
 */
import type { Connection, FieldDef, QueryConfig, QueryResult } from "pg";
import pg from "pg";

/** One statement of a batch, as the batch drives it. */
interface ProtocolQuery {
  prepare(connection: Connection): void;
  handleRowDescription(msg: unknown): void;
  handleDataRow(msg: unknown): void;
  handleCommandComplete(msg: unknown, connection: Connection): void;
  handleError(err: Error, connection: Connection): void;
  handleReadyForQuery(connection: Connection): void;
  name?: string;
}

const NO_VALUES: never[] = [];
const EMPTY_RESULT = { command: "", rowCount: 0, oid: 0, fields: [], rows: [] } as unknown as QueryResult;

interface ConnectionState {
  parsedStatements: Record<string, string>;
  submittedNamedStatements: Record<string, string>;
  stream: { cork?: () => void; uncork?: () => void };
  parse(config: { text: string; name?: string; types: unknown[] }): void;
  bind(config: { statement?: string; values: unknown[]; valueMapper?: (v: unknown) => unknown }): void;
  describe(config: { type: "P"; name: string }): void;
  execute(config: { portal: string }): void;
  sync(): void;
  sendCopyFail(msg: string): void;
}

/** A statement whose rows are read, with its values. */
export interface Statement {
  config: QueryConfig;
  values?: unknown[];
}

/**
 * A statement whose rows nobody reads (BEGIN, the tenant setting, COMMIT): sent without a Describe, its answer
 * dropped unparsed. Its values are text.
 */
export interface QuietStatement {
  quiet: true;
  text: string;
  /** Prepared once per connection under this name. */
  name?: string;
  values?: (string | null)[];
}

class QuietQuery implements ProtocolQuery {
  readonly name: string | undefined;
  private readonly statement: QuietStatement;
  private readonly callback: (err: Error | null, res: QueryResult) => void;

  constructor(statement: QuietStatement, callback: (err: Error | null, res: QueryResult) => void) {
    this.statement = statement;
    this.name = statement.name;
    this.callback = callback;
  }

  prepare(connection: Connection): void {
    const con = connection as unknown as ConnectionState;
    const { text, name, values } = this.statement;
    if (!name || (con.parsedStatements[name] === undefined && con.submittedNamedStatements[name] === undefined)) {
      con.parse({ text, name, types: [] });
      if (name) con.submittedNamedStatements[name] = text;
    }
    con.bind({ statement: name, values: values ?? NO_VALUES });
    con.execute({ portal: "" });
  }

  handleRowDescription(): void {}
  handleDataRow(): void {}
  handleCommandComplete(): void {}
  handleError(err: Error): void {
    this.callback(err, EMPTY_RESULT);
  }
  handleReadyForQuery(): void {
    this.callback(null, EMPTY_RESULT);
  }
}

const prepareValue = (pg as unknown as { utils: { prepareValue(v: unknown): unknown } }).utils.prepareValue;
type TypeParsers = { getTypeParser(oid: number, format: string): (text: string) => unknown };
type RowDescription = { fields: FieldDef[] };
type DataRow = { fields: (string | null)[] };
type CommandComplete = { text: string };

/** Per type-parser set (drizzle gives each prepared query its own), the parsers of the columns it last read. */
const parserCache = new WeakMap<object, { oids: number[]; parsers: ((text: string) => unknown)[] }>();
const DEFAULT_TYPES = {};

function parsersFor(types: TypeParsers | undefined, fields: FieldDef[]): ((text: string) => unknown)[] {
  const key = types ?? DEFAULT_TYPES;
  const hit = parserCache.get(key);
  if (hit && hit.oids.length === fields.length && hit.oids.every((oid, i) => oid === fields[i].dataTypeID)) return hit.parsers;
  const getTypeParser = types ? types.getTypeParser.bind(types) : (pg.types.getTypeParser as TypeParsers["getTypeParser"]);
  const parsers = fields.map((f) => getTypeParser(f.dataTypeID, f.format || "text"));
  parserCache.set(key, { oids: fields.map((f) => f.dataTypeID), parsers });
  return parsers;
}

const COMMAND = /^([A-Za-z]+)(?: (\d+))?(?: (\d+))?/;

/**
 * A statement whose rows are read: what pg's Query does for the extended protocol (Parse once per connection when
 * named, Bind, Describe, Execute), minus its per-call copying of the configuration and of the column parsers.
 */
class RowsQuery implements ProtocolQuery {
  readonly name: string | undefined;
  private readonly config: { text: string; name?: string; rowMode?: string; types?: TypeParsers };
  private readonly values: unknown[] | undefined;
  private readonly callback: (err: Error | null, res: QueryResult) => void;
  private fields: FieldDef[] = [];
  private parsers: ((text: string) => unknown)[] = [];
  private readonly rows: unknown[] = [];
  private command: string | null = null;
  private rowCount: number | null = null;
  private failure: Error | undefined;

  constructor(config: QueryConfig, values: unknown[] | undefined, callback: (err: Error | null, res: QueryResult) => void) {
    this.config = config as RowsQuery["config"];
    this.name = config.name;
    this.values = values ?? config.values;
    this.callback = callback;
  }

  prepare(connection: Connection): void {
    const con = connection as unknown as ConnectionState;
    const { text, name } = this.config;
    if (!name || (con.parsedStatements[name] === undefined && con.submittedNamedStatements[name] === undefined)) {
      con.parse({ text, name, types: [] });
      if (name) con.submittedNamedStatements[name] = text;
    }
    try {
      con.bind({ statement: name, values: this.values ?? [], valueMapper: prepareValue });
    } catch (e) {
      this.callback(e as Error, EMPTY_RESULT); // a value pg cannot encode: nothing of it went out
      return;
    }
    con.describe({ type: "P", name: "" });
    con.execute({ portal: "" });
  }

  handleRowDescription(msg: unknown): void {
    this.fields = (msg as RowDescription).fields;
    this.parsers = parsersFor(this.config.types, this.fields);
  }

  handleDataRow(msg: unknown): void {
    if (this.failure) return;
    const raw = (msg as DataRow).fields;
    try {
      if (this.config.rowMode === "array") {
        const row = new Array(raw.length);
        for (let i = 0; i < raw.length; i++) row[i] = raw[i] === null ? null : this.parsers[i](raw[i]!);
        this.rows.push(row);
      } else {
        const row: Record<string, unknown> = {};
        for (let i = 0; i < raw.length; i++) row[this.fields[i].name] = raw[i] === null ? null : this.parsers[i](raw[i]!);
        this.rows.push(row);
      }
    } catch (e) {
      this.failure = e as Error; // as pg does: the statement fails once its answer is complete
    }
  }

  handleCommandComplete(msg: unknown): void {
    const m = COMMAND.exec((msg as CommandComplete).text);
    if (!m) return;
    this.command = m[1];
    if (m[3]) this.rowCount = Number(m[3]);
    else if (m[2]) this.rowCount = Number(m[2]);
  }

  handleError(err: Error): void {
    this.callback(err, EMPTY_RESULT);
  }

  handleReadyForQuery(): void {
    if (this.failure) return this.callback(this.failure, EMPTY_RESULT);
    this.callback(null, { command: this.command, rowCount: this.rowCount, oid: 0, fields: this.fields, rows: this.rows } as unknown as QueryResult);
  }
}

class Batch {
  /** The last statement's result; rejects with the first error, of whichever statement. */
  readonly result: Promise<QueryResult>;
  private resolve!: (res: QueryResult) => void;
  private reject!: (err: Error) => void;
  private readonly queries: ProtocolQuery[];
  private lastResult: QueryResult = EMPTY_RESULT;
  /** Index of the statement whose answer is being read. */
  private at = 0;
  private failed = false;
  /** Highest index of a named statement parsed in this batch: a failure at or before it leaves its state unknown. */
  private lastNewNamed = -1;
  /** True when the batch failed in a way that leaves the connection's prepared-statement bookkeeping in doubt. */
  private inDoubt = false;
  private over = false;
  private readonly onFinished: ((inDoubt: boolean) => void) | undefined;

  constructor(statements: (Statement | QuietStatement)[], onFinished?: (inDoubt: boolean) => void) {
    this.onFinished = onFinished;
    this.result = new Promise<QueryResult>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    const last = statements.length - 1;
    this.queries = statements.map((config, i) => {
      const callback = (err: Error | null, res: QueryResult) => {
        if (err) this.fail(err);
        else if (i === last) this.lastResult = res;
      };
      return "quiet" in config ? new QuietQuery(config, callback) : new RowsQuery(config.config, config.values, callback);
    });
  }

  /** The first word stands: the batch fails once, with the first error. */
  private fail(err: Error): void {
    if (this.failed) return;
    this.failed = true;
    this.reject(err);
  }

  /** Called by pg once the connection is free: every statement's messages, then one Sync, in one write. */
  submit(connection: Connection): null {
    const con = connection as unknown as ConnectionState;
    con.stream.cork?.();
    try {
      for (let i = 0; i < this.queries.length; i++) {
        const q = this.queries[i];
        if (q.name && con.parsedStatements[q.name] === undefined && con.submittedNamedStatements[q.name] === undefined) this.lastNewNamed = i;
        q.prepare(connection);
        if (this.failed) {
          // its values could not be encoded: send nothing after it, so no later statement (a COMMIT, say) runs
          // without it; the statements before it still run (and, with no block open, commit: they are the caller's
          // to undo, as when a statement fails)
          this.inDoubt ||= i <= this.lastNewNamed;
          break;
        }
      }
      con.sync();
    } finally {
      con.stream.uncork?.();
    }
    return null;
  }

  handleRowDescription(msg: unknown): void {
    this.queries[this.at]?.handleRowDescription(msg);
  }

  handleDataRow(msg: unknown): void {
    this.queries[this.at]?.handleDataRow(msg);
  }

  handleCommandComplete(msg: unknown, connection: Connection): void {
    this.queries[this.at]?.handleCommandComplete(msg, connection);
    this.at++;
  }

  handleEmptyQuery(): void {
    this.at++;
  }

  /**
   * A statement failed (the server skips the rest up to the Sync), or the connection did: the batch fails with that
   * error (with no block open, the statements before it are rolled back with it). The batch is over for its caller
   * now; pg keeps the connection busy until the server's ReadyForQuery.
   */
  handleError(err: Error): void {
    if (this.at <= this.lastNewNamed) this.inDoubt = true;
    this.fail(err);
    this.finishOnce();
  }

  handleReadyForQuery(connection: Connection): void {
    if (!this.failed) {
      // a statement whose rows could not be parsed fails now, its answer complete
      for (const q of this.queries) q.handleReadyForQuery(connection);
      if (!this.failed) this.resolve(this.lastResult);
    }
    this.finishOnce();
  }

  private finishOnce(): void {
    if (this.over) return;
    this.over = true;
    this.onFinished?.(this.inDoubt);
  }

  handlePortalSuspended(): void {}
  handleCopyInResponse(connection: Connection): void {
    (connection as unknown as ConnectionState).sendCopyFail("COPY is not supported in a batch");
  }
  handleCopyData(): void {}
}

/**
 * Sends `statements` (extended protocol, each with its values) as one batch on `client`: resolves with the last
 * statement's result once the server has answered them all, rejects with the first error of any. Statements with a
 * `name` are prepared once per connection, as with pg's own named queries. `onFinished` is called (synchronously,
 * before the result's handlers run) once the batch is over, with true when the connection's prepared-statement
 * state is in doubt (a named statement was parsed in a batch that failed before it ran): such a connection must be
 * closed.
 */
export function sendBatch(client: pg.ClientBase, statements: (Statement | QuietStatement)[], onFinished?: (inDoubt: boolean) => void): Promise<QueryResult> {
  const batch = new Batch(statements, onFinished);
  // pg queues it like any query: it is sent once the connection is idle
  (client as unknown as { query(q: unknown): unknown }).query(batch);
  return batch.result;
}
