import pino, { type Bindings, type ChildLoggerOptions, type DestinationStream, type Logger } from "pino";
import { isColorSupported, prettyFactory } from "pino-pretty";

/** Paths never written to logs: credentials in headers and bodies, tokens anywhere. */
export const REDACT_PATHS = [
  "req.headers.authorization",
  "req.headers.cookie",
  'req.headers["x-api-key"]',
  'res.headers["set-cookie"]',
  "*.password",
  "*.new_password",
  "*.current_password",
  "*.refresh_token",
  "*.access_token",
  "*.token",
  "*.secret",
  "*.client_secret",
  "*.subject_token",
  "*.actor_token",
];

export type LogFormat = "json" | "pretty";

const URL_SECRETS = /([?&](?:token|code|state|key)=)[^&]*/gi;

/**
 * What a log line says of a request (the `req` serializer, and the access line's `req`): method, URL, host and
 * client IP, no header. Query strings can carry emailed tokens (?token=…): the parameter names stay, their values go.
 */
export function requestFields(req: { method: string; url: string; hostname?: string; ip?: string }): {
  method: string;
  url: string;
  host?: string;
  ip?: string;
} {
  return {
    method: req.method,
    url: req.url.includes("=") ? req.url.replace(URL_SECRETS, "$1[REDACTED]") : req.url,
    host: req.hostname,
    ip: req.ip,
  };
}

/** The messages of the one line each request writes when its response has been sent (http/access-log.ts). */
export const ACCESS_LINE = "request completed";
export const ACCESS_LINE_ERRORED = "request errored";

/**
 * A logger at `level` writing to `destination` (stdout, synchronously, by default): JSON lines, or with `pretty`
 * readable ones. Redaction runs before the line is formatted, so it holds for both.
 */
export function createLogger(level: string, destination?: DestinationStream, format: LogFormat = "json", colors = false): Logger {
  return pino(
    {
      level,
      redact: { paths: REDACT_PATHS, censor: "[REDACTED]" },
      serializers: { req: requestFields },
    },
    format === "pretty" ? prettyLines(destination ?? pino.destination({ dest: 1, sync: true }), colors) : destination,
  );
}

/**
 * JSON lines wait in memory until this many bytes are buffered (a couple of hundred access lines), or FLUSH_MS have
 * passed: each write is handed to libuv's thread pool, which costs far more than a line, so the fewer the better
 * (≈ 2.5 µs a line at 4 KiB, 0.8 µs at 64 KiB, on the bench machine). What a crash can lose is bounded by FLUSH_MS.
 */
const BATCH_BYTES = 64 * 1024;
const FLUSH_MS = 250;

/**
 * The server's logger (`plinth serve`), from LOG_LEVEL and LOG_FORMAT, on file descriptor `fd` (stdout). JSON lines are
 * batched (64 KiB, or a quarter second at most) and written asynchronously: a request never waits on a syscall for its
 * line, and one write carries many lines (a write per line, handed to libuv's thread pool, costs more than a
 * synchronous one). The batch is written out synchronously when the process exits; `flushLogs` before that, at
 * shutdown, `flushLogsSync` after a fatal error. Readable lines are for a person at a terminal: written as they come.
 */
export function createServerLogger(config: { logLevel: string; logFormat: LogFormat }, fd = 1): Logger {
  if (config.logFormat === "pretty") return createLogger(config.logLevel, pino.destination({ dest: fd, sync: true }), "pretty", fd === 1 && isColorSupported);
  return createLogger(config.logLevel, new BatchedLines(fd));
}

/** Every BatchedLines not ended: what is still in memory when the process exits is written out first. */
const unwritten = new Set<BatchedLines>();
let exitHook = false;

/**
 * JSON lines kept in memory and handed to pino's asynchronous file destination (sonic-boom) joined, a batch at a
 * time: sonic-boom appends each write to one growing string and measures that string's UTF-8 length again on every
 * write, which for a 4 KiB batch of access lines costs ~5 µs a line, five times the rest of its work (bench/auth's
 * (b+log)), and more the bigger the batch; a joined batch it measures once.
 */
class BatchedLines implements DestinationStream {
  readonly #out: ReturnType<typeof pino.destination>;
  #lines: string[] = [];
  #bytes = 0;
  readonly #timer: NodeJS.Timeout;

  constructor(fd: number) {
    // before pino.destination: exit hooks run in order, and pino's ends the destination at exit
    if (!exitHook) {
      exitHook = true;
      process.on("exit", () => {
        for (const b of unwritten) {
          try {
            b.flushSync();
          } catch {
            // a closed or broken stdout: nothing more can be written
          }
        }
      });
    }
    // minLength 1: each batch goes out as soon as the write before it is done, and flush() waits for a write on its
    // way (with 0 it would return at once, and a flushSync after it could overtake that write)
    this.#out = pino.destination({ dest: fd, sync: false, minLength: 1 });
    this.#timer = setInterval(() => this.#handOver(), FLUSH_MS);
    this.#timer.unref();
    unwritten.add(this);
  }

