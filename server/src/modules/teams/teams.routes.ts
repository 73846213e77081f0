import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import { requireTenant } from "../access/request.ts";
import { BODY_ERRORS, OrgIdParams, bearerSecurity, errors } from "../../http/schemas.ts";
import { idCursor, page, pageRequest } from "../../lib/pagination.ts";
import { actorOf } from "../access/request.ts";
import type { TeamsService } from "./teams.service.ts";
import {
  CreateTeamBody,
  DeleteTeamQuery,
  ListTeamsQuery,
  MoveTeamBody,
  Team,
  TeamDetail,
  TeamPage,
  TeamParams,
  TeamTree,
  UpdateTeamBody,
} from "./teams.schemas.ts";

export function teamsRoutes(s: { teams: TeamsService }): FastifyPluginAsyncTypebox {
  const tags = ["teams"];
  return async (app) => {
    app.post(
      "/v1/orgs/:orgId/teams",
      {
        config: { permission: "teams:create" },
        schema: {
          operationId: "createTeam",
          tags,
          summary: "Create a team; you become its maintainer",
          description:
            "With parent_id the team goes under that team, which you must administer (teams:update, or maintainer of it or of a team above it). " +
            "Teams nest at most 10 deep. Audited as team.created.",
          security: bearerSecurity,
          params: OrgIdParams,
          body: CreateTeamBody,
          response: { 201: Team, ...errors(...BODY_ERRORS, 401, 403, 404, 409) },
        },
      },
      async (req, reply) => reply.code(201).send(await s.teams.create(requireTenant(req), req.body, actorOf(req))),
    );

    app.get(
      "/v1/orgs/:orgId/teams",
      {
        config: { permission: "teams:read" },
        schema: {
          operationId: "listTeams",
          tags,
          summary: "The org's teams as a flat list, in creation order",
          description: "Every team by default; parent_id=root for the top-level teams, parent_id=team_… for one team's direct children.",
          security: bearerSecurity,
          params: OrgIdParams,
          querystring: ListTeamsQuery,
          response: { 200: TeamPage, ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => {
        const { orgId } = requireTenant(req);
        const q = req.query;
        const { limit, fetch, cursor } = pageRequest(q, idCursor("team"));
        const parent = q.parent_id === undefined ? undefined : q.parent_id === "root" ? null : q.parent_id;
        return page(await s.teams.list(orgId, { parent, after: cursor, limit: fetch }), limit, (t) => t.id);
      },
    );

    app.get(
      "/v1/orgs/:orgId/teams/tree",
      {
        config: { permission: "teams:read" },
        schema: {
          operationId: "getTeamTree",
          tags,
          summary: "The whole team hierarchy, nested",
          description: "Top-level teams in items, each team's sub-teams in its children; siblings by name.",
          security: bearerSecurity,
          params: OrgIdParams,
          querystring: Type.Object({}, { additionalProperties: false }),
          response: { 200: TeamTree, ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => s.teams.tree(requireTenant(req).orgId),
    );

    app.get(
      "/v1/orgs/:orgId/teams/:teamId",
      {
        config: { permission: "teams:read", resourceCheck: true },
        schema: {
          operationId: "getTeam",
          tags,
          summary: "A team with its member count and ancestors",
          description: "For members with teams:read, and for the team's own members.",
          security: bearerSecurity,
          params: TeamParams,
          response: { 200: TeamDetail, ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => s.teams.get(requireTenant(req), req.params.teamId),
    );

    app.patch(
      "/v1/orgs/:orgId/teams/:teamId",
      {
        config: { permission: "teams:update", resourceCheck: true },
        schema: {
          operationId: "updateTeam",
          tags,
          summary: "Rename a team or change its description",
          description: "teams:update, or maintainer of the team or of a team above it. Audited as team.updated with the changed fields.",
          security: bearerSecurity,
          params: TeamParams,
          body: UpdateTeamBody,
          response: { 200: Team, ...errors(...BODY_ERRORS, 401, 403, 404, 409) },
        },
      },
      async (req) => s.teams.update(requireTenant(req), req.params.teamId, req.body, actorOf(req)),
    );

    app.post(
      "/v1/orgs/:orgId/teams/:teamId/move",
      {
        config: { permission: "teams:update", resourceCheck: true },
        schema: {
          operationId: "moveTeam",
          tags,
          summary: "Put a team, with everything below it, under another team or at the top level",
          description:
            "You must administer the team and the new parent (teams:update, or maintainer of it or of a team above it); moving to the top level " +
            "(parent_id null) needs teams:update. A move under the team itself or one of its descendants is a cycle (409 TEAM_CYCLE); the deepest " +
            "team of the moved subtree must stay within 10 levels. Audited as team.moved.",
          security: bearerSecurity,
          params: TeamParams,
          body: MoveTeamBody,
          response: { 200: Team, ...errors(...BODY_ERRORS, 401, 403, 404, 409) },
        },
      },
      async (req) => s.teams.move(requireTenant(req), req.params.teamId, req.body.parent_id, actorOf(req)),
    );

    app.delete(
      "/v1/orgs/:orgId/teams/:teamId",
      {
        config: { permission: "teams:delete", resourceCheck: true },
        schema: {
          operationId: "deleteTeam",
          tags,
          summary: "Delete a team, its memberships and every grant to or on it",
          description:
            "teams:delete, or maintainer of the team or of a team above it. A team with sub-teams is refused (409 TEAM_HAS_CHILDREN) unless " +
            "cascade=true, which deletes the whole subtree. Each deleted team is audited as team.deleted.",
          security: bearerSecurity,
          params: TeamParams,
          querystring: DeleteTeamQuery,
          response: {
            200: Type.Object({
              deleted: Type.Array(Type.String(), { description: "Ids of the deleted teams, deepest first" }),
              grants_deleted: Type.Integer({ description: "Grants to or on those teams that went with them" }),
            }),
            ...errors(400, 401, 403, 404, 409),
          },
        },
      },
      async (req) => {
        const r = await s.teams.remove(requireTenant(req), req.params.teamId, { cascade: req.query.cascade ?? false }, actorOf(req));
        return { deleted: r.deleted, grants_deleted: r.grants };
      },
    );
  };
}
