/**
 * An RFC 6749 §5.2 error (the token endpoint's own format; every other route answers problem+json). A throttled
 * request is `slow_down` (the registered code of RFC 8628 §3.5; RFC 6749 has none for this) with HTTP 429 and
 * Retry-After, so clients that read only the status, or only the code, both back off.
 */
export class OAuthError extends Error {
  readonly error:
    | "invalid_request"
    | "invalid_client"
    | "invalid_grant"
    | "unauthorized_client"
    | "unsupported_grant_type"
    | "invalid_scope"
    | "invalid_target"
    | "slow_down";
  readonly status: 400 | 401 | 429;
  /** Seconds to wait (slow_down only). */
  readonly retryAfter?: number;
  constructor(error: OAuthError["error"], description: string, retryAfter?: number) {
    super(description);
    this.error = error;
    this.status = error === "invalid_client" ? 401 : error === "slow_down" ? 429 : 400;
    this.retryAfter = retryAfter;
  }
}
