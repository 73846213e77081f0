import type { FastifyRequest } from "fastify";
import { requestMeta } from "../../http/auth.ts";
import type { AuditActor } from "./audit.service.ts";

/** The audit actor of a request: its principal and where it came from. */
export function actorOf(request: FastifyRequest): AuditActor {
  const meta = requestMeta(request);
  const p = request.principal;
  return { type: p ? "user" : "system", id: p?.userId ?? null, ip: meta.ip, userAgent: meta.userAgent, requestId: meta.requestId };
}
