import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import { BODY_ERRORS, OrgIdParams, bearerSecurity, errors } from "../../http/schemas.ts";
import { Page, idCursor, page, pageQuery, pageRequest } from "../../lib/pagination.ts";
import { requireTenant } from "./request.ts";
import type { Clock } from "../../lib/clock.ts";
import { platformError } from "../../lib/errors.ts";
import { idPattern } from "../../lib/ids.ts";
import { actorOf } from "./request.ts";
import {
  Check,
  CheckSubject,
  CreateGrantBody,
  Explanation,
  Grant,
  GrantIdParams,
  GrantRequest,
  ObjectRef,
  PeerGrant,
  PermissionName,
  Permissions,
  RelationName,
  RequestIdParams,
  toExplanation,
  toGrant,
  toGrantRequest,
  toPeerGrant,
} from "./grants.schemas.ts";
import type { GrantRequestsService } from "./grant-requests.service.ts";
import type { CheckInput, GrantsService } from "./grants.service.ts";
import type { Permission } from "./permissions.ts";
import { OBJECT_TYPES, type ObjectType, type Relation } from "./relations.ts";

/** A check is a permission, or a relation with an object: exactly one of the two shapes (400 naming what is amiss). */
function toCheck(c: { permission?: Permission; relation?: Relation; object?: { type: ObjectType; id: string } }, prefix: string): CheckInput {
  if (c.permission && !c.relation && !c.object) return { permission: c.permission };
  if (!c.permission && c.relation && c.object) return { relation: c.relation, object: c.object };
  const field = prefix + (c.permission ? (c.relation ? "relation" : "object") : c.relation ? "object" : c.object ? "relation" : "permission");
  const detail = c.permission
    ? "give either a permission or a relation with an object, not both"
    : "is required: give a permission, or a relation with an object";
  throw platformError("VALIDATION_FAILED", `${field} ${detail}.`, { field });
}

const date = (s: string | undefined) => (s === undefined ? undefined : new Date(s));

