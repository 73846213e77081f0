import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from "fastify";
import { AppError, platformError } from "../lib/errors.ts";
import { addRouteHook } from "./route-hooks.ts";
import type { AccessClaims, SigningKeys, VerifyResult } from "../modules/keys/signing-keys.ts";
import { isPermission, type Permission } from "../modules/access/permissions.ts";

/**
 * An API key of one org, owned by a user or a service account. `scope` is what the key itself carries: its roles'
 * and listed permissions, or "inherit" (its owner's current permissions); the tenant hook narrows it to what the
 * owner holds now, so a key never exceeds its owner.
 */
export type ApiKeyPrincipal = {
  kind: "api_key";
  keyId: string;
  orgId: string;
  ownerType: "user" | "service_account";
  ownerId: string;
  scope: "inherit" | ReadonlySet<Permission>;
  /** When the key (or this secret of it, rotated out) stops working, ms since the epoch: a token exchanged from it ends by then. */
  expiresAt?: number;
};

/**
 * A user, by an access token. A token from the token exchange (RFC 8693) is bound to one org and narrowed to its
 * `scope`: it never acts outside that org or beyond those permissions, and never on account routes (requireUser).
 */
export type UserPrincipal = {
  kind: "user";
  userId: string;
  sessionId?: string;
  tokenId?: string;
  orgId?: string;
  scope?: ReadonlySet<Permission>;
  /** The API key (key_…) an exchanged token came from: it works only while that key does (tenant.ts). */
  sourceKeyId?: string;
  /** Set when someone else acts as this user (an impersonation token, RFC 8693 `act`). */
  impersonation?: Impersonation;
};

/**
 * Who is acting as the user, and under what authority: a platform admin (anywhere the user is) or an owner of the
 * org the token is bound to (never beyond the owner's own permissions there).
 */
export type Impersonation = { id: string; actorId: string; basis: "platform_admin" | "org_owner" };

/**
 * Whether an impersonation is still live (not ended, not expired, its basis still holds): undefined when it is, the
 * error to answer with otherwise. Synchronous for one checked a moment ago.
 */
export interface ImpersonationChecker {
  check(impersonation: Impersonation): AppError | undefined | Promise<AppError | undefined>;
}

/**
 * A service account of one org, by an access token (client credentials or token exchange). `scope`, when the token
 * carries one, narrows the account's permissions as they are at each request; a disabled account is refused.
 */
export type ServiceAccountPrincipal = { kind: "service_account"; serviceAccountId: string; orgId: string; tokenId?: string; scope?: ReadonlySet<Permission>; sourceKeyId?: string };

/**
 * A registered service, by a JWT it signed itself with a key of the service key registry (modules/service-keys). It
 * acts with its registration's roles: an org's key in that org only; a platform-wide key (`keyOrgId` null) only in
 * the org its token names in `org`. Never on account routes (requireUser).
 */
export type ServicePrincipal = {
  kind: "service";
  serviceKeyId: string;
  service: string;
  /** The registration's org; null for a platform-wide registration. */
  keyOrgId: string | null;
  /** The one org it may act in (its key's, or a platform key's `org` claim); undefined: none. */
  orgId: string | undefined;
  roles: readonly string[];
};

/** Who is calling. More kinds (share link, runner) arrive with their issues. */
export type Principal = UserPrincipal | ApiKeyPrincipal | ServiceAccountPrincipal | ServicePrincipal;

/**
 * Checks a presented API key (`Authorization: Bearer plk_…` or `X-API-Key`): the principal, or the error to answer
 * with. Synchronous for a key seen recently (the hot path); a promise when it must be read or rate-limited.
 */
export interface ApiKeyAuthenticator {
  authenticate(secret: string, ip: string): ApiKeyPrincipal | AppError | Promise<ApiKeyPrincipal | AppError>;
}

/**
 * Checks a JWT whose kid is none of Plinth's signing keys against the service key registry: the registered
 * service's principal, or the error to answer with (401 INVALID_TOKEN with a reason).
 */
export interface ServiceTokenAuthenticator {
  authenticate(token: string): ServicePrincipal | AppError | Promise<ServicePrincipal | AppError>;
}

/**
 * How a route authenticates: `user` (a valid access token) or `none` (public). Every route under /v1 defaults to
 * `user` and must opt out explicitly; routes outside /v1 (health, metrics, well-known, docs) default to `none`.
 */
export type AuthMode = "user" | "none";

declare module "fastify" {
  interface FastifyRequest {
    principal?: Principal;
  }
  interface FastifyContextConfig {
    auth?: AuthMode;
  }
}

