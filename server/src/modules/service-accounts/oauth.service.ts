import type { ApiKeyAuthenticator, Principal } from "../../http/auth.ts";
import { principalOfClaims } from "../../http/auth.ts";
import { membershipOfPrincipal, type ServiceAccountMemberships, type SourceKeys } from "../../http/tenant.ts";
import { AppError, isAppError } from "../../lib/errors.ts";
import { isId } from "../../lib/ids.ts";
import type { Clock } from "../../lib/clock.ts";
import type { AccessService } from "../access/access.service.ts";
import { ALL_PERMISSIONS, isPermission, type Permission } from "../access/permissions.ts";
import { MAX_ISSUED_TTL_SECONDS, type SigningKeys } from "../keys/signing-keys.ts";
import { blockedFor, type TokenThrottles } from "./oauth.throttle.ts";
import type { ServiceAccountsService } from "./service-accounts.service.ts";

export const GRANT_CLIENT_CREDENTIALS = "client_credentials";
export const GRANT_TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";
export const TOKEN_TYPE_ACCESS = "urn:ietf:params:oauth:token-type:access_token";
export const TOKEN_TYPE_API_KEY = "urn:plinth:api-key";
export const DEFAULT_ISSUED_TTL_SECONDS = 300;

/**
 * An RFC 6749 §5.2 error (the token endpoint's own format; every other route answers problem+json). A throttled
 * request is `slow_down` (the registered code of RFC 8628 §3.5; RFC 6749 has none for this) with HTTP 429 and
 * Retry-After, so clients that read only the status, or only the code, both back off.
 */
