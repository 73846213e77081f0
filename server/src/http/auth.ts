import type { FastifyInstance, FastifyRequest } from "fastify";
import { platformError } from "../lib/errors.ts";
import { addRouteHook } from "./route-hooks.ts";
import type { SigningKeys } from "../modules/keys/signing-keys.ts";

/** Who is calling. More kinds (API key, service account, share link, runner) arrive with their issues. */
export type Principal = { kind: "user"; userId: string; sessionId?: string; tokenId?: string };

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

// The scheme name is case-insensitive (RFC 9110 §11.1).
const BEARER = /^Bearer +([A-Za-z0-9._~+/=-]{1,8192}) *$/i;

/**
 * Authenticates every /v1 route that does not say `auth: "none"`: secure unless a route opts out. The hook is
 * attached per route at registration, so public routes pay nothing. Call before any route is registered.
 */
export function installAuth(app: FastifyInstance, keys: Pick<SigningKeys, "verify">): void {
  app.decorateRequest("principal", undefined);
  app.addHook("onRoute", (route) => {
    const mode = route.config?.auth ?? (route.url.startsWith("/v1/") ? "user" : "none");
    if (mode === "user") addRouteHook(route, "onRequest", authenticate);
  });
  async function authenticate(request: FastifyRequest): Promise<void> {
    const header = request.headers.authorization;
    if (!header) throw platformError("UNAUTHENTICATED", "Send an access token: Authorization: Bearer <token>.");
    const m = BEARER.exec(header);
    if (!m) throw platformError("INVALID_TOKEN", "The Authorization header must be 'Bearer <token>'.");
    const result = await keys.verify(m[1]);
    if (!result.ok) {
      throw result.reason === "expired"
        ? platformError("INVALID_TOKEN", "The access token has expired; refresh it.", { extra: { reason: "expired" } })
        : platformError("INVALID_TOKEN", "The access token is invalid.", { extra: { reason: result.reason } });
    }
    request.principal = { kind: "user", userId: result.claims.sub, sessionId: result.claims.sid, tokenId: result.claims.jti };
  }
}

/** The authenticated user of a `user` route (the hook guarantees one). */
export function requireUser(request: FastifyRequest): Extract<Principal, { kind: "user" }> {
  const p = request.principal;
  if (!p || p.kind !== "user") throw platformError("UNAUTHENTICATED", "This route needs a signed-in user.");
  return p;
}

/** The request facts services record (login history, security events). */
export function requestMeta(request: FastifyRequest) {
  const ua = request.headers["user-agent"];
  return { ip: request.ip, userAgent: typeof ua === "string" ? ua.slice(0, 512) : null, requestId: request.id };
}
