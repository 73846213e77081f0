import type { FastifyInstance, FastifyRequest } from "fastify";
import type { ApiKeyPrincipal, Principal, ServicePrincipal } from "./auth.ts";
import { platformError } from "../lib/errors.ts";
import { addRouteHook } from "./route-hooks.ts";
import { isId } from "../lib/ids.ts";
import type { AccessService, OrgMembership } from "../modules/access/access.service.ts";
import type { Permission } from "../modules/access/permissions.ts";

declare module "fastify" {
  interface FastifyRequest {
    tenant?: OrgMembership;
  }
  interface FastifyContextConfig {
    /** The permission an org-scoped route needs; every `/v1/orgs/:orgId/…` route must name one. */
    permission?: Permission;
    /**
     * The handler decides instead of the hook, because `permission` can also be held on the one resource the route
     * touches (a team maintainer updating their team without teams:update). The handler must call access.require.
     */
    resourceCheck?: boolean;
  }
}

/**
 * The tenant step of the request spine, after authentication: an org-scoped route resolves the org from the path,
 * requires the caller to belong to it (a stranger, or a deleted org, answers 404, never 403), then asks the access
 * engine for the route's permission (403 naming it).
 */
/** Service accounts as members: an account's membership (its roles' permissions), or undefined when disabled or gone. */
export interface ServiceAccountMemberships {
  membership(orgId: string, serviceAccountId: string): Promise<OrgMembership | undefined>;
}

/** The API keys exchanged tokens come from: whether one still works (synchronous for a key this instance knows). */
export interface SourceKeys {
  isLive(orgId: string, keyId: string): boolean | Promise<boolean>;
}

/** Registered services as members: what a service key's token may do in an org (undefined: nothing, answered 404). */
export interface ServiceMemberships {
  membership(principal: ServicePrincipal, orgId: string): OrgMembership | undefined | Promise<OrgMembership | undefined>;
}

export function installTenant(app: FastifyInstance, access: Pick<AccessService, "membership" | "decide">, serviceAccounts?: ServiceAccountMemberships, sourceKeys?: SourceKeys, services?: ServiceMemberships): void {
  app.decorateRequest("tenant", undefined);
  app.addHook("onRoute", (route) => {
    if (!route.url.startsWith("/v1/orgs/:orgId")) return;
    const permission = route.config?.permission;
    if (!permission) throw new Error(`route ${route.method} ${route.url} is org-scoped but names no permission`);
    // published in the OpenAPI document, so clients and the isolation suite know what each route needs
    route.schema = { ...route.schema, "x-permission": permission } as typeof route.schema;
    // attached after authentication (installAuth's onRoute runs first), and only to org-scoped routes
    addRouteHook(route, "onRequest", resolveTenant);
  });
  async function resolveTenant(request: FastifyRequest): Promise<void> {
    const orgId = (request.params as { orgId?: string }).orgId ?? "";
    const principal = request.principal;
    if (!principal) throw platformError("UNAUTHENTICATED", "Sign in first.");
    // built only when thrown: making an Error costs microseconds on every request
    const notFound = () => platformError("NOT_FOUND", `No organization ${orgId.slice(0, 40)} that you belong to.`, { field: "orgId" });
    if (!isId("org", orgId)) throw notFound();
    const membership = principal.kind === "user" && principal.orgId === undefined && !principal.scope && !principal.impersonation
      ? await access.membership(orgId, principal.userId)
      : await membershipOfPrincipal(access, serviceAccounts, principal, orgId, sourceKeys, services);
    if (!membership) throw notFound();
    request.tenant = membership;
    if (request.routeOptions.config.resourceCheck) return;
    const permission = request.routeOptions.config.permission as Permission;
    const decision = access.decide(membership, permission);
    if (!decision.allowed) {
      const holder =
        principal.kind === "api_key" ? "this API key"
        : principal.kind === "service_account" ? "this service account's token"
        : principal.kind === "service" ? `the roles of service ${principal.service}'s key`
        : principal.scope ? "this token's scope"
        : principal.impersonation ? `the impersonated member's role (${membership.role}) within yours`
        : `your role (${membership.role})`;
      throw platformError("FORBIDDEN", `This needs the ${permission} permission, which ${holder} does not have.`, {
        extra: { permission },
      });
    }
  }
}

/**
 * What any principal may do in `orgId` (undefined: nothing, answered as 404). A signed-in user acts as their
 * membership; an exchanged user token as that narrowed to its scope, in its own org only; a service account (by its
 * token) as its roles' permissions now, narrowed to the token's scope, in its own org only, never while disabled.
 * A registered service (its self-signed token) acts as its key's roles, in its key's org, or for a platform-wide key
 * in the org its token names. The token endpoint asks the same question to learn a subject's authority before
 * exchanging it.
 * A token exchanged from an API key works only while the key does: once it is revoked (or expired, or gone) this
 * throws 401 INVALID_TOKEN (reason key_revoked), as the key itself would answer.
 */
