import type { FastifyRequest } from "fastify";
import { requestMeta } from "../../http/auth.ts";
import type { AuditActor } from "./audit.service.ts";

/** The audit actor of a request: its principal and where it came from. */
export function actorOf(request: FastifyRequest): AuditActor {
  const meta = requestMeta(request);
  const p = request.principal;
  const who =
    !p ? { type: "system" as const, id: null }
    : p.kind === "api_key" ? { type: "api_key" as const, id: p.keyId }
    : p.kind === "service_account" ? { type: "service_account" as const, id: p.serviceAccountId }
    : p.kind === "service" ? { type: "service" as const, id: p.serviceKeyId }
    : { type: "user" as const, id: p.userId };
  // an impersonation records both: the user acted as, and who acted
  const impersonatorId = p?.kind === "user" && p.impersonation ? p.impersonation.actorId : null;
  return { ...who, impersonatorId, ip: meta.ip, userAgent: meta.userAgent, requestId: meta.requestId };
}
