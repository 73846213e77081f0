import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { requireUser } from "../access/request.ts";
import { BODY_ERRORS, bearerSecurity, errors } from "../../http/schemas.ts";
import { platformError } from "../../lib/errors.ts";
import { PageQuery, idCursor, page, pageRequest } from "../../lib/pagination.ts";
import { actorOf } from "../access/request.ts";
import type { ImpersonationRow } from "./impersonation.repo.ts";
import { ImpersonationPage, ImpersonationParams, ImpersonationRecord, StartImpersonationBody, StartedImpersonation } from "./impersonation.schemas.ts";
import type { ImpersonationService } from "./impersonation.service.ts";

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
    if (p.impersonation)
      throw platformError("FORBIDDEN", "An impersonation cannot start or end impersonations; sign in as yourself.", { extra: { reason: "impersonation" } });
    return p;
  }

  return async (app) => {
    app.post(
      "/v1/impersonations",
      {
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
          body: StartImpersonationBody,
          response: { 201: StartedImpersonation, ...errors(...BODY_ERRORS, 401, 403, 404) },
        },
      },
      async (req, reply) => {
        const me = requirePerson(req);
        const b = req.body;
        const r = await svc.start(me.userId, { userId: b.user_id, orgId: b.org_id, reason: b.reason, expiresIn: b.expires_in }, actorOf(req));
        const [record] = (await recordsPage([r.row], 1)).items;
        return reply.code(201).send({ access_token: r.token, token_type: "Bearer" as const, expires_in: r.expiresIn, impersonation: record });
      },
    );

    app.get(
      "/v1/impersonations",
      {
        schema: {
          operationId: "listMyImpersonationsStarted",
          tags,
          summary: "Impersonations I started, newest first",
          security: bearerSecurity,
          querystring: PageQuery,
          response: { 200: ImpersonationPage, ...errors(400, 401, 403) },
        },
      },
      async (req) => {
        const { limit, fetch, cursor } = pageRequest(req.query, idCursor("impersonation"));
        return recordsPage(await svc.byUser(requirePerson(req).userId, fetch, cursor), limit);
      },
    );

    app.post(
      "/v1/impersonations/:impersonationId/end",
      {
        schema: {
          operationId: "endImpersonation",
          tags,
          summary: "End an impersonation now (its token stops working)",
          description: "By the impersonator or by the person impersonated. Ending one that has already ended or expired changes nothing.",
          security: bearerSecurity,
          params: ImpersonationParams,
          response: { 200: ImpersonationRecord, ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => {
        const row = await svc.end(requirePerson(req).userId, req.params.impersonationId, actorOf(req));
        return (await recordsPage([row], 1)).items[0];
      },
    );

    app.get(
      "/v1/me/impersonations",
      {
        schema: {
          operationId: "listImpersonationsOfMe",
          tags,
          summary: "Who has impersonated me, newest first",
          security: bearerSecurity,
          querystring: PageQuery,
          response: { 200: ImpersonationPage, ...errors(400, 401) },
        },
      },
      async (req) => {
        const { limit, fetch, cursor } = pageRequest(req.query, idCursor("impersonation"));
        return recordsPage(await svc.ofUser(requireUser(req).userId, fetch, cursor), limit);
      },
    );
  };
}
