import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import { requireTenant } from "../access/request.ts";
import { BODY_ERRORS, bearerSecurity, errors } from "../../http/schemas.ts";
import { idCursor, page, pageRequest } from "../../lib/pagination.ts";
import { actorOf } from "../access/request.ts";
import type { TeamMembersService } from "./teams.members.service.ts";
import { ListMembersQuery, PutMemberBody, TeamMember, TeamMemberPage, TeamMemberParams, TeamParams } from "./teams.schemas.ts";

export function teamMembersRoutes(s: { members: TeamMembersService }): FastifyPluginAsyncTypebox {
  const tags = ["teams"];
  return async (app) => {
    app.get(
      "/v1/orgs/:orgId/teams/:teamId/members",
      {
        config: { permission: "teams:read", resourceCheck: true },
        schema: {
          operationId: "listTeamMembers",
          tags,
          summary: "A team's direct members and their team roles, by user id",
          description: "For members with teams:read, and for the team's own members. Members of sub-teams are listed on their own teams.",
          security: bearerSecurity,
          params: TeamParams,
          querystring: ListMembersQuery,
          response: { 200: TeamMemberPage, ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => {
        const { limit, fetch, cursor } = pageRequest(req.query, idCursor("user"));
        return page(await s.members.list(requireTenant(req), req.params.teamId, { after: cursor, limit: fetch }), limit, (m) => m.user_id);
      },
    );

    app.put(
      "/v1/orgs/:orgId/teams/:teamId/members/:userId",
      {
        config: { mintsAuthority: true, permission: "teams:update", resourceCheck: true },
        schema: {
          operationId: "putTeamMember",
          tags,
          summary: "Add a member of the organization to the team, or change their team role",
          description:
            "teams:update, or maintainer of the team or of a team above it. 201 when added (team.member_added), 200 when the role changed " +
            "(team.member_role_changed) or already was the one asked for (nothing audited).",
          security: bearerSecurity,
          params: TeamMemberParams,
          body: PutMemberBody,
          response: { 200: TeamMember, 201: TeamMember, ...errors(...BODY_ERRORS, 401, 403, 404) },
        },
      },
      async (req, reply) => {
        const r = await s.members.put(requireTenant(req), req.params.teamId, req.params.userId, req.body.role, actorOf(req));
        return reply.code(r.created ? 201 : 200).send(r.member);
      },
    );

    app.delete(
      "/v1/orgs/:orgId/teams/:teamId/members/:userId",
      {
        config: { permission: "teams:update", resourceCheck: true },
        schema: {
          operationId: "removeTeamMember",
          tags,
          summary: "Take a user out of the team",
          description: "teams:update, or maintainer of the team or of a team above it. Audited as team.member_removed; takes effect on the next request.",
          security: bearerSecurity,
          params: TeamMemberParams,
          response: { 204: Type.Null({ description: "Removed" }), ...errors(400, 401, 403, 404) },
        },
      },
      async (req, reply) => {
        await s.members.remove(requireTenant(req), req.params.teamId, req.params.userId, actorOf(req));
        return reply.code(204).send(null);
      },
    );
  };
}
