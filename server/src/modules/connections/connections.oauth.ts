import * as oidc from "openid-client";
import type { OutboundGuard } from "../../lib/outbound.ts";

/** What a refresh sends: the token endpoint, the client, and the refresh token (read from the vault just before). */
export interface RefreshRequest {
  tokenUrl: string;
  clientId: string;
  clientSecret: string | null;
  refreshToken: string;
}

/**
 * A refresh's outcome. `terminal`: the provider refused the grant or the client (invalid_grant, invalid_client,
 * unauthorized_client, GitHub's bad_refresh_token): trying again will not help. `error` is an OAuth error code or a fixed sentence, never text
 * the provider sent along (it is stored and shown as last_error).
 */
export type RefreshOutcome =
  | { ok: true; accessToken: string; refreshToken: string | undefined; tokenType: string; scope: string | undefined; expiresIn: number | undefined }
  | { ok: false; terminal: boolean; error: string };

export type TokenRefresher = (r: RefreshRequest) => Promise<RefreshOutcome>;

/** Errors no retry mends; bad_refresh_token is GitHub's invalid_grant (sent with HTTP 200). */
const TERMINAL = new Set(["invalid_grant", "invalid_client", "unauthorized_client", "unsupported_grant_type", "bad_refresh_token"]);
const OAUTH_ERROR_CODE = /^[a-z_]{1,64}$/;
const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]"]);

/** Whether a token endpoint may be called over plain http: only on this machine (local providers, tests). */
export function isLoopback(url: URL): boolean {
  return LOOPBACK.has(url.hostname);
}

/**
 * Provider quirks, mended before openid-client reads the answer: an id_token (Google, Entra with `openid`) is dropped,
 * since a connection never signs anyone in and its issuer is tenant-specific; an OAuth error sent with HTTP 200
 * (GitHub) is turned into the 400 it means; a missing token_type is Bearer.
 */
async function mendResponse(res: Response): Promise<Response> {
  if (!(res.headers.get("content-type") ?? "").includes("json")) return res;
  const body = (await res.json().catch(() => undefined)) as Record<string, unknown> | undefined;
  if (!body || typeof body !== "object")
    return new Response("{}", { status: res.status === 200 ? 502 : res.status, headers: { "content-type": "application/json" } });
  const { id_token: _dropped, ...rest } = body;
  const status = res.status === 200 && typeof rest.error === "string" ? 400 : res.status;
  // a token_type left out (some Atlassian answers) is the Bearer every one of these providers issues
  if (status === 200 && typeof rest.access_token === "string" && rest.token_type === undefined) rest.token_type = "Bearer";
  return new Response(JSON.stringify(rest), { status, headers: { "content-type": "application/json" } });
}

/**
 * The OAuth 2.0 refresh_token grant (RFC 6749 §6) with openid-client: client_secret_post when the connection has a
 * client secret (Atlassian, Entra, GitHub and Google all take it), the client id alone otherwise. Never throws: every
 * failure is an outcome, and none carries a token or the provider's free text.
 */
export function createTokenRefresher(opts: { timeoutSeconds: number; outbound?: Pick<OutboundGuard, "send"> }): TokenRefresher {
  const { outbound } = opts;
  // through the SSRF guard when given: the host is checked again and the connection goes to the checked address
  const send: oidc.CustomFetch = outbound
    ? async (url, init) => {
        const res = await outbound.send(url, {
          method: init.method,
          headers: init.headers,
          body: init.body == null ? undefined : String(init.body),
          timeoutMs: opts.timeoutSeconds * 1000,
          maxBodyBytes: 1 << 20,
        });
        const empty = res.status === 204 || res.status === 304 || res.body.length === 0;
        return new Response(empty ? null : new Uint8Array(res.body), {
          status: res.status,
          headers: res.contentType ? { "content-type": res.contentType } : {},
        });
      }
    : (url, init) => fetch(url, init as RequestInit);
  return async (r) => {
    const url = new URL(r.tokenUrl);
    const config = new oidc.Configuration(
      { issuer: url.origin, token_endpoint: url.href },
      r.clientId,
      r.clientSecret ? { client_secret: r.clientSecret } : undefined,
      r.clientSecret ? oidc.ClientSecretPost(r.clientSecret) : oidc.None(),
    );
    if (url.protocol === "http:" && isLoopback(url)) oidc.allowInsecureRequests(config);
    config.timeout = opts.timeoutSeconds;
    config[oidc.customFetch] = async (input, init) => mendResponse(await send(input, init));
    try {
      const t = await oidc.refreshTokenGrant(config, r.refreshToken);
      return {
        ok: true,
        accessToken: t.access_token,
        refreshToken: t.refresh_token,
        // oauth4webapi lower-cases it; the scheme is written Bearer (RFC 6750)
        tokenType: t.token_type === "bearer" ? "Bearer" : t.token_type,
        scope: t.scope,
        expiresIn: t.expires_in,
      };
    } catch (e) {
      if (e instanceof oidc.ResponseBodyError) {
        const code = OAUTH_ERROR_CODE.test(e.error) ? e.error : "invalid_response";
        return { ok: false, terminal: TERMINAL.has(code), error: `${code} (HTTP ${e.status})` };
      }
      if (e instanceof oidc.WWWAuthenticateChallengeError) return { ok: false, terminal: true, error: `invalid_client (HTTP ${e.status})` };
      const status = (e as { cause?: unknown }).cause instanceof Response ? ((e as { cause: Response }).cause.status as number) : undefined;
      return { ok: false, terminal: false, error: status ? `the token endpoint answered HTTP ${status}` : "the token endpoint could not be reached" };
    }
  };
}
