import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import { requireTenant } from "../../http/tenant.ts";
import { BODY_ERRORS, Cursor, OrgIdParams, Limit, Timestamp, bearerSecurity, decodeCursor, encodeCursor, errors } from "../../http/schemas.ts";
import { platformError } from "../../lib/errors.ts";
import { idPattern } from "../../lib/ids.ts";
import { actorOf } from "../audit/audit.http.ts";
import type { MemberRow } from "./members.repo.ts";
import type { MembersService } from "./members.service.ts";
import { RoleName } from "./roles.routes.ts";

const Member = Type.Object({
  user_id: Type.String({ description: "usr_… id" }),
  name: Type.String({ description: "The user's display name" }),
  email: Type.String({ description: "The user's sign-in email" }),
  role: Type.String({ description: "owner, admin, developer, viewer, or the name of a custom role" }),
  joined_at: Timestamp("When the user joined the organization"),
  teams: Type.Array(
    Type.Object({ id: Type.String({ description: "team_… id" }), name: Type.String(), role: Type.String({ description: "maintainer or member" }) }),
    { description: "The teams of this organization the member is in" },
  ),
});

const MemberParams = Type.Object(
  { orgId: OrgIdParams.properties.orgId, userId: Type.String({ pattern: idPattern("user"), description: "usr_… id of the member" }) },
  { additionalProperties: false },
);

function toMember(m: MemberRow) {
  return { user_id: m.userId, name: m.name, email: m.email, role: m.role, joined_at: m.joinedAt.toISOString(), teams: m.teams };
}

// created_at to the microsecond, then the user id: a position in the (joined_at, user_id) order
const CURSOR = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)\|(usr_[0-9a-hjkmnp-tv-z]{26})$/;

export function membersRoutes(s: { members: MembersService }): FastifyPluginAsyncTypebox {
  const tags = ["members"];
  return async (app) => {
    app.get("/v1/orgs/:orgId/members", {
      config: { permission: "members:read" },
      schema: {
        operationId: "listMembers",
        tags,
        summary: "The organization's members, in the order they joined",
        security: bearerSecurity,
        params: OrgIdParams,
        querystring: Type.Object(
          {
            role: Type.Optional({ ...RoleName, description: "Only members with this role" }),
            q: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: "Case-insensitive part of a name or email" })),
            cursor: Type.Optional(Cursor),
            limit: Type.Optional(Limit),
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ items: Type.Array(Member), next_cursor: Type.Union([Type.String(), Type.Null()], { description: "Cursor of the next page, or null at the end" }) }), ...errors(400, 401, 403, 404) },
      },
    }, async (req) => {
      const { orgId } = requireTenant(req);
      const limit = req.query.limit ?? 50;
      const raw = decodeCursor(req.query.cursor);
      const at = raw === undefined ? undefined : CURSOR.exec(raw);
      if (at === null) throw platformError("VALIDATION_FAILED", "cursor is not a next_cursor of this list.", { field: "cursor" });
      const rows = await s.members.list(orgId, { role: req.query.role, q: req.query.q, after: at ? { position: at[1], userId: at[2] } : undefined }, limit + 1);
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      return { items: page.map(toMember), next_cursor: rows.length > limit ? encodeCursor(`${last.position}|${last.userId}`) : null };
    });

    app.get("/v1/orgs/:orgId/members/:userId", {
      config: { permission: "members:read" },
      schema: {
        operationId: "getMember",
        tags,
        summary: "One member of the organization",
        security: bearerSecurity,
        params: MemberParams,
        response: { 200: Member, ...errors(400, 401, 403, 404) },
      },
    }, async (req) => toMember(await s.members.get(requireTenant(req).orgId, req.params.userId)));

    app.patch("/v1/orgs/:orgId/members/:userId", {
      config: { permission: "members:update" },
      schema: {
        operationId: "changeMemberRole",
        tags,
        summary: "Change a member's role",
        description:
          "Nobody changes their own role (403 CANNOT_CHANGE_OWN_ROLE). Only owners change owners or make owners (403 OWNER_ONLY). " +
          "The caller must hold every permission of the member's current role and of the new one (403 ROLE_ABOVE_OWN naming the first missing permission). " +
          "The last owner keeps the role (409 LAST_OWNER). Audited as member.role_changed; the member's access changes with their next request.",
        security: bearerSecurity,
        params: MemberParams,
        body: Type.Object({ role: { ...RoleName, description: "A built-in role or a custom role of this organization" } }, { additionalProperties: false }),
        response: { 200: Member, ...errors(...BODY_ERRORS, 401, 403, 404, 409) },
      },
    }, async (req) => toMember(await s.members.changeRole(requireTenant(req), req.params.userId, req.body.role, actorOf(req))));

    app.delete("/v1/orgs/:orgId/members/:userId", {
      config: { permission: "members:remove" },
      schema: {
        operationId: "removeMember",
        tags,
        summary: "Remove a member; their access to the organization ends at once",
        description:
          "Removes the membership, the member's teams in the organization, the grants and peer grants held by them there, and the " +
          "sign-in sessions opened for this organization. Only owners remove owners (403 OWNER_ONLY); the caller must hold every " +
          "permission of the member's role (403 ROLE_ABOVE_OWN); the last owner stays (409 LAST_OWNER). Removing yourself is " +
          "leaving (member.left); otherwise audited as member.removed.",
        security: bearerSecurity,
        params: MemberParams,
        response: { 204: Type.Null({ description: "Removed" }), ...errors(400, 401, 403, 404, 409) },
      },
    }, async (req, reply) => {
      await s.members.remove(requireTenant(req), req.params.userId, actorOf(req));
      return reply.code(204).send(null);
    });

    app.post("/v1/orgs/:orgId/leave", {
      // Membership is all it takes: a member whose (custom) role lacks even org:read may still leave, so the handler,
      // not the hook, decides, and it needs nothing beyond the membership the hook has already resolved.
      config: { permission: "org:read", resourceCheck: true },
      schema: {
        operationId: "leaveOrg",
        tags,
        summary: "Leave the organization",
        description:
          "Needs nothing but membership. Ends the caller's membership as removal would (teams, grants, sessions for this organization). The last owner cannot leave " +
          "(409 LAST_OWNER): make another member owner first. Audited as member.left.",
        security: bearerSecurity,
        params: OrgIdParams,
        response: { 204: Type.Null({ description: "Left" }), ...errors(400, 401, 403, 404, 409) },
      },
    }, async (req, reply) => {
      await s.members.leave(requireTenant(req), actorOf(req));
      return reply.code(204).send(null);
    });
  };
}