const TOKEN = /^[A-Za-z0-9._~+/=-]{1,8192}$/;

/**
 * The token of `Authorization: Bearer <token>` (the scheme name is case-insensitive, RFC 9110 §11.1), its characters
 * not yet checked; undefined for another scheme.
 */
function bearerToken(header: string): string | undefined {
  if (header.length < 8 || header.charCodeAt(6) !== 32 || header.slice(0, 6).toLowerCase() !== "bearer") return undefined;
  let start = 7;
  while (header.charCodeAt(start) === 32) start++;
  let end = header.length;
  while (end > start && header.charCodeAt(end - 1) === 32) end--;
  return header.slice(start, end);
}

/**
 * Authenticates every /v1 route that does not say `auth: "none"`: secure unless a route opts out. The hook is
 * attached per route at registration, so public routes pay nothing. Call before any route is registered.
 */
export function installAuth(
  app: FastifyInstance,
  keys: Pick<SigningKeys, "verify" | "verifyCached">,
  apiKeys?: ApiKeyAuthenticator,
  impersonations?: ImpersonationChecker,
  serviceTokens?: ServiceTokenAuthenticator,
): void {
  app.decorateRequest("principal", undefined);
  app.addHook("onRoute", (route) => {
    const mode = route.config?.auth ?? (route.url.startsWith("/v1/") ? "user" : "none");
    if (mode === "user") addRouteHook(route, "onRequest", authenticate);
  });
  // Callback style, not async: a token seen before (nearly every request) is settled synchronously, with no promise
  // and no microtask on the hot path; only a first sight of a token waits for the signature check.
  function authenticate(request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction): void {
    const header = request.headers.authorization;
    if (!header) {
      const apiKey = request.headers["x-api-key"];
      if (apiKeys && typeof apiKey === "string") return withApiKey(request, apiKey, done);
      return done(platformError("UNAUTHENTICATED", "Send an access token: Authorization: Bearer <token>."));
    }
    const token = bearerToken(header);
    // API keys start plk_; an access token (a JWT) starts eyJ
    if (apiKeys && token !== undefined && token.startsWith("plk_")) return withApiKey(request, token, done);
    // a cached token is one whose signature this instance checked, so it is well-formed
    const cached = token === undefined ? undefined : keys.verifyCached(token);
    if (cached) return settle(request, admit(request, cached), done);
    if (token === undefined || !TOKEN.test(token)) return done(platformError("INVALID_TOKEN", "The Authorization header must be 'Bearer <token>'."));
    keys.verify(token).then((result) => {
      // a kid Plinth never signed with may be a registered service's own key
      if (serviceTokens && !result.ok && result.reason === "unknown_key") return withServiceToken(request, token, done);
      settle(request, admit(request, result), done);
    }, done);
  }
  function withServiceToken(request: FastifyRequest, token: string, done: HookHandlerDoneFunction): void {
    const result = (serviceTokens as ServiceTokenAuthenticator).authenticate(token);
    if (result instanceof Promise) {
      result.then((r) => done(admitKey(request, r)), done);
      return;
    }
    done(admitKey(request, result));
  }
  /** Done, unless the token is an impersonation's: then only once the impersonation is known to be live. */
  function settle(request: FastifyRequest, error: AppError | undefined, done: HookHandlerDoneFunction): void {
    const imp = error ? undefined : (request.principal as UserPrincipal).impersonation;
    if (!imp) return done(error);
    if (!impersonations) return done(platformError("INVALID_TOKEN", "The access token is invalid.", { extra: { reason: "impersonation" } }));
    const r = impersonations.check(imp);
    if (r instanceof Promise) {
      r.then((e) => done(e), done);
      return;
    }
    done(r);
  }
  function withApiKey(request: FastifyRequest, secret: string, done: HookHandlerDoneFunction): void {
    const result = (apiKeys as ApiKeyAuthenticator).authenticate(secret, request.ip);
    if (result instanceof Promise) {
      result.then((r) => done(admitKey(request, r)), done);
      return;
    }
    done(admitKey(request, result));
  }
}

function admitKey(request: FastifyRequest, result: ApiKeyPrincipal | ServicePrincipal | AppError): AppError | undefined {
  if (result instanceof AppError) return result;
  request.principal = result;
  return undefined;
}

