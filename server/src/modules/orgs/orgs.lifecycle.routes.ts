import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import { requireUser } from "../access/request.ts";
import { requireTenant } from "../access/request.ts";
import { BODY_ERRORS, OrgIdParams, bearerSecurity, errors, NullableTimestamp } from "../../http/schemas.ts";
import { actorOf } from "../access/request.ts";
import type { OrgLifecycleService } from "./orgs.lifecycle.service.ts";
import type { OrgRow } from "./orgs.repo.ts";

/** Where an organization stands in its lifecycle: deleted (with its purge date) or, after a restore, live again. */
const OrgLifecycle = Type.Object({
  id: Type.String({ description: "org_… id" }),
  name: Type.String({ description: "Organization name" }),
  slug: Type.String({ description: "Its slug, reserved while the organization is deleted, freed by the purge" }),
  deleted_at: NullableTimestamp("When it was deleted; null once restored"),
  deleted_by: Type.Union([Type.String(), Type.Null()], { description: "usr_… id of who deleted it; null once restored" }),
  purge_after: NullableTimestamp("Restorable until then, purged afterwards; null once restored"),
});

const DeletedOrgItem = Type.Object({
  ...OrgLifecycle.properties,
  role: Type.String({ description: "The caller's role in it" }),
});

function toLifecycle(o: OrgRow) {
  return {
    id: o.id,
    name: o.name,
    slug: o.slug,
    deleted_at: o.deletedAt?.toISOString() ?? null,
    deleted_by: o.deletedBy,
    purge_after: o.purgeAfter?.toISOString() ?? null,
  };
}

const Gone = Type.Ref("Problem", { description: "The restore window has passed: the organization is being purged" });

/** Deleting an organization, listing the deleted ones the caller may restore, and restoring one. */
export function orgLifecycleRoutes(s: { lifecycle: OrgLifecycleService }): FastifyPluginAsyncTypebox {
  const tags = ["orgs"];
  return async (app) => {
    app.delete(
      "/v1/orgs/:orgId",
      {
        config: { permission: "org:delete" },
        schema: {
          operationId: "deleteOrg",
          tags,
          summary: "Delete an organization (restorable for 30 days)",
          description:
            "Soft delete: the organization is unusable at once (every route under it answers 404 for every member), " +
            "stays restorable by its owners for 30 days (POST /v1/deleted-orgs/{orgId}/restore), and is then purged " +
            "with its members, teams, roles, grants and invitations; its audit log is kept. To guard against " +
            "accidents the body must repeat the organization's slug in `confirm`. A personal organization cannot be " +
            "deleted (409 PERSONAL_ORG). Audited as org.deleted.",
          security: bearerSecurity,
          params: OrgIdParams,
          body: Type.Object(
            { confirm: Type.String({ minLength: 1, maxLength: 48, description: "The organization's slug, typed again to confirm" }) },
            { additionalProperties: false },
          ),
          response: { 200: OrgLifecycle, ...errors(...BODY_ERRORS, 401, 403, 404, 409) },
        },
      },
      async (req) => toLifecycle(await s.lifecycle.deleteOrg(requireTenant(req).orgId, req.body.confirm, actorOf(req))),
    );

    app.get(
      "/v1/deleted-orgs",
      {
        schema: {
          operationId: "listDeletedOrgs",
          tags,
          summary: "Deleted organizations I can still restore",
          description: "Those whose restore window is open and in which my role holds org:delete (owners).",
          security: bearerSecurity,
          response: { 200: Type.Object({ items: Type.Array(DeletedOrgItem) }), ...errors(401) },
        },
      },
      async (req) => {
        const rows = await s.lifecycle.listDeleted(requireUser(req).userId);
        return { items: rows.map((r) => ({ ...toLifecycle(r.org), role: r.role })) };
      },
    );

    app.post(
      "/v1/deleted-orgs/:orgId/restore",
      {
        schema: {
          operationId: "restoreOrg",
          tags,
          summary: "Restore a deleted organization within 30 days",
          description:
            "For a member whose role holds org:delete (owners). Everything comes back as it was; the slug was kept. " +
            "404 when you were not a member or the organization is not deleted; 410 once the restore window has " +
            "passed. Audited as org.restored.",
          security: bearerSecurity,
          params: OrgIdParams,
          response: { 200: OrgLifecycle, ...errors(400, 401, 403, 404), 410: Gone },
        },
      },
      async (req) => toLifecycle(await s.lifecycle.restoreOrg(req.params.orgId, requireUser(req).userId, actorOf(req))),
    );
  };
}
