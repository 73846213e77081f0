/**
 * The CLI's way to a running Plinth server (`plinth secrets …`, `plinth run`): unlike the operator commands in
 * commands.ts, these act as a person or a key over HTTP, so every rule and audit event of the API applies.
 *
 * PLINTH_URL: the server (default http://127.0.0.1:8080, what `plinth serve` listens on by default).
 * PLINTH_TOKEN: an API key (plk_live_…, sent as X-API-Key) or an access token (sent as Authorization: Bearer).
 */
import { SECRET_PREFIX } from "../modules/keys/api-keys.format.ts";

export const DEFAULT_URL = "http://127.0.0.1:8080";
const TIMEOUT_MS = 30_000;

/** What a command reads and writes: the process's own streams, or a test's. */
export interface CliIo {
  env: Record<string, string | undefined>;
  stdout: { write(s: string): unknown; isTTY?: boolean };
  stderr: { write(s: string): unknown };
  stdin: AsyncIterable<string | Uint8Array>;
}

export const processIo = (): CliIo => ({ env: process.env, stdout: process.stdout, stderr: process.stderr, stdin: process.stdin });

/** The command line is wrong: exit 2 with the usage text (as main.ts does). */
export class UsageError extends Error {}

/** A failure the user can act on (no token, server unreachable): `error: …`, exit 1. */
export class CliError extends Error {}

/** A problem+json answer from the server. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly detail: string;
  readonly field: string | undefined;
  constructor(status: number, code: string, detail: string, field?: string) {
    super(detail);
    this.status = status;
    this.code = code;
    this.detail = detail;
    this.field = field;
  }
}

export interface RequestOptions {
  query?: Record<string, string | undefined>;
  body?: unknown;
  headers?: Record<string, string>;
}

export interface ApiClient {
  url: string;
  request<T>(method: string, path: string, opts?: RequestOptions): Promise<T>;
}

/** The problem's field: its `field`, else the first of its `errors`, else the permission a 403 names. */
function fieldOf(p: Record<string, unknown>): string | undefined {
  if (typeof p.field === "string") return p.field;
  const first = Array.isArray(p.errors) ? (p.errors[0] as { field?: unknown } | undefined) : undefined;
  if (typeof first?.field === "string") return first.field;
  return typeof p.permission === "string" ? p.permission : undefined;
}

export function createApiClient(env: CliIo["env"], fetchFn: typeof fetch = fetch): ApiClient {
  const token = env.PLINTH_TOKEN?.trim();
  if (!token) throw new CliError("PLINTH_TOKEN is not set: give an API key (plk_live_…) or an access token of the server at PLINTH_URL.");
  let base: URL;
  try {
    base = new URL(env.PLINTH_URL || DEFAULT_URL);
  } catch {
    throw new CliError(`PLINTH_URL is not a URL: ${env.PLINTH_URL}`);
  }
  if (base.protocol !== "http:" && base.protocol !== "https:") throw new CliError(`PLINTH_URL must be http(s): ${base.href}`);
  // our API keys go in X-API-Key (never mistaken for a JWT); anything else is a bearer token
  const auth: Record<string, string> = token.startsWith(SECRET_PREFIX) ? { "x-api-key": token } : { authorization: `Bearer ${token}` };
  const url = base.href.replace(/\/$/, "");

  return {
    url,
    async request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
      const target = new URL(url + path);
      for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) target.searchParams.set(k, v);
      let res: Response;
      try {
        res = await fetchFn(target, {
          method,
          headers: { accept: "application/json", ...auth, ...(opts.body !== undefined ? { "content-type": "application/json" } : {}), ...opts.headers },
          body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
          signal: AbortSignal.timeout(TIMEOUT_MS),
        });
      } catch (e) {
        const cause = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message;
        throw new CliError(`cannot reach the Plinth server at ${url} (${cause}); set PLINTH_URL.`);
      }
      const text = await res.text();
      if (!res.ok) {
        let p: Record<string, unknown> = {};
        try {
          p = JSON.parse(text) as Record<string, unknown>;
        } catch {
          // not problem+json (a proxy's page): the status says enough
        }
        const detail = typeof p.detail === "string" ? p.detail : `${res.status} ${res.statusText}`;
        throw new ApiError(res.status, typeof p.code === "string" ? p.code : "HTTP_ERROR", detail, fieldOf(p));
      }
      return (text ? JSON.parse(text) : null) as T;
    },
  };
}

/**
 * Runs one command and turns its failure into an exit code: a usage error 2 (with `usage`), an API or CLI error 1
 * as `error: <detail> (<field>)`.
 */
// biome-ignore lint/suspicious/noConfusingVoidType: a command that only prints returns nothing, and succeeded
export async function asCommand(io: CliIo, usage: string, fn: () => Promise<number | void>): Promise<number> {
  try {
    return (await fn()) ?? 0;
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (e instanceof UsageError || (typeof code === "string" && code.startsWith("ERR_PARSE_ARGS"))) {
      io.stderr.write(`plinth: ${(e as Error).message}\n\n${usage}\n`);
      return 2;
    }
    if (e instanceof ApiError) {
      io.stderr.write(`error: ${e.detail}${e.field ? ` (${e.field})` : ""}\n`);
      return 1;
    }
    if (e instanceof CliError) {
      io.stderr.write(`error: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}
