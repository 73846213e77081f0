import type { Database } from "../../db/client.ts";
import type { Clock } from "../../lib/clock.ts";
import type { Bus } from "../../pubsub/bus.ts";
import type { AccessService } from "../access/access.service.ts";
import type { AuditService } from "../audit/audit.service.ts";
import type { SigningKeys } from "../keys/signing-keys.ts";
import { impersonationRepo } from "./impersonation.repo.ts";
import { impersonationRoutes } from "./impersonation.routes.ts";
import { createImpersonationService } from "./impersonation.service.ts";

/**
 * Impersonation: start/end/list under /v1/impersonations, the user's view at /v1/me/impersonations; `service.checker`
 * is what authentication asks about an impersonation token. Ending one reaches every instance through `bus`.
 */
export function wire(deps: { db: Database; clock: Clock; keys: SigningKeys; access: AccessService; audit: AuditService; bus: Bus }) {
  const service = createImpersonationService({ ...deps, repo: impersonationRepo });
  return { service, routes: [impersonationRoutes({ impersonation: service })] };
}
