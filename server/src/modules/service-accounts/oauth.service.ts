import {
  membershipOfPrincipal,
  principalOfClaims,
  type ApiKeyAuthenticator,
  type LiveClients,
  type Principal,
  type ServiceAccountMemberships,
  type SourceKeys,
} from "../access/principal.ts";
import { AppError, isAppError } from "../../lib/errors.ts";
import { isId } from "../../lib/ids.ts";
import type { Clock } from "../../lib/clock.ts";
import type { AccessService, OrgMembership } from "../access/access.service.ts";
import { ALL_PERMISSIONS, isPermission, type Permission } from "../access/permissions.ts";
import { SECRET_PREFIX } from "../keys/api-keys.format.ts";
import { MAX_ISSUED_TTL_SECONDS, type SigningKeys } from "../keys/signing-keys.ts";
import { extraClaimsOf } from "./oauth.claims.ts";
import { OAuthError } from "./oauth.errors.ts";
import { blockedFor, type TokenThrottles } from "./oauth.throttle.ts";
import type { ServiceAccountsService } from "./service-accounts.service.ts";

export const GRANT_CLIENT_CREDENTIALS = "client_credentials";
export const GRANT_TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";
export const TOKEN_TYPE_ACCESS = "urn:ietf:params:oauth:token-type:access_token";
export const TOKEN_TYPE_API_KEY = "urn:plinth:api-key";
export const DEFAULT_ISSUED_TTL_SECONDS = 300;

const slowDown = (seconds: number) => new OAuthError("slow_down", `Too many token requests; retry in ${seconds} s.`, seconds);

/** The shape of a JWS in compact form (a JWT), to tell it from an API key in a mislabelled subject_token. */
const JWT_SHAPE = /^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*$/;

/** HTTP Basic or body client credentials (RFC 6749 §2.3.1). */
export interface ClientCredentials {
  id: string;
  secret: string;
}

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
 * The client credentials a request carries: HTTP Basic, or client_id and client_secret in the body (not both); none
 * when it sends neither. Every Plinth client is confidential (it has a secret), so a client_id without its secret is
 * invalid_client, not an anonymous request: it authenticates nothing, and would let anyone name any client.
 */
