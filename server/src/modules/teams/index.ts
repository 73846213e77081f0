import type { Database } from "../../db/client.ts";
import type { Clock } from "../../lib/clock.ts";
import type { AccessService } from "../access/access.service.ts";
import type { AuditService } from "../audit/audit.service.ts";

/** Teams: a hierarchy of teams inside an org, and their members. */
export function wire(_deps: { db: Database; clock: Clock; audit: AuditService; access: AccessService }) {
  return { service: {}, routes: [] };
}
