import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import { OrgIdParams, bearerSecurity, errors } from "../../http/schemas.ts";
import { ALL_PERMISSIONS, BUILT_IN_ROLES, PERMISSIONS, type BuiltInRole } from "./permissions.ts";

const Role = Type.Object({
  name: Type.String({ description: "owner, admin, developer, viewer (custom roles: later)" }),
  built_in: Type.Boolean(),
  description: Type.String(),
  permissions: Type.Array(Type.String(), { description: "resource:action names" }),
});

export function accessRoutes(): FastifyPluginAsyncTypebox {
  const tags = ["access"];
  return async (app) => {
    app.get("/v1/permissions", {
      schema: {
        operationId: "listPermissions",
        tags,
        summary: "Every permission a role can hold",
        security: bearerSecurity,
        response: { 200: Type.Object({ items: Type.Array(Type.Object({ name: Type.String({ description: "resource:action" }), description: Type.String() })) }), ...errors(401) },
      },
    }, async () => ({ items: ALL_PERMISSIONS.map((name) => ({ name, description: PERMISSIONS[name] })) }));

    app.get("/v1/orgs/:orgId/roles", {
      config: { permission: "roles:read" },
      schema: {
        operationId: "listRoles",
        tags,
        summary: "The roles of an organization and their permissions",
        security: bearerSecurity,
        params: OrgIdParams,
        response: { 200: Type.Object({ items: Type.Array(Role) }), ...errors(400, 401, 403, 404) },
      },
    }, async () => ({
      items: (Object.keys(BUILT_IN_ROLES) as BuiltInRole[]).map((name) => ({
        name,
        built_in: true,
        description: BUILT_IN_ROLES[name].description,
        permissions: [...BUILT_IN_ROLES[name].permissions],
      })),
    }));
  };
}