export class OAuthError extends Error {
  readonly error: "invalid_request" | "invalid_client" | "invalid_grant" | "unauthorized_client" | "unsupported_grant_type" | "invalid_scope" | "invalid_target" | "slow_down";
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

const slowDown = (seconds: number) => new OAuthError("slow_down", `Too many token requests; retry in ${seconds} s.`, seconds);

/**
 * Claims an exchange may not set: the registered ones and everything Plinth reads as identity or authority. Extra
 * claims are for the receiving service's information only.
 */
export const RESERVED_CLAIMS = new Set(["iss", "sub", "aud", "exp", "nbf", "iat", "jti", "scope", "permissions", "roles", "org", "act", "may_act", "cnf", "sid", "client_id", "azp", "key_id"]);
const CLAIM_NAME = /^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$/;
const MAX_CLAIMS = 20;
const MAX_CLAIMS_BYTES = 2048;

/** The token request's parameters, as sent in a form or JSON (values checked here, not trusted). */
export interface TokenRequest {
  grant_type: string;
  client_id?: string;
  client_secret?: string;
  scope?: string;
  audience?: string;
  expires_in?: string | number;
  subject_token?: string;
  subject_token_type?: string;
  requested_token_type?: string;
  actor_token?: string;
  actor_token_type?: string;
  org_id?: string;
  claims?: string | object;
}

export interface TokenResponse {
  access_token: string;
  token_type: "Bearer";
  expires_in: number;
  scope: string;
  issued_token_type?: string;
}

/**
 * POST /v1/oauth/token: client credentials (a service account's OAuth client) and token exchange (RFC 8693: an API
 * key or a Plinth access token in, a short-lived JWT out). Whatever comes out carries at most the authority of what
 * came in, as it is now: `scope` may narrow it (asking for more is invalid_scope), never widen. A token exchanged from
 * an API key names it (`key_id`, never the secret), never outlives it, and stops working on Plinth's routes when the
 * key is revoked; services verifying offline cannot know that, which is why such tokens live minutes (at most an
 * hour). Failed client authentications are throttled per client_id and per IP with growing lockouts, and issued
 * tokens per credential (slow_down, 429).
 */
export function createOAuthService(deps: {
  clock: Clock;
  keys: Pick<SigningKeys, "sign" | "verify">;
  apiKeys: ApiKeyAuthenticator & SourceKeys;
  access: Pick<AccessService, "membership">;
  serviceAccounts: Pick<ServiceAccountsService, "memberships" | "authenticateClient">;
  throttles: TokenThrottles;
}) {
  const { clock, keys, apiKeys, access, serviceAccounts, throttles: th } = deps;
  const memberships: ServiceAccountMemberships = serviceAccounts.memberships;

  function ttlOf(req: TokenRequest): number {
    if (req.expires_in === undefined) return DEFAULT_ISSUED_TTL_SECONDS;
    const n = typeof req.expires_in === "number" ? req.expires_in : /^[0-9]{1,7}$/.test(req.expires_in) ? Number(req.expires_in) : NaN;
    if (!Number.isInteger(n) || n < 1 || n > MAX_ISSUED_TTL_SECONDS) throw new OAuthError("invalid_request", `expires_in must be a whole number of seconds from 1 to ${MAX_ISSUED_TTL_SECONDS}.`);
    return n;
  }

  /** The requested scope, each permission one the subject holds now; absent: all of them. */
  function scopeOf(req: TokenRequest, authority: ReadonlySet<Permission>): Permission[] {
    if (req.scope === undefined) return ALL_PERMISSIONS.filter((p) => authority.has(p));
    const asked = req.scope.split(" ").filter((s) => s.length);
    if (!asked.length) throw new OAuthError("invalid_scope", "scope is empty: name one or more permissions, separated by spaces, or leave it out.");
    for (const p of asked) {
      if (!isPermission(p)) throw new OAuthError("invalid_scope", `scope names ${p.slice(0, 64)}, which is not a permission (GET /v1/permissions lists them).`);
      if (!authority.has(p)) throw new OAuthError("invalid_scope", `scope asks for ${p}, which the subject does not hold: a token can narrow authority, never widen it.`);
    }
    return ALL_PERMISSIONS.filter((p) => asked.includes(p));
  }

  function extraClaimsOf(req: TokenRequest): Record<string, unknown> {
    if (req.claims === undefined) return {};
    let claims: unknown = req.claims;
    if (typeof claims === "string") {
      if (claims.length > MAX_CLAIMS_BYTES) throw new OAuthError("invalid_request", `claims is over ${MAX_CLAIMS_BYTES} bytes.`);
      try {
        claims = JSON.parse(claims);
      } catch {
        throw new OAuthError("invalid_request", "claims must be a JSON object.");
      }
    }
    if (!claims || typeof claims !== "object" || Array.isArray(claims)) throw new OAuthError("invalid_request", "claims must be a JSON object.");
    const entries = Object.entries(claims);
    if (entries.length > MAX_CLAIMS) throw new OAuthError("invalid_request", `claims has more than ${MAX_CLAIMS} members.`);
    if (JSON.stringify(claims).length > MAX_CLAIMS_BYTES) throw new OAuthError("invalid_request", `claims is over ${MAX_CLAIMS_BYTES} bytes.`);
    for (const [name] of entries) {
      if (RESERVED_CLAIMS.has(name)) throw new OAuthError("invalid_request", `claims may not set ${name}: it names identity or authority, which only Plinth sets.`);
      if (!CLAIM_NAME.test(name)) throw new OAuthError("invalid_request", `claims has a member name ${JSON.stringify(name.slice(0, 64))} that is not a plain identifier.`);
    }
    return claims as Record<string, unknown>;
  }

  function audienceOf(req: TokenRequest): string | undefined {
    if (req.audience === undefined) return undefined;
    if (!/^[\x21-\x7e]{1,200}$/.test(req.audience)) throw new OAuthError("invalid_target", "audience must be 1–200 visible ASCII characters (a URI or a service name).");
    return req.audience;
  }

  async function issue(claims: Record<string, unknown> & { sub: string }, scope: Permission[], ttl: number, audience: string | undefined, exchanged: boolean): Promise<TokenResponse> {
    const s = scope.join(" ");
    const token = await keys.sign({ ...claims, scope: s }, ttl, audience);
    const out: TokenResponse = { access_token: token, token_type: "Bearer", expires_in: ttl, scope: s };
    if (exchanged) out.issued_token_type = TOKEN_TYPE_ACCESS;
    return out;
  }

  /** Counts one token for the credential; slow_down once its allowance is spent. */
  async function countIssued(credential: string): Promise<void> {
    const wait = (await th.issuedPerCredential.blockedFor(credential)) || (await th.issuedPerCredential.hit(credential));
    if (wait > 0) throw slowDown(wait);
  }

  async function clientCredentials(req: TokenRequest, client: { id: string; secret: string }, ip: string): Promise<TokenResponse> {
    const clientKey = client.id.slice(0, 100);
    // checked before the secret, so that during a lockout the right secret is refused like a wrong one (no oracle)
    const wait = await blockedFor([[th.failuresPerClient, clientKey], [th.failuresPerIp, ip]]);
    if (wait > 0) throw slowDown(wait);
    const ttl = ttlOf(req);
    const audience = audienceOf(req);
    const extra = extraClaimsOf(req);
    const found = await serviceAccounts.authenticateClient(client.id, client.secret);
    const m = found && (await memberships.membership(found.orgId, found.serviceAccountId));
    if (!found || !m) {
      await Promise.all([th.failuresPerClient.hit(clientKey), th.failuresPerIp.hit(ip)]);
      throw new OAuthError("invalid_client", "Client authentication failed: unknown or revoked client, wrong secret, or a disabled service account.");
    }
    await countIssued(found.clientId);
    const scope = scopeOf(req, m.permissions);
    return issue({ ...extra, sub: found.serviceAccountId, org: found.orgId, client_id: found.clientId }, scope, ttl, audience, false);
  }

  /** The subject token's principal and how long it still lives (undefined: no limit known). */
  // a subject token is an API key or a Plinth access token, never a service's self-signed one
  async function subjectOf(req: TokenRequest, ip: string): Promise<{ principal: Exclude<Principal, { kind: "service" }>; expiresAt?: number }> {
    const token = req.subject_token;
    if (!token) throw new OAuthError("invalid_request", "subject_token is required.");
    switch (req.subject_token_type) {
      case TOKEN_TYPE_API_KEY: {
        const r = await apiKeys.authenticate(token, ip);
        if (r instanceof AppError) throw new OAuthError("invalid_grant", `subject_token is not a usable API key: ${r.message}`);
        // never outlive the key (nor a rotated-out secret's grace period)
        return { principal: r, expiresAt: r.expiresAt === undefined ? undefined : Math.floor(r.expiresAt / 1000) };
      }
      case TOKEN_TYPE_ACCESS: {
        const r = await keys.verify(token);
        if (!r.ok) throw new OAuthError("invalid_grant", `subject_token is not a valid Plinth access token (${r.reason}).`);
        // an impersonation's token stays the impersonation's: exchanged, it would lose its act claim and its record
        if (r.claims.act !== undefined) throw new OAuthError("invalid_grant", "subject_token is an impersonation's token, which cannot be exchanged.");
        return { principal: principalOfClaims(r.claims), expiresAt: typeof r.claims.exp === "number" ? r.claims.exp : undefined };
      }
      case undefined:
        throw new OAuthError("invalid_request", "subject_token_type is required.");
      default:
        throw new OAuthError("invalid_request", `subject_token_type must be ${TOKEN_TYPE_API_KEY} or ${TOKEN_TYPE_ACCESS}.`);
    }
  }

  async function tokenExchange(req: TokenRequest, ip: string): Promise<TokenResponse> {
    if (req.actor_token !== undefined || req.actor_token_type !== undefined) throw new OAuthError("invalid_request", "actor_token is not supported: an exchange acts as its subject only.");
    if (req.requested_token_type !== undefined && req.requested_token_type !== TOKEN_TYPE_ACCESS) {
      throw new OAuthError("invalid_request", `requested_token_type must be ${TOKEN_TYPE_ACCESS}.`);
    }
    if (req.client_id !== undefined || req.client_secret !== undefined) throw new OAuthError("invalid_request", "The token exchange takes no client credentials: the subject token authenticates.");
    let ttl = ttlOf(req);
    const audience = audienceOf(req);
    const extra = extraClaimsOf(req);
    if (req.org_id !== undefined && !isId("org", req.org_id)) throw new OAuthError("invalid_request", "org_id must be an org_… id.");
    const wait = await blockedFor([[th.failuresPerIp, ip]]);
    if (wait > 0) throw slowDown(wait);
    const { principal, expiresAt } = await subjectOf(req, ip).catch(async (e: unknown) => {
      if (e instanceof OAuthError && e.error === "invalid_grant") await th.failuresPerIp.hit(ip);
      throw e;
    });
    const bound = principal.kind === "user" ? principal.orgId : principal.orgId;
    if (bound !== undefined && req.org_id !== undefined && req.org_id !== bound) throw new OAuthError("invalid_target", "The subject token is bound to another organization than org_id.");
    const orgId = bound ?? req.org_id;
    if (orgId === undefined) throw new OAuthError("invalid_request", "org_id is required: a signed-in user's token is exchanged for one organization's permissions.");
    const m = await membershipOfPrincipal(access, memberships, principal, orgId, apiKeys).catch((e: unknown) => {
      // a token exchanged from a key that has since been revoked
      if (isAppError(e) && e.status === 401) throw new OAuthError("invalid_grant", `subject_token no longer works: ${e.message}`);
      throw e;
    });
    if (!m) throw new OAuthError("invalid_grant", "The subject has no access to that organization (not a member, removed, disabled, or the organization is gone).");
    const sub = principal.kind === "user" ? principal.userId : principal.kind === "service_account" ? principal.serviceAccountId : principal.ownerId;
    // the key a token comes from, through any number of exchanges: its allowance, and its revocation, follow it
    const keyId = principal.kind === "api_key" ? principal.keyId : principal.sourceKeyId;
    await countIssued(keyId ?? sub);
    const scope = scopeOf(req, m.permissions);
    // never outlive the subject token itself
    if (expiresAt !== undefined) ttl = Math.min(ttl, Math.max(1, expiresAt - Math.floor(clock.now().getTime() / 1000)));
    return issue({ ...extra, sub, org: orgId, ...(keyId === undefined ? {} : { key_id: keyId }) }, scope, ttl, audience, true);
  }

  return {
    /** Answers a token request; `client` is the HTTP Basic credential, if one was sent. Throws OAuthError. */
    async token(req: TokenRequest, basic: { id: string; secret: string } | undefined, ip: string): Promise<TokenResponse> {
      switch (req.grant_type) {
        case GRANT_CLIENT_CREDENTIALS: {
          if (basic && (req.client_id !== undefined || req.client_secret !== undefined)) {
            throw new OAuthError("invalid_request", "Send the client credentials once: in the Authorization header or in the body, not both.");
          }
          const client = basic ?? (req.client_id !== undefined && req.client_secret !== undefined ? { id: req.client_id, secret: req.client_secret } : undefined);
          if (!client) throw new OAuthError("invalid_client", "Client authentication is required: HTTP Basic, or client_id and client_secret in the body.");
          if (req.subject_token !== undefined || req.org_id !== undefined) throw new OAuthError("invalid_request", "client_credentials takes no subject_token or org_id.");
          return clientCredentials(req, client, ip);
        }
        case GRANT_TOKEN_EXCHANGE:
          if (basic) throw new OAuthError("invalid_request", "The token exchange takes no client credentials: the subject token authenticates.");
          return tokenExchange(req, ip);
        default:
          throw new OAuthError("unsupported_grant_type", `grant_type must be ${GRANT_CLIENT_CREDENTIALS} or ${GRANT_TOKEN_EXCHANGE}.`);
      }
    },
  };
}

export type OAuthService = ReturnType<typeof createOAuthService>;