export async function membershipOfPrincipal(
  access: Pick<AccessService, "membership">,
  serviceAccounts: ServiceAccountMemberships | undefined,
  principal: Principal,
  orgId: string,
  sourceKeys?: SourceKeys,
  services?: ServiceMemberships,
): Promise<OrgMembership | undefined> {
  if (principal.kind !== "api_key" && principal.kind !== "service" && principal.sourceKeyId !== undefined) {
    // O(1) and no database read for a key this instance saw within its cache lifetime (api-keys.verifier.ts)
    if (!(await (sourceKeys?.isLive(principal.orgId ?? orgId, principal.sourceKeyId) ?? false))) {
      throw platformError("INVALID_TOKEN", "The API key this token was exchanged from no longer works (revoked, expired or gone).", { extra: { reason: "key_revoked" } });
    }
  }
  switch (principal.kind) {
    case "api_key":
      return keyMembershipOf(access, serviceAccounts, principal, orgId);
    case "user": {
      if (principal.orgId !== undefined && principal.orgId !== orgId) return undefined;
      const m = await access.membership(orgId, principal.userId);
      if (m && principal.impersonation?.basis === "org_owner") {
        // an owner acting as a member holds no more than both of them: the member's permissions within the owner's,
        // and nothing once the impersonator is no longer an owner of this org
        const actor = await access.membership(orgId, principal.impersonation.actorId);
        if (!actor || actor.role !== "owner") return undefined;
        const within = narrowed(m, actor.permissions);
        return principal.scope ? narrowed(within, principal.scope) : within;
      }
      return m && principal.scope ? narrowed(m, principal.scope) : m;
    }
    case "service_account": {
      if (principal.orgId !== orgId || !serviceAccounts) return undefined;
      const m = await serviceAccounts.membership(orgId, principal.serviceAccountId);
      return m && principal.scope ? narrowed(m, principal.scope) : m;
    }
    case "service":
      // an org's key acts in its org only; a platform key only in the org its token names
      if (principal.orgId !== orgId || !services) return undefined;
      return services.membership(principal, orgId);
  }
}

/**
 * What an API key may do in an org: nothing outside its own org (another org's path answers 404, as for a stranger);
 * an inheriting key acts as its owner now; any other key as its owner narrowed to the key's permissions (roles and
 * permissions together, never more than the owner holds now), on RBAC alone: the owner's teams do not come along.
 * A key whose owner is no longer a member, or whose service account is disabled or deleted, is refused (404, as the
 * account's own tokens are).
 */
async function keyMembershipOf(
  access: Pick<AccessService, "membership">,
  serviceAccounts: ServiceAccountMemberships | undefined,
  p: ApiKeyPrincipal,
  orgId: string,
): Promise<OrgMembership | undefined> {
  if (p.orgId !== orgId) return undefined;
  const owner = p.ownerType === "user" ? await access.membership(orgId, p.ownerId) : await serviceAccounts?.membership(orgId, p.ownerId);
  if (!owner) return undefined;
  if (p.scope === "inherit") return owner;
  return narrowed(owner, p.scope);
}

/**
 * Narrowed memberships, reused while both the key's scope and the owner's membership are the cached objects (each is
 * replaced when its facts change), so a request with a warm key allocates nothing here.
 */
const narrowedCache = new WeakMap<ReadonlySet<Permission>, WeakMap<OrgMembership, OrgMembership>>();
function narrowed(owner: OrgMembership, scope: ReadonlySet<Permission>): OrgMembership {
  let byOwner = narrowedCache.get(scope);
  if (!byOwner) narrowedCache.set(scope, (byOwner = new WeakMap()));
  let m = byOwner.get(owner);
  if (!m) {
    const permissions = new Set<Permission>();
    for (const p of scope) if (owner.permissions.has(p)) permissions.add(p);
    m = { orgId: owner.orgId, userId: owner.userId, role: owner.role, permissions, rolePermissions: permissions, peer: [], teams: [], teamReach: new Set(), permissionsOnly: true };
    byOwner.set(owner, m);
  }
  return m;
}

/** The caller's membership in the route's org (the tenant hook guarantees one on org-scoped routes). */
export function requireTenant(request: FastifyRequest): OrgMembership {
  if (!request.tenant) throw platformError("NOT_FOUND", "No such organization.");
  return request.tenant;
}
