import type { FastifyInstance, FastifyRequest } from "fastify";
import { platformError } from "../lib/errors.ts";
import { addRouteHook } from "./route-hooks.ts";
import { isId } from "../lib/ids.ts";
import type { AccessService } from "../modules/access/access.service.ts";
import type { Permission } from "../modules/access/permissions.ts";
import { holderOf, isPersonSelf, isPlainUser, type Principals } from "../modules/access/principal.ts";
import "../modules/access/request.ts";

/**
 * The tenant step of the request spine, after authentication: an org-scoped route resolves the org from the path,
 * asks the access module what the caller may do there (a stranger, or a deleted org, answers 404, never 403), then
 * for the route's permission (403 naming it). Routes that hand out lasting authority refuse impersonation tokens;
 * routes that act on the person refuse every credential but the person's own sign-in. The rules are the access
 * module's; this is the shell that applies them to each request.
 */
export function installTenant(app: FastifyInstance, access: Pick<AccessService, "membership" | "decide">, principals: Pick<Principals, "membershipOf">): void {
  app.decorateRequest("tenant", undefined);
  app.addHook("onRoute", (route) => {
    if (!route.url.startsWith("/v1/orgs/:orgId")) return;
    const permission = route.config?.permission;
    if (!permission) throw new Error(`route ${route.method} ${route.url} is org-scoped but names no permission`);
    // published in the OpenAPI document, so clients and the isolation suite know what each route needs
    route.schema = {
      ...route.schema,
      "x-permission": permission,
      ...(route.config?.mintsAuthority ? { "x-mints-authority": true } : {}),
      ...(route.config?.personOnly ? { "x-person-only": true } : {}),
    } as typeof route.schema;
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
    const membership = isPlainUser(principal) ? await access.membership(orgId, principal.userId) : await principals.membershipOf(principal, orgId);
    if (!membership) throw notFound();
    request.tenant = membership;
    const config = request.routeOptions.config;
    if (config.personOnly && !isPersonSelf(principal)) {
      throw platformError(
        "FORBIDDEN",
        "This acts on you rather than the organization: sign in as yourself (not with an API key, an exchanged token or an impersonation).",
        { extra: { reason: "person_only" } },
      );
    }
    if (config.mintsAuthority && principal.kind === "user" && principal.impersonation) {
      throw platformError(
        "FORBIDDEN",
        "An impersonation cannot hand out lasting authority (invitations, roles, grants, keys, accounts): it would outlive the impersonation. Sign in as yourself.",
        { extra: { reason: "impersonation" } },
      );
    }
    if (config.resourceCheck) return;
    const permission = config.permission as Permission;
    const decision = access.decide(membership, permission);
    if (!decision.allowed) {
      throw platformError("FORBIDDEN", `This needs the ${permission} permission, which ${holderOf(principal, membership)} does not have.`, {
        extra: { permission },
      });
    }
  }
}
