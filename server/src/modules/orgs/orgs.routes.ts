import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import { requireUser } from "../access/request.ts";
import { bearerSecurity, errors, Timestamp } from "../../http/schemas.ts";
import type { OrgsService } from "./orgs.service.ts";

const OrgMembership = Type.Object({
  id: Type.String({ description: "org_… id" }),
  name: Type.String({ description: "Organization name" }),
  slug: Type.String({ description: "Unique, URL-safe handle" }),
  personal: Type.Boolean({ description: "The user's personal organization, made at sign-up" }),
  role: Type.String({ description: "The caller's role in it (owner, admin, developer, viewer or custom)" }),
  created_at: Timestamp("When the organization was created"),
});

export function orgsRoutes(s: { orgs: OrgsService }): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      "/v1/orgs",
      {
        schema: {
          operationId: "listMyOrgs",
          tags: ["orgs"],
          summary: "The organizations I belong to, with my role in each",
          security: bearerSecurity,
          response: { 200: Type.Object({ items: Type.Array(OrgMembership) }), ...errors(401) },
        },
      },
      async (req) => {
        const rows = await s.orgs.listMyOrgs(requireUser(req).userId);
        return {
          items: rows.map((r) => ({
            id: r.org.id,
            name: r.org.name,
            slug: r.org.slug,
            personal: r.org.personal,
            role: r.role,
            created_at: r.org.createdAt.toISOString(),
          })),
        };
      },
    );
  };
}
