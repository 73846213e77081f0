import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import { requireUser } from "../access/request.ts";
import { BODY_ERRORS, NullableTimestamp, Timestamp, bearerSecurity, errors } from "../../http/schemas.ts";
import { platformError } from "../../lib/errors.ts";
import { idPattern } from "../../lib/ids.ts";
import { Page, PageQuery, idCursor, page, pageRequest } from "../../lib/pagination.ts";
import { actorOf } from "../access/request.ts";
import { MAX_IMPERSONATION_SECONDS, type ImpersonationRow, type ImpersonationService } from "./impersonation.service.ts";

const Person = Type.Object({ id: Type.String(), email: Type.Union([Type.String(), Type.Null()]), name: Type.Union([Type.String(), Type.Null()]) });

const ImpersonationRecord = Type.Object({
  id: Type.String({ description: "imp_… id" }),
  impersonator: Person,
  user: Person,
  org_id: Type.Union([Type.String(), Type.Null()], { description: "The org the token was bound to; null: wherever the user is a member (platform admins only)" }),
  basis: Type.Union([Type.Literal("platform_admin"), Type.Literal("org_owner")], { description: "The authority it was started under" }),
  reason: Type.String(),
  state: Type.Union([Type.Literal("active"), Type.Literal("ended"), Type.Literal("expired")]),
  created_at: Timestamp("When it started"),
  expires_at: Timestamp("When its token stops working"),
  ended_at: NullableTimestamp("When someone ended it early"),
  ip: Type.Union([Type.String(), Type.Null()], { description: "Where the impersonator started it from" }),
});

const ImpersonationPage = Page(ImpersonationRecord);

/**
 * Routes: POST /v1/impersonations (start), GET /v1/impersonations (the ones I started),
 * POST /v1/impersonations/{id}/end, GET /v1/me/impersonations (the ones of me).
 */
export function impersonationRoutes(s: { impersonation: ImpersonationService }): FastifyPluginAsyncTypebox {
  const tags = ["impersonation"];
  const svc = s.impersonation;

  /** The page of `rows` (fetched with `limit + 1`), with both people of each impersonation spelled out. */
  async function recordsPage(rows: ImpersonationRow[], limit: number) {
    const { items, next_cursor } = page(rows, limit, (r) => r.id);
    const people = await svc.people([...new Set(items.flatMap((r) => [r.impersonatorId, r.userId]))]);
    const person = (id: string) => ({ id, email: people.get(id)?.email ?? null, name: people.get(id)?.name ?? null });
    return {
      items: items.map((r) => ({
        id: r.id,
        impersonator: person(r.impersonatorId),
        user: person(r.userId),
        org_id: r.orgId,
        basis: r.basis as "platform_admin" | "org_owner",
        reason: r.reason,
        state: svc.stateOf(r),
        created_at: r.createdAt.toISOString(),
        expires_at: r.expiresAt.toISOString(),
        ended_at: r.endedAt?.toISOString() ?? null,
        ip: r.ip,
      })),
      next_cursor,
    };
  }
  /** Starting or ending one is for the person themselves, never through another impersonation. */
  function requirePerson(req: Parameters<typeof requireUser>[0]) {
    const p = requireUser(req);
    if (p.impersonation) throw platformError("FORBIDDEN", "An impersonation cannot start or end impersonations; sign in as yourself.", { extra: { reason: "impersonation" } });
    return p;
  }

  return async (app) => {
    app.post("/v1/impersonations", {
      schema: {
        operationId: "startImpersonation",
        tags,
        summary: "Act as another user for up to an hour",
        description:
          "A platform admin may impersonate any user who is not a platform admin (with `org_id`: only in that org). An org owner may " +
          "impersonate a member of that org when the org has `owner_impersonation` on, only in that org and never beyond the owner's " +
          "own permissions. The token carries `act` (RFC 8693) naming the impersonator; every audited action taken with it records both " +
          "people; it may read the user's account but not change it; it is not refreshable. The user sees it in GET /v1/me/impersonations.",
        security: bearerSecurity,
        body: Type.Object(
          {
            user_id: Type.String({ pattern: idPattern("user"), description: "The user to act as" }),
            org_id: Type.Optional(Type.String({ pattern: idPattern("org"), description: "Bind the token to this org (required for org owners)" })),
            reason: Type.String({ minLength: 3, maxLength: 500, pattern: "\\S", description: "Why: shown to the user and kept in the audit log" }),
            expires_in: Type.Optional(Type.Integer({ minimum: 60, maximum: MAX_IMPERSONATION_SECONDS, description: "Seconds, 60–3600 (default 900)" })),
          },
          { additionalProperties: false },
        ),
        response: {
          201: Type.Object({
            access_token: Type.String({ description: "A JWT for the user, with `act.sub` = you" }),
            token_type: Type.Literal("Bearer"),
            expires_in: Type.Integer(),
            impersonation: ImpersonationRecord,
          }),
          ...errors(...BODY_ERRORS, 401, 403, 404),
        },
      },
    }, async (req, reply) => {
      const me = requirePerson(req);
      const b = req.body;
      const r = await svc.start(me.userId, { userId: b.user_id, orgId: b.org_id, reason: b.reason, expiresIn: b.expires_in }, actorOf(req));
      const [record] = (await recordsPage([r.row], 1)).items;
      return reply.code(201).send({ access_token: r.token, token_type: "Bearer" as const, expires_in: r.expiresIn, impersonation: record });
    });

    app.get("/v1/impersonations", {
      schema: { operationId: "listMyImpersonationsStarted", tags, summary: "Impersonations I started, newest first", security: bearerSecurity, querystring: PageQuery, response: { 200: ImpersonationPage, ...errors(400, 401, 403) } },
    }, async (req) => {
      const { limit, fetch, cursor } = pageRequest(req.query, idCursor("impersonation"));
      return recordsPage(await svc.byUser(requirePerson(req).userId, fetch, cursor), limit);
    });

    app.post("/v1/impersonations/:impersonationId/end", {
      schema: {
        operationId: "endImpersonation",
        tags,
        summary: "End an impersonation now (its token stops working)",
        description: "By the impersonator or by the person impersonated. Ending one that has already ended or expired changes nothing.",
        security: bearerSecurity,
        params: Type.Object({ impersonationId: Type.String({ pattern: idPattern("impersonation"), description: "imp_… id" }) }, { additionalProperties: false }),
        response: { 200: ImpersonationRecord, ...errors(400, 401, 403, 404) },
      },
    }, async (req) => {
      const row = await svc.end(requirePerson(req).userId, req.params.impersonationId, actorOf(req));
      return (await recordsPage([row], 1)).items[0];
    });

    app.get("/v1/me/impersonations", {
      schema: {
        operationId: "listImpersonationsOfMe",
        tags,
        summary: "Who has impersonated me, newest first",
        security: bearerSecurity,
        querystring: PageQuery,
        response: { 200: ImpersonationPage, ...errors(400, 401) },
      },
    }, async (req) => {
      const { limit, fetch, cursor } = pageRequest(req.query, idCursor("impersonation"));
      return recordsPage(await svc.ofUser(requireUser(req).userId, fetch, cursor), limit);
    });
  };
}
