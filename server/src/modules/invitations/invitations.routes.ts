import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import { requestMeta, requireUser } from "../access/request.ts";
import { requireTenant } from "../access/request.ts";
import { BODY_ERRORS, bearerSecurity, errors, OrgIdParams } from "../../http/schemas.ts";
import type { Clock } from "../../lib/clock.ts";
import { Page, idCursor, page, pageQuery, pageRequest } from "../../lib/pagination.ts";
import { actorOf } from "../access/request.ts";
import { toUser } from "../identity/identity.schemas.ts";
import type { InvitationAcceptService, Joined as JoinedResult } from "./invitations.accept.service.ts";
import {
  AcceptBody,
  BulkBody,
  BulkResult,
  Invitation,
  InvitationBody,
  InvitationIdParams,
  Joined,
  MAX_BULK,
  RegisterBody,
  StatusSchema,
  toInvitation,
} from "./invitations.schemas.ts";
import type { InvitationsService } from "./invitations.service.ts";

const tags = ["invitations"];
const toJoined = (j: JoinedResult) => ({ org: j.org, role: j.role, team_ids: j.teamIds });

/** Managing an org's invitations: /v1/orgs/{orgId}/invitations*. */
export function invitationRoutes(s: { invitations: InvitationsService; clock: Clock }): FastifyPluginAsyncTypebox {
  const shape = (r: Parameters<typeof toInvitation>[0]) => toInvitation(r, s.clock.now());
  return async (app) => {
    app.post(
      "/v1/orgs/:orgId/invitations",
      {
        config: { mintsAuthority: true, permission: "members:invite" },
        schema: {
          operationId: "createInvitation",
          tags,
          summary: "Invite someone by email",
          description:
            "Mails a single-use link that expires in 7 days. The role's permissions must all be yours (only owners invite owners); " +
            "the teams must be this org's. An address already a member answers 409 ALREADY_MEMBER; one with a pending invitation " +
            "409 INVITATION_PENDING (resend it instead). A service account or registered service may invite as a person can (never " +
            "owners): the invitation names it in invited_by_type and invited_by_id. Audited as invitation.created.",
          security: bearerSecurity,
          params: OrgIdParams,
          body: InvitationBody,
          response: { 201: Invitation, ...errors(...BODY_ERRORS, 401, 403, 404, 409) },
        },
      },
      async (req, reply) => reply.code(201).send(shape(await s.invitations.create(requireTenant(req), req.body, actorOf(req)))),
    );

    app.post(
      "/v1/orgs/:orgId/invitations/bulk",
      {
        config: { mintsAuthority: true, permission: "members:invite" },
        schema: {
          operationId: "createInvitations",
          tags,
          summary: `Invite up to ${MAX_BULK} people at once`,
          description:
            "Each entry is checked and created on its own, as POST …/invitations would: the result lists every entry in order, " +
            "invited (with its id) or refused (with the error code it would have answered). A malformed body creates nothing.",
          security: bearerSecurity,
          params: OrgIdParams,
          body: BulkBody,
          response: { 200: Type.Object({ results: Type.Array(BulkResult) }), ...errors(...BODY_ERRORS, 401, 403, 404) },
        },
      },
      async (req) => ({ results: await s.invitations.createMany(requireTenant(req), req.body.invitations, actorOf(req)) }),
    );

    app.get(
      "/v1/orgs/:orgId/invitations",
      {
        config: { permission: "members:read" },
        schema: {
          operationId: "listInvitations",
          tags,
          summary: "The org's invitations, newest first",
          security: bearerSecurity,
          params: OrgIdParams,
          querystring: Type.Object(
            {
              status: Type.Optional(Type.Union(StatusSchema.anyOf, { description: "Only invitations in this state (default: all)" })),
              ...pageQuery,
            },
            { additionalProperties: false },
          ),
          response: {
            200: Page(Invitation),
            ...errors(400, 401, 403, 404),
          },
        },
      },
      async (req) => {
        const { orgId } = requireTenant(req);
        const { limit, fetch, cursor } = pageRequest(req.query, idCursor("invitation"));
        const rows = await s.invitations.list(orgId, { status: req.query.status, limit: fetch, before: cursor });
        return page(rows, limit, (r) => r.id, shape);
      },
    );

    app.get(
      "/v1/orgs/:orgId/invitations/:invitationId",
      {
        config: { permission: "members:read" },
        schema: {
          operationId: "getInvitation",
          tags,
          summary: "One invitation",
          security: bearerSecurity,
          params: InvitationIdParams,
          response: { 200: Invitation, ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => shape(await s.invitations.get(requireTenant(req).orgId, req.params.invitationId)),
    );

    app.post(
      "/v1/orgs/:orgId/invitations/:invitationId/resend",
      {
        config: { mintsAuthority: true, permission: "members:invite" },
        schema: {
          operationId: "resendInvitation",
          tags,
          summary: "Mail a new link",
          description:
            "The old link stops working at once and the new one expires in 7 days (an expired invitation comes back to life). " +
            "Accepted or revoked invitations cannot be resent. Audited as invitation.resent.",
          security: bearerSecurity,
          params: InvitationIdParams,
          response: { 200: Invitation, ...errors(400, 401, 403, 404, 409, 410) },
        },
      },
      async (req) => shape(await s.invitations.resend(requireTenant(req), req.params.invitationId, actorOf(req))),
    );

    app.delete(
      "/v1/orgs/:orgId/invitations/:invitationId",
      {
        config: { permission: "members:invite" },
        schema: {
          operationId: "revokeInvitation",
          tags,
          summary: "Revoke an invitation",
          description: "Its link stops working at once. Revoking a revoked invitation answers 204 again; an accepted one 409. Audited as invitation.revoked.",
          security: bearerSecurity,
          params: InvitationIdParams,
          response: { 204: Type.Null({ description: "Revoked" }), ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (req, reply) => {
        await s.invitations.revoke(requireTenant(req), req.params.invitationId, actorOf(req));
        return reply.code(204).send(null);
      },
    );
  };
}

/** Answering an invitation with the emailed token: /v1/invitations/*. */
export function invitationAcceptRoutes(s: { accept: InvitationAcceptService }): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.post(
      "/v1/invitations/accept",
      {
        schema: {
          operationId: "acceptInvitation",
          tags,
          summary: "Join the org of an invitation as the signed-in user",
          description:
            "The invitation must have been sent to your account's address, and the address verified. You join with the invited " +
            "role and teams. Errors: INVITATION_INVALID (unknown link), INVITATION_USED, INVITATION_REVOKED, INVITATION_EXPIRED, " +
            "INVITATION_EMAIL_MISMATCH, EMAIL_NOT_VERIFIED, ALREADY_MEMBER.",
          security: bearerSecurity,
          body: AcceptBody,
          response: { 200: Joined, ...errors(...BODY_ERRORS, 401, 403, 404, 409, 410) },
        },
      },
      async (req) => toJoined(await s.accept.accept(requireUser(req).userId, req.body.token, requestMeta(req))),
    );

    app.post(
      "/v1/invitations/register",
      {
        config: { auth: "none" },
        schema: {
          operationId: "registerWithInvitation",
          tags,
          summary: "Create an account through an invitation and join its org",
          description:
            "Creates the account for the invited address, already verified (the link proved it), with its personal organization; " +
            "joins the invitation's org with its role and teams; and signs in. An address that already has an account answers " +
            "409 EMAIL_TAKEN: sign in and use POST /v1/invitations/accept. Throttled like POST /v1/auth/register.",
          body: RegisterBody,
          response: {
            201: Type.Object({ user: Type.Ref("User"), tokens: Type.Ref("TokenPair"), ...Joined.properties }),
            ...errors(...BODY_ERRORS, 409, 410, 429),
          },
        },
      },
      async (req, reply) => {
        const r = await s.accept.register(req.body, requestMeta(req));
        return reply.code(201).send({ user: toUser(r.user), tokens: r.tokens, ...toJoined(r) });
      },
    );
  };
}
