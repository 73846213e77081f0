import { Readable } from "node:stream";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import { requireTenant } from "../access/request.ts";
import { OrgIdParams, bearerSecurity, errors, Timestamp } from "../../http/schemas.ts";
import { Page, page, pageQuery, pageRequest } from "../../lib/pagination.ts";
import type { AuditRow } from "./audit.repo.ts";
import type { AuditService } from "./audit.service.ts";

const AuditEvent = Type.Object({
  id: Type.String({ description: "aud_… id" }),
  seq: Type.Integer({ description: "Position in the org's chain, from 1" }),
  action: Type.String({ description: "What happened, e.g. org.updated" }),
  actor: Type.Object({
    type: Type.String({ description: "user, api_key, service_account, service or system" }),
    id: Type.Union([Type.String(), Type.Null()]),
    impersonator_id: Type.Union([Type.String(), Type.Null()], { description: "The platform admin who acted as the user, when impersonating" }),
    via_key_id: Type.Union([Type.String(), Type.Null()], { description: "The API key the actor's token was exchanged from (token exchange), when it was" }),
  }),
  target: Type.Object({ type: Type.String(), id: Type.Union([Type.String(), Type.Null()]) }),
  ip: Type.Union([Type.String(), Type.Null()]),
  user_agent: Type.Union([Type.String(), Type.Null()]),
  request_id: Type.Union([Type.String(), Type.Null()]),
  diff: Type.Record(Type.String(), Type.Unknown(), { description: "Non-secret fields: { field: [before, after] }" }),
  created_at: Timestamp("When"),
  prev_hash: Type.String({ description: "Hash of the previous event (64 zeros for the first)" }),
  hash: Type.String({ description: "SHA-256 over prev_hash and this event's canonical JSON" }),
});

export function toEvent(e: AuditRow) {
  return {
    id: e.id,
    seq: e.seq,
    action: e.action,
    actor: { type: e.actorType, id: e.actorId, impersonator_id: e.impersonatorId, via_key_id: e.viaKeyId },
    target: { type: e.targetType, id: e.targetId },
    ip: e.ip,
    user_agent: e.userAgent,
    request_id: e.requestId,
    diff: e.diff as Record<string, unknown>,
    created_at: e.createdAt.toISOString(),
    prev_hash: e.prevHash,
    hash: e.hash,
  };
}

const Filters = {
  actor: Type.Optional(Type.String({ maxLength: 64, pattern: "^[a-z]+_[0-9a-z]{26}$", description: "Actor id (usr_…)" })),
  action: Type.Optional(Type.String({ maxLength: 64, pattern: "^[a-z_.-]+$", description: "Exact action, e.g. org.updated" })),
  target_type: Type.Optional(Type.String({ maxLength: 40, pattern: "^[a-z_]+$" })),
  target_id: Type.Optional(Type.String({ maxLength: 64, pattern: "^[a-z]+_[0-9a-z]{26}$" })),
  from: Type.Optional(Type.String({ format: "date-time", description: "Events at or after" })),
  to: Type.Optional(Type.String({ format: "date-time", description: "Events at or before" })),
};

export function auditRoutes(s: { audit: AuditService }): FastifyPluginAsyncTypebox {
  const tags = ["audit"];
  return async (app) => {
    app.get(
      "/v1/orgs/:orgId/audit",
      {
        config: { permission: "audit:read" },
        schema: {
          operationId: "listAuditEvents",
          tags,
          summary: "The org's audit log, newest first",
          security: bearerSecurity,
          params: OrgIdParams,
          querystring: Type.Object({ ...Filters, ...pageQuery }, { additionalProperties: false }),
          response: { 200: Page(AuditEvent), ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => {
        const { orgId } = requireTenant(req);
        const q = req.query;
        // the cursor is the last event's seq
        const { limit, fetch, cursor } = pageRequest(q, (key) => (/^\d{1,15}$/.test(key) ? Number(key) : undefined));
        const rows = await s.audit.list(
          orgId,
          {
            actorId: q.actor,
            action: q.action,
            targetType: q.target_type,
            targetId: q.target_id,
            from: q.from ? new Date(q.from) : undefined,
            to: q.to ? new Date(q.to) : undefined,
          },
          fetch,
          cursor,
        );
        return page(rows, limit, (e) => String(e.seq), toEvent);
      },
    );

    app.get(
      "/v1/orgs/:orgId/audit/export",
      {
        config: { permission: "audit:read" },
        schema: {
          operationId: "exportAuditEvents",
          tags,
          summary: "The whole audit log as JSON lines, oldest first",
          description: "One event per line (application/x-ndjson), in chain order, so a copy can be verified offline.",
          security: bearerSecurity,
          params: OrgIdParams,
          produces: ["application/x-ndjson"],
          response: { ...errors(401, 403, 404) },
        },
      },
      async (req, reply) => {
        const { orgId } = requireTenant(req);
        // streamed in batches: an export never holds the whole log in memory
        const lines = Readable.from(
          (async function* () {
            for await (const e of s.audit.all(orgId)) yield JSON.stringify(toEvent(e)) + "\n";
          })(),
        );
        reply.header("content-disposition", `attachment; filename="audit-${orgId}.jsonl"`);
        return reply.type("application/x-ndjson").send(lines);
      },
    );
  };
}