/** Grants, peer grants, grant requests, and the check / explain API. */
export function grantsRoutes(s: { grants: GrantsService; requests: GrantRequestsService; clock: Clock }): FastifyPluginAsyncTypebox {
  const { grants, requests, clock } = s;
  return async (app) => {
    app.post(
      "/v1/orgs/:orgId/grants",
      {
        config: { mintsAuthority: true, permission: "grants:manage", resourceCheck: true },
        schema: {
          operationId: "createGrant",
          tags: ["grants"],
          summary: "Share a relation on one resource with a user, a team or the whole organization",
          description:
            "Needs grants:manage, or share on the object and then only a relation you hold there yourself (owner only as an owner). " +
            "A grant never outlives the time-limited access that allowed it. The same subject, relation and object twice → 409 GRANT_EXISTS. Audited as grant.created.",
          security: bearerSecurity,
          params: OrgIdParams,
          body: CreateGrantBody,
          response: { 201: Grant, ...errors(...BODY_ERRORS, 401, 403, 404, 409) },
        },
      },
      async (req, reply) => {
        const b = req.body;
        const g = await grants.createGrant(
          requireTenant(req),
          { subject: { type: b.subject.type, id: b.subject.id }, relation: b.relation, object: b.object, expiresAt: date(b.expires_at) },
          actorOf(req),
        );
        return reply.code(201).send(toGrant(g, clock.now()));
      },
    );

    app.get(
      "/v1/orgs/:orgId/grants",
      {
        config: { permission: "grants:read" },
        schema: {
          operationId: "listGrants",
          tags: ["grants"],
          summary: "The organization's grants, newest first",
          security: bearerSecurity,
          params: OrgIdParams,
          querystring: Type.Object(
            {
              subject_type: Type.Optional(Type.Enum(["user", "team", "org"], { description: "Only grants to this kind of subject" })),
              subject_id: Type.Optional(Type.String({ pattern: "^[a-z]+_[0-9a-hjkmnp-tv-z]{26}$", description: "Only grants to this subject" })),
              object_type: Type.Optional(
                Type.Enum([...Object.keys(OBJECT_TYPES), "org"], { description: "Only grants on this kind of resource (org: peer grants)" }),
              ),
              object_id: Type.Optional(Type.String({ pattern: "^[a-z]+_[0-9a-hjkmnp-tv-z]{26}$", description: "Only grants on this resource" })),
              kind: Type.Optional(Type.Enum(["share", "peer"], { description: "share or peer" })),
              include_expired: Type.Optional(Type.Boolean({ default: false, description: "Also grants that have stopped counting" })),
              ...pageQuery,
            },
            { additionalProperties: false },
          ),
          response: { 200: Page(Grant), ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => {
        const q = req.query;
        const { limit, fetch, cursor } = pageRequest(q, idCursor("grant"));
        const now = clock.now();
        const rows = await grants.listGrants(
          requireTenant(req).orgId,
          {
            kind: q.kind,
            subjectType: q.subject_type,
            subjectId: q.subject_id,
            objectType: q.object_type,
            objectId: q.object_id,
            liveAt: q.include_expired ? undefined : now,
          },
          fetch,
          cursor,
        );
        return page(
          rows,
          limit,
          (g) => g.id,
          (g) => toGrant(g, now),
        );
      },
    );

    app.get(
      "/v1/orgs/:orgId/grants/:grantId",
      {
        config: { permission: "grants:read" },
        schema: {
          operationId: "getGrant",
          tags: ["grants"],
          summary: "One grant",
          security: bearerSecurity,
          params: GrantIdParams,
          response: { 200: Grant, ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => toGrant(await grants.getGrant(requireTenant(req).orgId, req.params.grantId), clock.now()),
    );

    app.delete(
      "/v1/orgs/:orgId/grants/:grantId",
      {
        config: { permission: "grants:manage", resourceCheck: true },
        schema: {
          operationId: "revokeGrant",
          tags: ["grants"],
          summary: "Revoke a grant; it stops counting on the very next request, on every instance",
          description:
            "Needs grants:manage; or, for a peer grant, being its grantor; or, for a share grant, share on the object and the relation yourself. Audited as grant.revoked (peer_grant.revoked).",
          security: bearerSecurity,
          params: GrantIdParams,
          response: { 204: Type.Null({ description: "Revoked" }), ...errors(400, 401, 403, 404) },
        },
      },
      async (req, reply) => {
        await grants.revokeGrant(requireTenant(req), req.params.grantId, actorOf(req));
        return reply.code(204).send(null);
      },
    );

    app.post(
      "/v1/orgs/:orgId/peer-grants",
      {
        config: { mintsAuthority: true, permission: "org:read" },
        schema: {
          operationId: "createPeerGrants",
          tags: ["grants"],
          summary: "Give another member permissions your role gives you, perhaps until a time",
          description:
            "Any member may, for permissions their role includes (not ones they received as peer grants), and through an API key or an exchanged token only those the credential holds too " +
            "→ otherwise 403 naming every missing permission (missing) and the first (permission). A service account or a registered service has no role to pass on (403); an impersonation is refused. " +
            "One grant per permission; a live peer grant of the same permission to the same member → 409. Audited as peer_grant.created.",
          security: bearerSecurity,
          params: OrgIdParams,
          body: Type.Object(
            {
              grantee_id: Type.String({ pattern: idPattern("user"), description: "usr_… id of another member" }),
              permissions: Permissions,
              expires_at: Type.Optional(Type.String({ format: "date-time", description: "When the grants stop counting (in the future); omit for no end" })),
            },
            { additionalProperties: false },
          ),
          response: { 201: Type.Object({ items: Type.Array(PeerGrant) }), ...errors(...BODY_ERRORS, 401, 403, 404, 409) },
        },
      },
      async (req, reply) => {
        const b = req.body;
        const rows = await grants.createPeerGrants(
          requireTenant(req),
          { granteeId: b.grantee_id, permissions: b.permissions, expiresAt: date(b.expires_at) },
          actorOf(req),
        );
        const now = clock.now();
        return reply.code(201).send({ items: rows.map((g) => toPeerGrant(g, now)) });
      },
    );

    app.get(
      "/v1/orgs/:orgId/peer-grants",
      {
        config: { permission: "org:read" },
        schema: {
          operationId: "listMyPeerGrants",
          tags: ["grants"],
          summary: "Peer grants you gave or received, newest first",
          security: bearerSecurity,
          params: OrgIdParams,
          querystring: Type.Object(
            {
              direction: Type.Optional(Type.Enum(["given", "received"], { description: "Only those you gave, or only those you received (default: both)" })),
              include_expired: Type.Optional(Type.Boolean({ default: false, description: "Also grants that have stopped counting" })),
              ...pageQuery,
            },
            { additionalProperties: false },
          ),
          response: { 200: Page(PeerGrant), ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => {
        const q = req.query;
        const { limit, fetch, cursor } = pageRequest(q, idCursor("grant"));
        const rows = await grants.listPeerGrants(requireTenant(req), q.direction, q.include_expired ?? false, fetch, cursor);
        const now = clock.now();
        return page(
          rows,
          limit,
          (g) => g.id,
          (g) => toPeerGrant(g, now),
        );
      },
    );

    app.delete(
      "/v1/orgs/:orgId/peer-grants/:grantId",
      {
        config: { permission: "grants:manage", resourceCheck: true },
        schema: {
          operationId: "revokePeerGrant",
          tags: ["grants"],
          summary: "Revoke a peer grant you gave (or any, with grants:manage)",
          description: "Audited as peer_grant.revoked.",
          security: bearerSecurity,
          params: GrantIdParams,
          response: { 204: Type.Null({ description: "Revoked" }), ...errors(400, 401, 403, 404) },
        },
      },
      async (req, reply) => {
        await grants.revokeGrant(requireTenant(req), req.params.grantId, actorOf(req), "peer");
        return reply.code(204).send(null);
      },
    );

    app.post(
      "/v1/orgs/:orgId/grant-requests",
      {
        config: { permission: "org:read" },
        schema: {
          operationId: "createGrantRequest",
          tags: ["grants"],
          summary: "Ask another member for permissions their role gives them",
          description:
            "The grantor must be another member whose role includes every permission asked for (400 naming grantor_id or permissions). " +
            "Only a member asks (a service account or a registered service → 403: peer grants go to members). Audited as grant_request.created.",
          security: bearerSecurity,
          params: OrgIdParams,
          body: Type.Object(
            {
              grantor_id: Type.String({ pattern: idPattern("user"), description: "usr_… id of the member asked" }),
              permissions: Permissions,
              reason: Type.Optional(Type.String({ minLength: 1, maxLength: 500, description: "Why you need it" })),
              expires_at: Type.Optional(Type.String({ format: "date-time", description: "Until when you need it (in the future); omit for no end" })),
            },
            { additionalProperties: false },
          ),
          response: { 201: GrantRequest, ...errors(...BODY_ERRORS, 401, 403, 404) },
        },
      },
      async (req, reply) => {
        const b = req.body;
        const r = await requests.createGrantRequest(
          requireTenant(req),
          { grantorId: b.grantor_id, permissions: b.permissions, reason: b.reason, expiresAt: date(b.expires_at) },
          actorOf(req),
        );
        return reply.code(201).send(toGrantRequest(r));
      },
    );

    app.get(
      "/v1/orgs/:orgId/grant-requests",
      {
        config: { permission: "org:read" },
        schema: {
          operationId: "listGrantRequests",
          tags: ["grants"],
          summary: "Grant requests you made or were asked, newest first",
          security: bearerSecurity,
          params: OrgIdParams,
          querystring: Type.Object(
            {
              role: Type.Optional(Type.Enum(["incoming", "outgoing"], { description: "incoming: you are asked; outgoing: you asked (default: both)" })),
              status: Type.Optional(Type.Enum(["pending", "approved", "denied", "cancelled"])),
              ...pageQuery,
            },
            { additionalProperties: false },
          ),
          response: { 200: Page(GrantRequest), ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => {
        const q = req.query;
        const { limit, fetch, cursor } = pageRequest(q, idCursor("grantRequest"));
        const rows = await requests.listGrantRequests(requireTenant(req), q.role, q.status, fetch, cursor);
        return page(rows, limit, (r) => r.id, toGrantRequest);
      },
    );

    app.get(
      "/v1/orgs/:orgId/grant-requests/:requestId",
      {
        config: { permission: "org:read" },
        schema: {
          operationId: "getGrantRequest",
          tags: ["grants"],
          summary: "One grant request (yours, one you were asked, or any with grants:read)",
          security: bearerSecurity,
          params: RequestIdParams,
          response: { 200: GrantRequest, ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => toGrantRequest(await requests.getGrantRequest(requireTenant(req), req.params.requestId)),
    );

    app.post(
      "/v1/orgs/:orgId/grant-requests/:requestId/approve",
      {
        config: { mintsAuthority: true, permission: "org:read" },
        schema: {
          operationId: "approveGrantRequest",
          tags: ["grants"],
          summary: "Approve a request asked of you, perhaps narrowed: fewer permissions, an earlier end",
          description:
            "Only the member asked, and only what their role still gives them (within their credential's permissions) → otherwise 403 naming every missing permission. " +
            "Widening (a permission not asked for, a later end) → 400 naming the field; a decided request → 409. " +
            "Makes the peer grants and approves in one transaction; audited as grant_request.approved and peer_grant.created.",
          security: bearerSecurity,
          params: RequestIdParams,
          body: Type.Object(
            {
              permissions: Type.Optional(Permissions),
              expires_at: Type.Optional(Type.String({ format: "date-time", description: "An end no later than the one asked for" })),
            },
            { additionalProperties: false },
          ),
          response: { 200: Type.Object({ request: GrantRequest, grants: Type.Array(PeerGrant) }), ...errors(...BODY_ERRORS, 401, 403, 404, 409) },
        },
      },
      async (req) => {
        const b = req.body ?? {};
        const out = await requests.approveGrantRequest(
          requireTenant(req),
          req.params.requestId,
          { permissions: b.permissions, expiresAt: date(b.expires_at) },
          actorOf(req),
        );
        const now = clock.now();
        return { request: toGrantRequest(out.request), grants: out.grants.map((g) => toPeerGrant(g, now)) };
      },
    );

    app.post(
      "/v1/orgs/:orgId/grant-requests/:requestId/deny",
      {
        config: { permission: "org:read" },
        schema: {
          operationId: "denyGrantRequest",
          tags: ["grants"],
          summary: "Deny a request asked of you",
          description: "Only the member asked; the reason goes to the audit event grant_request.denied.",
          security: bearerSecurity,
          params: RequestIdParams,
          body: Type.Object({ reason: Type.Optional(Type.String({ minLength: 1, maxLength: 500, description: "Why not" })) }, { additionalProperties: false }),
          response: { 200: GrantRequest, ...errors(...BODY_ERRORS, 401, 403, 404, 409) },
        },
      },
      async (req) => toGrantRequest(await requests.denyGrantRequest(requireTenant(req), req.params.requestId, req.body?.reason, actorOf(req))),
    );

    app.post(
      "/v1/orgs/:orgId/grant-requests/:requestId/cancel",
      {
        config: { permission: "org:read" },
        schema: {
          operationId: "cancelGrantRequest",
          tags: ["grants"],
          summary: "Withdraw a pending request you made",
          description: "Only the requester; audited as grant_request.cancelled.",
          security: bearerSecurity,
          params: RequestIdParams,
          response: { 200: GrantRequest, ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (req) => toGrantRequest(await requests.cancelGrantRequest(requireTenant(req), req.params.requestId, actorOf(req))),
    );

    app.post(
      "/v1/orgs/:orgId/access/check",
      {
        config: { permission: "org:read" },
        schema: {
          operationId: "checkAccess",
          tags: ["access"],
          summary: "Answer up to 100 access questions at once, in order",
          description:
            "Each check is an org-wide permission ({permission}) or a relation on one resource ({relation, object}). " +
            "Checks are for you, or for another member (subject) with grants:read.",
          security: bearerSecurity,
          params: OrgIdParams,
          body: Type.Object(
            { checks: Type.Array(Check, { minItems: 1, maxItems: 100, description: "1 to 100 checks" }), subject: Type.Optional(CheckSubject) },
            { additionalProperties: false },
          ),
          response: {
            200: Type.Object({
              subject: Type.Object({ type: Type.Literal("user"), id: Type.String() }),
              results: Type.Array(
                Type.Object({
                  allowed: Type.Boolean(),
                  permission: Type.Optional(PermissionName),
                  relation: Type.Optional(RelationName),
                  object: Type.Optional(ObjectRef),
                  reason: Type.String({ description: "The deciding step, in words (POST …/access/explain shows every step)" }),
                }),
                { description: "One per check, in the order asked" },
              ),
            }),
            ...errors(...BODY_ERRORS, 401, 403, 404),
          },
        },
      },
      async (req) => {
        const checks = req.body.checks.map((c, i) => toCheck(c, `checks.${i}.`));
        const m = await grants.subjectOf(requireTenant(req), req.body.subject);
        const decisions = await grants.checkAll(m, checks);
        return {
          subject: { type: "user" as const, id: m.userId },
          results: decisions.map((d, i) => ({ allowed: d.allowed, ...checks[i], reason: d.steps[d.steps.length - 1]?.detail ?? "" })),
        };
      },
    );

    app.post(
      "/v1/orgs/:orgId/access/explain",
      {
        config: { permission: "org:read" },
        schema: {
          operationId: "explainAccess",
          tags: ["access"],
          summary: "One access decision with the path of roles, teams and grants that led to it",
          description: "The check has the shape of one item of POST …/access/check; another member's access needs grants:read.",
          security: bearerSecurity,
          params: OrgIdParams,
          body: Type.Object({ check: Check, subject: Type.Optional(CheckSubject) }, { additionalProperties: false }),
          response: { 200: Explanation, ...errors(...BODY_ERRORS, 401, 403, 404) },
        },
      },
      async (req) => {
        const check = toCheck(req.body.check, "check.");
        const m = await grants.subjectOf(requireTenant(req), req.body.subject);
        return toExplanation(await grants.decide(m, check), m.userId);
      },
    );
  };
}
