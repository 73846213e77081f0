import pino, { type Bindings, type ChildLoggerOptions, type Logger } from "pino";

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

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      redact: { paths: REDACT_PATHS, censor: "[REDACTED]" },
      serializers: {
        // query strings can carry emailed tokens (?token=…): keep the parameter names, drop their values
        req: (req: { method: string; url: string; hostname?: string; ip?: string; id?: string }) => ({
          method: req.method,
          url: req.url.replace(/([?&](?:token|code|state|key)=)[^&]*/gi, "$1[REDACTED]"),
          host: req.hostname,
          ip: req.ip,
        }),
      },
    },
    destination,
  );
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
    if (options?.level !== undefined || options?.serializers !== undefined) return withLazyRequestLoggers(log.child(bindings, options) as unknown as Logger) as unknown as Logger<L>;
    return new LazyRequestLogger(log, bindings) as unknown as Logger<L>;
  };
  return root;
}
