import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from "fastify";
import { AppError, platformError } from "../lib/errors.ts";
import { addRouteHook } from "./route-hooks.ts";
import type { SigningKeys, VerifyResult } from "../modules/keys/signing-keys.ts";
import {
  principalOfClaims,
  type ApiKeyAuthenticator,
  type ApiKeyPrincipal,
  type ImpersonationChecker,
  type ServicePrincipal,
  type ServiceTokenAuthenticator,
  type UserPrincipal,
} from "../modules/access/principal.ts";
import type { Throttle } from "../limits/throttle.ts";
import "../modules/access/request.ts";

/**
 * How a route authenticates: `user` (a valid access token) or `none` (public). Every route under /v1 defaults to
 * `user` and must opt out explicitly; routes outside /v1 (health, metrics, well-known, docs) default to `none`.
 */
export type AuthMode = "user" | "none";

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
export interface AuthSources {
  keys: Pick<SigningKeys, "verify" | "verifyCached">;
  apiKeys?: ApiKeyAuthenticator;
  impersonations?: ImpersonationChecker;
  serviceTokens?: ServiceTokenAuthenticator;
  /** Sessions revoked recently: their access tokens are refused (one Map lookup). */
  revokedSessions?: { isRevoked(sessionId: string): boolean };
  /** Failed credentials per client IP: past the allowance, 429 before any further credential is looked up. */
  failures?: Throttle;
}

export function installAuth(app: FastifyInstance, sources: AuthSources): void {
  const { keys, apiKeys, impersonations, serviceTokens, revokedSessions, failures } = sources;
  /** IPs this instance saw blocked, until when (ms): refused without a look-up or a store round trip. */
  const blockedIps = new Map<string, number>();
  app.decorateRequest("principal", undefined);
  app.addHook("onRoute", (route) => {
    const mode = route.config?.auth ?? (route.url.startsWith("/v1/") ? "user" : "none");
    if (mode === "user") addRouteHook(route, "onRequest", authenticate);
  });
  // Callback style, not async: a token seen before (nearly every request) is settled synchronously, with no promise
  // and no microtask on the hot path; only a first sight of a token waits for the signature check.
  function authenticate(request: FastifyRequest, _reply: FastifyReply, done0: HookHandlerDoneFunction): void {
    // failures are counted per IP; a success costs nothing extra
    const done: HookHandlerDoneFunction = (err?: Error) =>
      err && failures && (err as AppError).status === 401 ? countFailure(request, err, done0) : done0(err);
    const header = request.headers.authorization;
    if (!header) {
      const apiKey = request.headers["x-api-key"];
      if (apiKeys && typeof apiKey === "string") return withApiKey(request, apiKey, done);
      return done(platformError("UNAUTHENTICATED", "Send an access token: Authorization: Bearer <token>."));
    }
    const token = bearerToken(header);
    // API keys start plk_; an access token (a JWT) starts eyJ
    if (apiKeys && token?.startsWith("plk_")) return withApiKey(request, token, done);
    // a cached token is one whose signature this instance checked, so it is well-formed
    const cached = token === undefined ? undefined : keys.verifyCached(token);
    if (cached) return settle(request, admit(request, cached), done);
    if (blocked(request)) return done0(tooManyFailures(request));
    if (token === undefined || !TOKEN.test(token)) return done(platformError("INVALID_TOKEN", "The Authorization header must be 'Bearer <token>'."));
    keys.verify(token).then((result) => {
      // a kid Plinth never signed with may be a registered service's own key
      if (serviceTokens && !result.ok && result.reason === "unknown_key") return withServiceToken(request, token, done);
      settle(request, admit(request, result), done);
    }, done);
  }
  function blocked(request: FastifyRequest): boolean {
    if (!failures || !blockedIps.size) return false;
    const until = blockedIps.get(request.ip);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    blockedIps.delete(request.ip);
    return false;
  }
  function tooManyFailures(request: FastifyRequest, seconds?: number) {
    const s = seconds ?? Math.max(1, Math.ceil(((blockedIps.get(request.ip) ?? Date.now()) - Date.now()) / 1000));
    return platformError("RATE_LIMITED", `Too many failed credentials from this address. Try again in ${s} seconds.`, {
      retryAfter: s,
      extra: { reason: "credential_failures" },
    });
  }
  function countFailure(request: FastifyRequest, err: Error, done: HookHandlerDoneFunction): void {
    (failures as Throttle).hit(request.ip).then(
      (seconds) => {
        if (seconds <= 0) return done(err);
        if (blockedIps.size >= 100_000) blockedIps.delete(blockedIps.keys().next().value as string);
        blockedIps.set(request.ip, Date.now() + seconds * 1000);
        done(tooManyFailures(request, seconds));
      },
      () => done(err),
    );
  }
  function withServiceToken(request: FastifyRequest, token: string, done: HookHandlerDoneFunction): void {
    const result = (serviceTokens as ServiceTokenAuthenticator).authenticate(token);
    if (result instanceof Promise) {
      result.then((r) => done(admitKey(request, r)), done);
      return;
    }
    done(admitKey(request, result));
  }
  /**
   * Done, unless the token's session is revoked (401 session_revoked), or it is an impersonation's: then only once the
   * impersonation is known to be live.
   */
  function settle(request: FastifyRequest, error: AppError | undefined, done: HookHandlerDoneFunction): void {
    const sid = error ? undefined : (request.principal as UserPrincipal).sessionId;
    if (sid !== undefined && revokedSessions?.isRevoked(sid)) {
      return done(
        platformError("INVALID_TOKEN", "The session of this access token has ended (signed out, password changed, or revoked); sign in again.", {
          extra: { reason: "session_revoked" },
        }),
      );
    }
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
    // a blocked address is refused before any look-up, even with a key this instance knows
    if (blocked(request)) return done(tooManyFailures(request));
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