/** Sets the request's principal from a verification result, or returns the error to answer with. */
function admit(request: FastifyRequest, result: VerifyResult): AppError | undefined {
  if (!result.ok) {
    return result.reason === "expired"
      ? platformError("INVALID_TOKEN", "The access token has expired; refresh it.", { extra: { reason: "expired" } })
      : platformError("INVALID_TOKEN", "The access token is invalid.", { extra: { reason: result.reason } });
  }
  request.principal = principalOfClaims(result.claims);
  return undefined;
}

/** Parsed `scope` claims, per verified claims object (the verify cache hands out the same object for a token). */
const scopes = new WeakMap<AccessClaims, ReadonlySet<Permission>>();

/**
 * The principal an access token's claims name: a service account (`sub` sa_…, bound to its `org`), or a user,
 * bound to `org` and narrowed to `scope` when the token carries them (an exchanged token). Unknown permissions in
 * `scope` are dropped, never widened into.
 */
export function principalOfClaims(claims: AccessClaims): UserPrincipal | ServiceAccountPrincipal {
  let scope: ReadonlySet<Permission> | undefined;
  if (typeof claims.scope === "string") {
    scope = scopes.get(claims);
    if (!scope) {
      const set = new Set<Permission>();
      for (const p of claims.scope.split(" ")) if (isPermission(p)) set.add(p);
      scopes.set(claims, (scope = set));
    }
  }
  const orgId = typeof claims.org === "string" ? claims.org : undefined;
  // an exchanged API key's id (never a secret): the token dies with the key
  const sourceKeyId = typeof claims.key_id === "string" ? claims.key_id : undefined;
  if (claims.sub.startsWith("sa_")) return { kind: "service_account", serviceAccountId: claims.sub, orgId: orgId ?? "", tokenId: claims.jti, scope, sourceKeyId };
  const p: UserPrincipal = { kind: "user", userId: claims.sub, sessionId: claims.sid, tokenId: claims.jti };
  if (orgId !== undefined) p.orgId = orgId;
  if (scope) p.scope = scope;
  if (sourceKeyId !== undefined) p.sourceKeyId = sourceKeyId;
  if (claims.act !== undefined) p.impersonation = impersonationOf(claims);
  return p;
}

const impersonations = new WeakMap<AccessClaims, Impersonation>();

/**
 * The impersonation an access token's `act` claim names (RFC 8693 §4.1: `act.sub` is the actor; Plinth adds `imp`,
 * the record's id, and `basis`). Only Plinth signs tokens this is read from, so a malformed one is a bug: it is read
 * as an impersonation that no record matches, which the checker refuses.
 */
function impersonationOf(claims: AccessClaims): Impersonation {
  let imp = impersonations.get(claims);
  if (!imp) {
    const act = claims.act as { sub?: unknown; imp?: unknown; basis?: unknown } | null;
    imp = {
      id: typeof act?.imp === "string" ? act.imp : "",
      actorId: typeof act?.sub === "string" ? act.sub : "",
      basis: act?.basis === "org_owner" ? "org_owner" : "platform_admin",
    };
    impersonations.set(claims, imp);
  }
  return imp;
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * The authenticated user of a `user` route. An API key is refused here (401, "needs a signed-in user"): routes about
 * the account itself (/v1/me, sessions, creating orgs) are for people, not keys; org-scoped routes use requireTenant.
 */
export function requireUser(request: FastifyRequest): UserPrincipal {
  const p = request.principal;
  // an exchanged token (org-bound, narrowed) acts only within its org's routes, never on the account itself
  if (!p || p.kind !== "user" || p.orgId !== undefined || p.scope) throw platformError("UNAUTHENTICATED", "This route needs a signed-in user.");
  // someone acting as the user may look at the account, never change it (password, sessions, profile, new orgs)
  if (p.impersonation && !SAFE_METHODS.has(request.method)) {
    throw platformError("FORBIDDEN", "An impersonation may read this account but not change it; sign in as yourself.", { extra: { reason: "impersonation" } });
  }
  return p;
}

/**
 * Refuses an impersonation on routes that hand out a lasting secret (API keys, their rotation, OAuth clients): what
 * someone acting as a user obtains must end with the impersonation.
 */
export function refuseImpersonation(request: FastifyRequest, what: string): void {
  const p = request.principal;
  if (p?.kind === "user" && p.impersonation) {
    throw platformError("FORBIDDEN", `An impersonation cannot ${what}: it would outlive the impersonation. Sign in as yourself.`, { extra: { reason: "impersonation" } });
  }
}

/** The request facts services record (login history, security events). */
export function requestMeta(request: FastifyRequest) {
  const ua = request.headers["user-agent"];
  return { ip: request.ip, userAgent: typeof ua === "string" ? ua.slice(0, 512) : null, requestId: request.id };
}
