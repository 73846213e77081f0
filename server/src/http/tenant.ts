import type { FastifyInstance, FastifyRequest } from "fastify";
import type { ApiKeyPrincipal, Principal } from "./auth.ts";
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

export function installTenant(app: FastifyInstance, access: Pick<AccessService, "membership" | "decide">, serviceAccounts?: ServiceAccountMemberships): void {
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
    const notFound = platformError("NOT_FOUND", `No organization ${orgId.slice(0, 40)} that you belong to.`, { field: "orgId" });
    if (!isId("org", orgId)) throw notFound;
    const membership = principal.kind === "user" && principal.orgId === undefined && !principal.scope
      ? await access.membership(orgId, principal.userId)
      : await membershipOfPrincipal(access, serviceAccounts, principal, orgId);
    if (!membership) throw notFound;
    request.tenant = membership;
    if (request.routeOptions.config.resourceCheck) return;
    const permission = request.routeOptions.config.permission as Permission;
    const decision = access.decide(membership, permission);
    if (!decision.allowed) {
      const holder =
        principal.kind === "api_key" ? "this API key"
        : principal.kind === "service_account" ? "this service account's token"
        : principal.scope ? "this token's scope" : `your role (${membership.role})`;
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
 * The token endpoint asks the same question to learn a subject's authority before exchanging it.
 */
export async function membershipOfPrincipal(
  access: Pick<AccessService, "membership">,
  serviceAccounts: ServiceAccountMemberships | undefined,
  principal: Principal,
  orgId: string,
): Promise<OrgMembership | undefined> {
  switch (principal.kind) {
    case "api_key":
      return keyMembershipOf(access, principal, orgId);
    case "user": {
      if (principal.orgId !== undefined && principal.orgId !== orgId) return undefined;
      const m = await access.membership(orgId, principal.userId);
      return m && principal.scope ? narrowed(m, principal.scope) : m;
    }
    case "service_account": {
      if (principal.orgId !== orgId || !serviceAccounts) return undefined;
      const m = await serviceAccounts.membership(orgId, principal.serviceAccountId);
      return m && principal.scope ? narrowed(m, principal.scope) : m;
    }
  }
}

/**
 * What an API key may do in an org: nothing outside its own org (another org's path answers 404, as for a stranger);
 * an inheriting key acts as its owner now; any other key as its owner narrowed to the key's permissions (roles and
 * permissions together, never more than the owner holds now), on RBAC alone: the owner's teams do not come along.
 * A user-owned key whose owner is no longer a member is refused (404).
 */
async function keyMembershipOf(access: Pick<AccessService, "membership">, p: ApiKeyPrincipal, orgId: string): Promise<OrgMembership | undefined> {
  // service-account keys arrive with service accounts
  if (p.orgId !== orgId || p.ownerType !== "user") return undefined;
  const owner = await access.membership(orgId, p.ownerId);
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