export function credentialsOf(req: TokenRequest, basic: ClientCredentials | undefined): ClientCredentials | undefined {
  if (basic && (req.client_id !== undefined || req.client_secret !== undefined)) {
    throw new OAuthError("invalid_request", "Send the client credentials once: in the Authorization header or in the body, not both.");
  }
  if (basic) return basic;
  if (req.client_id === undefined && req.client_secret === undefined) return undefined;
  if (req.client_id === undefined || req.client_secret === undefined) {
    throw new OAuthError(
      "invalid_client",
      "Client authentication needs client_id and client_secret (in the body or with HTTP Basic): every Plinth client is confidential.",
    );
  }
  return { id: req.client_id, secret: req.client_secret };
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
  serviceAccounts: Pick<ServiceAccountsService, "memberships" | "authenticateClient" | "clients">;
  throttles: TokenThrottles;
}) {
  const { clock, keys, apiKeys, access, serviceAccounts, throttles: th } = deps;
  const memberships: ServiceAccountMemberships = serviceAccounts.memberships;
  const clients: LiveClients = serviceAccounts.clients;

  function ttlOf(req: TokenRequest): number {
    if (req.expires_in === undefined) return DEFAULT_ISSUED_TTL_SECONDS;
    const n = typeof req.expires_in === "number" ? req.expires_in : /^[0-9]{1,7}$/.test(req.expires_in) ? Number(req.expires_in) : NaN;
    if (!Number.isInteger(n) || n < 1 || n > MAX_ISSUED_TTL_SECONDS)
      throw new OAuthError("invalid_request", `expires_in must be a whole number of seconds from 1 to ${MAX_ISSUED_TTL_SECONDS}.`);
    return n;
  }

  /** The requested scope, each permission one the subject holds now; absent: all of them. */
  function scopeOf(req: TokenRequest, authority: ReadonlySet<Permission>): Permission[] {
    if (req.scope === undefined) return ALL_PERMISSIONS.filter((p) => authority.has(p));
    const asked = req.scope.split(" ").filter((s) => s.length);
    if (!asked.length) throw new OAuthError("invalid_scope", "scope is empty: name one or more permissions, separated by spaces, or leave it out.");
    for (const p of asked) {
      if (!isPermission(p)) throw new OAuthError("invalid_scope", `scope names ${p.slice(0, 64)}, which is not a permission (GET /v1/permissions lists them).`);
      if (!authority.has(p))
        throw new OAuthError("invalid_scope", `scope asks for ${p}, which the subject does not hold: a token can narrow authority, never widen it.`);
    }
    return ALL_PERMISSIONS.filter((p) => asked.includes(p));
  }

  function audienceOf(req: TokenRequest): string | undefined {
    if (req.audience === undefined) return undefined;
    if (!/^[\x21-\x7e]{1,200}$/.test(req.audience))
      throw new OAuthError("invalid_target", "audience must be 1–200 visible ASCII characters (a URI or a service name).");
    return req.audience;
  }

  async function issue(
    claims: Record<string, unknown> & { sub: string },
    scope: Permission[],
    ttl: number,
    audience: string | undefined,
    exchanged: boolean,
  ): Promise<TokenResponse> {
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

  /**
   * slow_down while the IP, or the client_id credentials name, is locked out. Checked before the secret, so that
   * during a lockout the right secret is refused like a wrong one (no oracle).
   */
  async function refuseLockedOut(client: ClientCredentials | undefined, ip: string): Promise<void> {
    const wait = await blockedFor(
      client
        ? [
            [th.failuresPerClient, client.id.slice(0, 100)],
            [th.failuresPerIp, ip],
          ]
        : [[th.failuresPerIp, ip]],
    );
    if (wait > 0) throw slowDown(wait);
  }

  /** The client the credentials authenticate, while it stands (not revoked, its account enabled); a failure counts. */
  async function authenticated(
    client: ClientCredentials,
    ip: string,
  ): Promise<{ orgId: string; serviceAccountId: string; clientId: string; membership: OrgMembership }> {
    const found = await serviceAccounts.authenticateClient(client.id, client.secret);
    const m = found && (await memberships.membership(found.orgId, found.serviceAccountId));
    if (!found || !m) {
      await Promise.all([th.failuresPerClient.hit(client.id.slice(0, 100)), th.failuresPerIp.hit(ip)]);
      throw new OAuthError("invalid_client", "Client authentication failed: unknown or revoked client, wrong secret, or a disabled service account.");
    }
    return { ...found, membership: m };
  }

  /**
   * A service account's token, for its client. It always names the client (`client_id`): the token, and every token
   * exchanged from it, stops on Plinth's routes once the client is revoked (access/principal.ts checks it is live).
   */
  async function clientCredentials(req: TokenRequest, client: ClientCredentials, ip: string): Promise<TokenResponse> {
    await refuseLockedOut(client, ip);
    const ttl = ttlOf(req);
    const audience = audienceOf(req);
    const extra = extraClaimsOf(req.claims);
    const found = await authenticated(client, ip);
    await countIssued(found.clientId);
    const scope = scopeOf(req, found.membership.permissions);
    return issue({ ...extra, sub: found.serviceAccountId, org: found.orgId, client_id: found.clientId }, scope, ttl, audience, false);
  }

  /** The subject token's principal and how long it still lives (undefined: no limit known). */
  // a subject token is an API key or a Plinth access token, never a service's self-signed one
  async function subjectOf(req: TokenRequest, ip: string): Promise<{ principal: Exclude<Principal, { kind: "service" }>; expiresAt?: number }> {
    const token = req.subject_token;
    if (!token) throw new OAuthError("invalid_request", "subject_token is required.");
    switch (req.subject_token_type) {
      case TOKEN_TYPE_API_KEY: {
        // a mislabelled token is a client's mistake, not a credential guess: say what to send instead, check nothing
        if (JWT_SHAPE.test(token))
          throw new OAuthError("invalid_request", `subject_token is a JWT, not an API key: send an access token with subject_token_type=${TOKEN_TYPE_ACCESS}.`);
        const r = await apiKeys.authenticate(token, ip);
        if (r instanceof AppError) throw new OAuthError("invalid_grant", `subject_token is not a usable API key: ${r.message}`);
        // never outlive the key (nor a rotated-out secret's grace period)
        return { principal: r, expiresAt: r.expiresAt === undefined ? undefined : Math.floor(r.expiresAt / 1000) };
      }
      case TOKEN_TYPE_ACCESS: {
        if (token.startsWith(SECRET_PREFIX))
          throw new OAuthError(
            "invalid_request",
            `subject_token is an API key (${SECRET_PREFIX}…), not an access token: send it with subject_token_type=${TOKEN_TYPE_API_KEY}.`,
          );
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

  /**
   * RFC 8693. The subject token is the authority; a client may authenticate too (standard OAuth clients always do),
   * and is then named in `azp`. It must be a client of the organization the token is for, and it adds no authority:
   * what comes out is still the subject's, narrowed. The exchanged token carries on what Plinth checks at each request:
   * `key_id` (the API key it comes from) and `client_id` (the OAuth client a service account's token was issued to),
   * so it stops when they are revoked. No `act` claim: Plinth reads any `act` as an impersonation.
   */
  async function tokenExchange(req: TokenRequest, client: ClientCredentials | undefined, ip: string): Promise<TokenResponse> {
    if (req.actor_token !== undefined || req.actor_token_type !== undefined)
      throw new OAuthError("invalid_request", "actor_token is not supported: an exchange acts as its subject only.");
    if (req.requested_token_type !== undefined && req.requested_token_type !== TOKEN_TYPE_ACCESS) {
      throw new OAuthError("invalid_request", `requested_token_type must be ${TOKEN_TYPE_ACCESS}.`);
    }
    let ttl = ttlOf(req);
    const audience = audienceOf(req);
    const extra = extraClaimsOf(req.claims);
    if (req.org_id !== undefined && !isId("org", req.org_id)) throw new OAuthError("invalid_request", "org_id must be an org_… id.");
    await refuseLockedOut(client, ip);
    const by = client && (await authenticated(client, ip));
    const { principal, expiresAt } = await subjectOf(req, ip).catch(async (e: unknown) => {
      if (e instanceof OAuthError && e.error === "invalid_grant") await th.failuresPerIp.hit(ip);
      throw e;
    });
    const bound = principal.kind === "user" ? principal.orgId : principal.orgId;
    if (bound !== undefined && req.org_id !== undefined && req.org_id !== bound)
      throw new OAuthError("invalid_target", "The subject token is bound to another organization than org_id.");
    const orgId = bound ?? req.org_id;
    if (orgId === undefined)
      throw new OAuthError("invalid_request", "org_id is required: a signed-in user's token is exchanged for one organization's permissions.");
    if (by && by.orgId !== orgId)
      throw new OAuthError(
        "unauthorized_client",
        "The client belongs to another organization than the token would be for: a client exchanges tokens for its own organization only.",
      );
    const m = await membershipOfPrincipal(access, { serviceAccounts: memberships, sourceKeys: apiKeys, clients }, principal, orgId).catch((e: unknown) => {
      // a token exchanged from a key that has since been revoked
      if (isAppError(e) && e.status === 401) throw new OAuthError("invalid_grant", `subject_token no longer works: ${e.message}`);
      throw e;
    });
    if (!m)
      throw new OAuthError("invalid_grant", "The subject has no access to that organization (not a member, removed, disabled, or the organization is gone).");
    const sub = principal.kind === "user" ? principal.userId : principal.kind === "service_account" ? principal.serviceAccountId : principal.ownerId;
    // the key a token comes from, through any number of exchanges: its allowance, and its revocation, follow it
    const keyId = principal.kind === "api_key" ? principal.keyId : principal.sourceKeyId;
    await countIssued(keyId ?? sub);
    // a client that asks for exchanges spends its own allowance too, as for its client_credentials tokens
    if (by) await countIssued(by.clientId);
    const scope = scopeOf(req, m.permissions);
    // never outlive the subject token itself
    if (expiresAt !== undefined) ttl = Math.min(ttl, Math.max(1, expiresAt - Math.floor(clock.now().getTime() / 1000)));
    return issue(
      {
        ...extra,
        sub,
        org: orgId,
        ...(keyId === undefined ? {} : { key_id: keyId }),
        ...carriedClientOf(principal),
        ...sessionOf(principal),
        ...(by ? { azp: by.clientId } : {}),
      },
      scope,
      ttl,
      audience,
      true,
    );
  }

  /**
   * The OAuth client a service account's token was issued to, carried into the tokens exchanged from it (`client_id`,
   * through any number of exchanges), so that revoking the client stops them too. The client that asks for an
   * exchange is not this one: it goes in `azp`.
   */
  function carriedClientOf(principal: Exclude<Principal, { kind: "service" }>): { client_id?: string } {
    return principal.kind === "service_account" && principal.clientId !== undefined ? { client_id: principal.clientId } : {};
  }

  return {
    /** Answers a token request; `basic` is the HTTP Basic credential, if one was sent. Throws OAuthError. */
    async token(req: TokenRequest, basic: ClientCredentials | undefined, ip: string): Promise<TokenResponse> {
      switch (req.grant_type) {
        case GRANT_CLIENT_CREDENTIALS: {
          const client = credentialsOf(req, basic);
          if (!client) throw new OAuthError("invalid_client", "Client authentication is required: HTTP Basic, or client_id and client_secret in the body.");
          if (req.subject_token !== undefined || req.org_id !== undefined)
            throw new OAuthError("invalid_request", "client_credentials takes no subject_token or org_id.");
          return clientCredentials(req, client, ip);
        }
        case GRANT_TOKEN_EXCHANGE:
          return tokenExchange(req, credentialsOf(req, basic), ip);
        default:
          throw new OAuthError("unsupported_grant_type", `grant_type must be ${GRANT_CLIENT_CREDENTIALS} or ${GRANT_TOKEN_EXCHANGE}.`);
      }
    },
  };
}

export type OAuthService = ReturnType<typeof createOAuthService>;

/** A token exchanged from a session's access token names the session (`sid`): it ends when the session does. */
function sessionOf(p: Principal): { sid?: string } {
  return p.kind === "user" && p.sessionId !== undefined ? { sid: p.sessionId } : {};
}
