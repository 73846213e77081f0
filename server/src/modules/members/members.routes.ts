import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import { requireTenant } from "../access/request.ts";
import { BODY_ERRORS, OrgIdParams, Timestamp, bearerSecurity, errors } from "../../http/schemas.ts";
import { Page, page, pageQuery, pageRequest } from "../../lib/pagination.ts";
import { idPattern } from "../../lib/ids.ts";
import { actorOf } from "../access/request.ts";
import type { MemberRow } from "./members.repo.ts";
import type { MembershipEnded, MembersService } from "./members.service.ts";
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

const Ids = (description: string) => Type.Array(Type.String(), { description });

const RemovedMember = Type.Object({
  user_id: Type.String({ description: "usr_… id of the removed member" }),
  role: Type.String({ description: "The role they held" }),
  revoked_api_keys: Ids("key_… ids of the member's own API keys, revoked with the membership"),
  created_credentials: Type.Object(
    {
      oauth_clients: Ids("cli_… ids of live OAuth clients of service accounts the member made (directly or through one of their API keys)"),
      service_account_keys: Ids("key_… ids of live API keys of service accounts the member made"),
      service_keys: Ids("svk_… ids of live service key registrations the member registered"),
      revoked: Type.Boolean({
        description: "true: revoked with the removal (revoke_credentials=true); false: they belong to the organization and keep working",
      }),
    },
    { description: "What the member made for the organization that was still working at the removal" },
  ),
});

function toRemoved(e: MembershipEnded) {
  const c = e.createdCredentials;
  return {
    user_id: e.userId,
    role: e.role,
    revoked_api_keys: e.revokedApiKeys,
    created_credentials: { oauth_clients: c.oauthClients, service_account_keys: c.serviceAccountKeys, service_keys: c.serviceKeys, revoked: c.revoked },
  };
}

const MemberParams = Type.Object(
  { orgId: OrgIdParams.properties.orgId, userId: Type.String({ pattern: idPattern("user"), description: "usr_… id of the member" }) },
  { additionalProperties: false },
);

function toMember(m: MemberRow) {
  return { user_id: m.userId, name: m.name, email: m.email, role: m.role, joined_at: m.joinedAt.toISOString(), teams: m.teams };
}

// created_at to the microsecond, then the user id: a position in the (joined_at, user_id) order
const CURSOR = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)\|(usr_[0-9a-hjkmnp-tv-z]{26})$/;
const memberCursor = (key: string) => {
  const at = CURSOR.exec(key);
  return at ? { position: at[1], userId: at[2] } : undefined;
};

export function membersRoutes(s: { members: MembersService }): FastifyPluginAsyncTypebox {
  const tags = ["members"];
  return async (app) => {
    app.get(
      "/v1/orgs/:orgId/members",
      {
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
              ...pageQuery,
            },
            { additionalProperties: false },
          ),
          response: { 200: Page(Member), ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => {
        const { orgId } = requireTenant(req);
        const { limit, fetch, cursor } = pageRequest(req.query, memberCursor);
        const rows = await s.members.list(orgId, { role: req.query.role, q: req.query.q, after: cursor }, fetch);
        return page(rows, limit, (m) => `${m.position}|${m.userId}`, toMember);
      },
    );

    app.get(
      "/v1/orgs/:orgId/members/:userId",
      {
        config: { permission: "members:read" },
        schema: {
          operationId: "getMember",
          tags,
          summary: "One member of the organization",
          security: bearerSecurity,
          params: MemberParams,
          response: { 200: Member, ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => toMember(await s.members.get(requireTenant(req).orgId, req.params.userId)),
    );

    app.patch(
      "/v1/orgs/:orgId/members/:userId",
      {
        config: { mintsAuthority: true, permission: "members:update" },
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
      },
      async (req) => toMember(await s.members.changeRole(requireTenant(req), req.params.userId, req.body.role, actorOf(req))),
    );

    app.delete(
      "/v1/orgs/:orgId/members/:userId",
      {
        config: { permission: "members:remove" },
        schema: {
          operationId: "removeMember",
          tags,
          summary: "Remove a member; their access to the organization ends at once",
          description:
            "Removes the membership, the member's teams in the organization, the grants and peer grants held by them there, the " +
            "sign-in sessions opened for this organization and the member's own API keys (each audited as key.revoked). What the " +
            "member made for the organization (service accounts' OAuth clients and API keys, registered service keys, made by them " +
            "or through one of their API keys) belongs to the organization and keeps working: the answer and the audit event list " +
            "it, and `revoke_credentials=true` revokes it too (each audited as oauth_client.revoked, key.revoked or " +
            "service_key.revoked; needs service-accounts:manage and service-keys:manage as well, else 403 naming what is missing). " +
            "Only owners remove owners (403 OWNER_ONLY); the caller must hold every permission of the member's role (403 " +
            "ROLE_ABOVE_OWN); the last owner stays (409 LAST_OWNER). Removing yourself is leaving (member.left); otherwise " +
            "audited as member.removed.",
          security: bearerSecurity,
          params: MemberParams,
          querystring: Type.Object(
            {
              revoke_credentials: Type.Optional(
                Type.Boolean({
                  default: false,
                  description:
                    "Also revoke the credentials the member made for the organization (service accounts' OAuth clients and API keys, " +
                    "registered service keys). Default false: they belong to the organization and keep working, listed in the answer.",
                }),
              ),
            },
            { additionalProperties: false },
          ),
          response: { 200: RemovedMember, ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (req) => {
        const ended = await s.members.remove(requireTenant(req), req.params.userId, actorOf(req), { revokeCredentials: req.query.revoke_credentials ?? false });
        return toRemoved(ended);
      },
    );

    app.post(
      "/v1/orgs/:orgId/leave",
      {
        // Membership is all it takes: a member whose (custom) role lacks even org:read may still leave, so the handler,
        // not the hook, decides, and it needs nothing beyond the membership the hook has already resolved.
        config: { permission: "org:read", resourceCheck: true, personOnly: true },
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
      },
      async (req, reply) => {
        await s.members.leave(requireTenant(req), actorOf(req));
        return reply.code(204).send(null);
      },
    );
  };
}
