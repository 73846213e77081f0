import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import { requireTenant } from "../access/request.ts";
import { BODY_ERRORS, NullableTimestamp, OrgIdParams, bearerSecurity, errors } from "../../http/schemas.ts";
import { idPattern } from "../../lib/ids.ts";
import { ALL_PERMISSIONS } from "../access/permissions.ts";
import { actorOf } from "../access/request.ts";
import type { RolesService, RoleView } from "./roles.service.ts";

export const RoleName = Type.String({
  minLength: 2,
  maxLength: 40,
  pattern: "^[a-z][a-z0-9_-]{1,39}$",
  description: "Role name: a-z first, then a-z, 0-9, _ and -",
});

const Role = Type.Object({
  id: Type.Union([Type.String(), Type.Null()], { description: "rol_… id of a custom role; null for a built-in one" }),
  name: Type.String({ description: "owner, admin, developer, viewer, or the custom role's name (fixed once created)" }),
  built_in: Type.Boolean({ description: "A built-in role, the same in every organization" }),
  description: Type.String(),
  permissions: Type.Array(Type.String(), { description: "resource:action names, in catalog order" }),
  member_count: Type.Integer({ description: "Members holding the role" }),
  created_at: NullableTimestamp("When the custom role was created; null for built-in roles"),
  updated_at: NullableTimestamp("Last change to the custom role; null for built-in roles"),
});

const Permissions = Type.Array(Type.Enum(ALL_PERMISSIONS, { description: "A permission of the catalog (GET /v1/permissions)" }), {
  minItems: 1,
  maxItems: ALL_PERMISSIONS.length,
  uniqueItems: true,
  description: "The role's permissions, each of which you must hold yourself",
});
const Description = Type.String({ maxLength: 500, description: "What the role is for" });

const RoleParams = Type.Object(
  { orgId: OrgIdParams.properties.orgId, roleId: Type.String({ pattern: idPattern("role"), description: "rol_… id of a custom role" }) },
  { additionalProperties: false },
);

function toRole(r: RoleView) {
  return {
    id: r.id,
    name: r.name,
    built_in: r.builtIn,
    description: r.description,
    permissions: r.permissions,
    member_count: r.memberCount,
    created_at: r.createdAt?.toISOString() ?? null,
    updated_at: r.updatedAt?.toISOString() ?? null,
  };
}

/** The org's roles: built-in and custom. */
export function rolesRoutes(s: { roles: RolesService }): FastifyPluginAsyncTypebox {
  const tags = ["roles"];
  return async (app) => {
    app.get(
      "/v1/orgs/:orgId/roles",
      {
        config: { permission: "roles:read" },
        schema: {
          operationId: "listRoles",
          tags,
          summary: "The organization's roles, built-in then custom, with their permissions and holders",
          security: bearerSecurity,
          params: OrgIdParams,
          response: { 200: Type.Object({ items: Type.Array(Role) }), ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => ({ items: (await s.roles.list(requireTenant(req).orgId)).map(toRole) }),
    );

    app.post(
      "/v1/orgs/:orgId/roles",
      {
        config: { mintsAuthority: true, permission: "roles:manage" },
        schema: {
          operationId: "createRole",
          tags,
          summary: "Create a custom role",
          description:
            "Every permission must be one you hold yourself (403 PERMISSION_NOT_HELD naming it). A built-in or existing name answers " +
            "409 ROLE_NAME_TAKEN. At most 100 custom roles per organization. Audited as role.created.",
          security: bearerSecurity,
          params: OrgIdParams,
          body: Type.Object({ name: RoleName, description: Type.Optional(Description), permissions: Permissions }, { additionalProperties: false }),
          response: { 201: Role, ...errors(...BODY_ERRORS, 401, 403, 404, 409) },
        },
      },
      async (req, reply) => reply.code(201).send(toRole(await s.roles.create(requireTenant(req), req.body, actorOf(req)))),
    );

    app.get(
      "/v1/orgs/:orgId/roles/:roleId",
      {
        config: { permission: "roles:read" },
        schema: {
          operationId: "getRole",
          tags,
          summary: "One custom role",
          security: bearerSecurity,
          params: RoleParams,
          response: { 200: Role, ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => toRole(await s.roles.get(requireTenant(req).orgId, req.params.roleId)),
    );

    app.patch(
      "/v1/orgs/:orgId/roles/:roleId",
      {
        config: { mintsAuthority: true, permission: "roles:manage" },
        schema: {
          operationId: "updateRole",
          tags,
          summary: "Change a custom role's description or permissions",
          description:
            "The name is fixed. `permissions` replaces the set; any permission added must be one you hold (403 PERMISSION_NOT_HELD). " +
            "Every member holding the role has the new permissions from their next request. Audited as role.updated with before and after.",
          security: bearerSecurity,
          params: RoleParams,
          body: Type.Object(
            { description: Type.Optional(Description), permissions: Type.Optional(Permissions) },
            { additionalProperties: false, minProperties: 1 },
          ),
          response: { 200: Role, ...errors(...BODY_ERRORS, 401, 403, 404) },
        },
      },
      async (req) => toRole(await s.roles.update(requireTenant(req), req.params.roleId, req.body, actorOf(req))),
    );

    app.delete(
      "/v1/orgs/:orgId/roles/:roleId",
      {
        config: { permission: "roles:manage" },
        schema: {
          operationId: "deleteRole",
          tags,
          summary: "Delete a custom role nobody holds",
          description: "A role held by members or offered by pending invitations answers 409 ROLE_IN_USE, saying by how many. Audited as role.deleted.",
          security: bearerSecurity,
          params: RoleParams,
          response: { 204: Type.Null({ description: "Deleted" }), ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (req, reply) => {
        await s.roles.delete(requireTenant(req), req.params.roleId, actorOf(req));
        return reply.code(204).send(null);
      },
    );
  };
}
