import type { FastifyRequest } from "fastify";
import { platformError } from "../../lib/errors.ts";
import type { AuditActor } from "../audit/audit.service.ts";
import type { OrgMembership } from "./access.service.ts";
import type { Permission } from "./permissions.ts";
import { isPersonSelf, type Principal, type UserPrincipal } from "./principal.ts";

/**
 * What a route handler asks of the request about its caller: the access module's public surface for routes. The
 * request spine (http/) fills `principal` and `tenant`; handlers read them only through these functions.
 */
declare module "fastify" {
  interface FastifyRequest {
    principal?: Principal;
    tenant?: OrgMembership;
  }
  interface FastifyContextConfig {
    /** How a route authenticates: every /v1 route defaults to `user` and must opt out with `none`. */
    auth?: "user" | "none";
    /** The permission an org-scoped route needs; every `/v1/orgs/:orgId/…` route must name one. */
    permission?: Permission;
    /**
     * The handler decides instead of the hook, because `permission` can also be held on the one resource the route
     * touches (a team maintainer updating their team without teams:update). The handler must call access.require.
     */
    resourceCheck?: boolean;
    /**
     * The route hands out authority that outlives the request (an invitation, a role, a grant, a key, a service
     * account, a client, a service key): an impersonation token is refused, since what someone acting as a user
     * obtains must end with the impersonation.
     */
    mintsAuthority?: boolean;
    /**
     * The route acts on the person rather than the org (leaving it): only the person, signed in as themselves — no
     * API key, exchanged token, impersonation or machine.
     */
    personOnly?: boolean;
  }
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * The signed-in user of an account route (/v1/me, sessions, creating orgs). API keys, exchanged (scoped) tokens and
 * machines are refused (401, "needs a signed-in user"); someone acting as the user may look at the account, never
 * change it. A session opened for one org is still the person's own session here.
 */
export function requireUser(request: FastifyRequest): UserPrincipal {
  const p = request.principal;
  // an exchanged token, or an impersonation bound to one org, acts only within that org's routes
  const orgOnly = p?.kind === "user" && p.orgId !== undefined && (p.impersonation !== undefined || p.sessionId === undefined);
  if (p?.kind !== "user" || p.scope !== undefined || orgOnly) throw platformError("UNAUTHENTICATED", "This route needs a signed-in user.");
  if (p.impersonation && !SAFE_METHODS.has(request.method)) {
    throw platformError("FORBIDDEN", "An impersonation may read this account but not change it; sign in as yourself.", { extra: { reason: "impersonation" } });
  }
  return p;
}

/** The person themselves, signed in, not through an impersonation (starting or ending impersonations). */
export function requirePerson(request: FastifyRequest, what: string): UserPrincipal {
  const p = requireUser(request);
  if (!isPersonSelf(p)) throw platformError("FORBIDDEN", `An impersonation cannot ${what}; sign in as yourself.`, { extra: { reason: "impersonation" } });
  return p;
}

/** The caller's membership in the route's org (the tenant hook guarantees one on org-scoped routes). */
export function requireTenant(request: FastifyRequest): OrgMembership {
  if (!request.tenant) throw platformError("NOT_FOUND", "No such organization.");
  return request.tenant;
}

/** The request facts services record (login history, security events). */
export function requestMeta(request: FastifyRequest) {
  const ua = request.headers["user-agent"];
  return { ip: request.ip, userAgent: typeof ua === "string" ? ua.slice(0, 512) : null, requestId: request.id };
}

/**
 * The audit actor of a request: its principal and where it came from. An impersonation records both people; an
 * action through a token exchanged from an API key records the key (`keyId`).
 */
export function actorOf(request: FastifyRequest): AuditActor {
  const meta = requestMeta(request);
  const p = request.principal;
  const who = !p
    ? { type: "system" as const, id: null }
    : p.kind === "api_key"
      ? { type: "api_key" as const, id: p.keyId }
      : p.kind === "service_account"
        ? { type: "service_account" as const, id: p.serviceAccountId }
        : p.kind === "service"
          ? { type: "service" as const, id: p.serviceKeyId }
          : { type: "user" as const, id: p.userId };
  const impersonatorId = p?.kind === "user" && p.impersonation ? p.impersonation.actorId : null;
  const keyId = p && p.kind !== "api_key" && p.kind !== "service" ? (p.sourceKeyId ?? null) : null;
  return { ...who, impersonatorId, keyId, ip: meta.ip, userAgent: meta.userAgent, requestId: meta.requestId };
}
