/**
 * One error type for the whole server. Each module declares its codes with their HTTP status (`defineErrors`), so the
 * edge turns any AppError into RFC 9457 problem+json without knowing the module; `stable` codes are the API contract.
 */
export interface AppErrorOptions {
  /** The request field at fault (`password`, `email`). */
  field?: string;
  /** Seconds until a retry may succeed (429). */
  retryAfter?: number;
  /** Extra, non-secret members for the problem document. */
  extra?: Record<string, unknown>;
}

export class AppError extends Error {
  readonly code: string;
  readonly status: number;
  readonly field?: string;
  readonly retryAfter?: number;
  readonly extra?: Record<string, unknown>;

  constructor(code: string, status: number, detail: string, options: AppErrorOptions = {}) {
    super(detail);
    this.name = "AppError";
    this.code = code;
    this.status = status;
    this.field = options.field;
    this.retryAfter = options.retryAfter;
    this.extra = options.extra;
  }
}

export type ErrorTable = Record<string, number>;

/** Every code any module declared, for docs and for the problem type URIs. */
export const errorRegistry = new Map<string, number>();

/** Declares a module's error codes and returns its `fail(code, detail, options)` constructor. */
export function defineErrors<const T extends ErrorTable>(table: T) {
  for (const [code, status] of Object.entries(table)) {
    const known = errorRegistry.get(code);
    if (known !== undefined && known !== status) throw new Error(`error code ${code} declared twice with different statuses`);
    errorRegistry.set(code, status);
  }
  return (code: keyof T & string, detail: string, options?: AppErrorOptions): AppError => new AppError(code, table[code], detail, options);
}

export const platformError = defineErrors({
  VALIDATION_FAILED: 400,
  MALFORMED_JSON: 400,
  BAD_REQUEST: 400,
  UNAUTHENTICATED: 401,
  INVALID_TOKEN: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  ROUTE_NOT_FOUND: 404,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  RATE_LIMITED: 429,
  INTERNAL: 500,
  NOT_READY: 503,
});

export function isAppError(e: unknown): e is AppError {
  return e instanceof AppError;
}