  write(line: string): void {
    this.#lines.push(line);
    this.#bytes += line.length;
    if (this.#bytes >= BATCH_BYTES) this.#handOver();
  }

  #handOver(): void {
    if (!this.#lines.length) return;
    const batch = this.#lines.length === 1 ? this.#lines[0] : this.#lines.join("");
    this.#lines = [];
    this.#bytes = 0;
    this.#out.write(batch);
  }

  flush(cb: (err?: Error) => void): void {
    this.#handOver();
    this.#out.flush(cb);
  }

  flushSync(): void {
    this.#handOver();
    this.#out.flushSync();
  }

  end(): void {
    this.#handOver();
    clearInterval(this.#timer);
    unwritten.delete(this);
    this.#out.end();
  }
}

type Flushable = { flush?: (cb: (err?: Error) => void) => void; flushSync?: () => void };
const streamOf = (log: Logger) => (log as unknown as Record<symbol, unknown>)[pino.symbols.streamSym] as Flushable | undefined;

/** Writes out what the logger has batched, synchronously: after a fatal error, when the process cannot wait. */
export function flushLogsSync(log: Logger): void {
  try {
    streamOf(log)?.flushSync?.();
  } catch {
    // a closed or broken stdout: nothing more can be written
  }
}

/**
 * Writes out what the logger has batched and waits for the write (at most a second) before the process exits: a
 * write already on its way finishes first, so no line is cut or reordered.
 */
export async function flushLogs(log: Logger): Promise<void> {
  const stream = streamOf(log);
  if (stream?.flush) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 1000);
      stream.flush!(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
  flushLogsSync(log);
}

/**
 * Readable lines (pino-pretty) from pino's JSON lines: `HH:MM:ss.l LEVEL: message {fields}` on one line, an error's
 * stack below it; an access line reads `GET /v1/me 200 1.3 ms {"reqId":…}`.
 */
function prettyLines(out: DestinationStream, colorize: boolean): DestinationStream {
  const prettify = prettyFactory({ colorize, singleLine: true, translateTime: "SYS:HH:MM:ss.l", ignore: "pid,hostname" });
  return {
    write(line: string) {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line);
      } catch {
        out.write(line);
        return;
      }
      const req = entry.req as { method?: string; url?: string } | undefined;
      const res = entry.res as { statusCode?: number } | undefined;
      if ((entry.msg === ACCESS_LINE || entry.msg === ACCESS_LINE_ERRORED) && req && res && typeof entry.responseTime === "number") {
        entry.msg = `${req.method} ${req.url} ${res.statusCode} ${entry.responseTime.toFixed(1)} ms${entry.msg === ACCESS_LINE ? "" : " (errored)"}`;
        delete entry.req;
        delete entry.res;
        delete entry.responseTime;
      }
      out.write(prettify(entry));
    },
  };
}

type Level = "fatal" | "error" | "warn" | "info" | "debug" | "trace";

/**
 * Fastify binds a child logger to every request (its id). A pino child costs ~1.5 µs (redaction runs over its
 * bindings), and below LOG_LEVEL=info most requests never write a line: this stand-in makes the real child only when
 * a line at an enabled level is written, so the output is the same.
 */
class LazyRequestLogger {
  #parent: Logger;
  #bindings: Bindings;
  #child: Logger | undefined;

  constructor(parent: Logger, bindings: Bindings) {
    this.#parent = parent;
    this.#bindings = bindings;
  }

  #real(): Logger {
    return (this.#child ??= this.#parent.child(this.#bindings));
  }

  #write(level: Level, args: unknown[]): void {
    if (!(this.#child ?? this.#parent).isLevelEnabled(level)) return;
    const real = this.#real();
    const write: (...a: unknown[]) => void = real[level];
    write.apply(real, args);
  }

  get level(): string {
    return (this.#child ?? this.#parent).level;
  }
  set level(level: string) {
    this.#real().level = level;
  }
  isLevelEnabled(level: string): boolean {
    return (this.#child ?? this.#parent).isLevelEnabled(level);
  }
  child(bindings: Bindings, options?: ChildLoggerOptions): Logger {
    return this.#real().child(bindings, options);
  }
  fatal(...args: unknown[]): void {
    this.#write("fatal", args);
  }
  error(...args: unknown[]): void {
    this.#write("error", args);
  }
  warn(...args: unknown[]): void {
    this.#write("warn", args);
  }
  info(...args: unknown[]): void {
    this.#write("info", args);
  }
  debug(...args: unknown[]): void {
    this.#write("debug", args);
  }
  trace(...args: unknown[]): void {
    this.#write("trace", args);
  }
  silent(): void {}
}

/** A request's logger that becomes a real pino child of `parent` only when a line is written (Fastify's childLoggerFactory). */
export function lazyRequestLogger(parent: Logger, bindings: Bindings): Logger {
  return new LazyRequestLogger(parent, bindings) as unknown as Logger;
}

/**
 * The logger to hand Fastify as its `loggerInstance`: `log` itself (a pino logger made with Object.create, as pino makes
 * its children), except that the child it makes for each request is lazy unless the route sets its own level or
 * serializers. Overriding `child` rather than passing a `childLoggerFactory` keeps Fastify on its default factory, which
 * it does not re-validate on every request.
 */
export function withLazyRequestLoggers(log: Logger): Logger {
  const root = Object.create(log) as Logger;
  root.child = function child<L extends string = never>(bindings: Bindings, options?: ChildLoggerOptions<L>): Logger<L> {
    // Fastify makes its instance logger once, at start-up, as child({}, { serializers }): that child must make lazy
    // request children too, or every request gets a real pino child after all
    if (options?.level !== undefined || options?.serializers !== undefined)
      return withLazyRequestLoggers(log.child(bindings, options) as unknown as Logger) as unknown as Logger<L>;
    return new LazyRequestLogger(log, bindings) as unknown as Logger<L>;
  };
  return root;
}

/**
 * A process's last word (plinth serve and plinth worker alike): an uncaught exception or unhandled rejection is logged
 * as fatal with what was still buffered, then the process exits 1.
 */
export function exitOnCrash(log: Logger): void {
  const crash = (kind: string) => (err: unknown) => {
    log.fatal({ err }, kind);
    flushLogsSync(log);
    process.exit(1);
  };
  process.once("uncaughtException", crash("uncaught exception"));
  process.once("unhandledRejection", crash("unhandled promise rejection"));
}
