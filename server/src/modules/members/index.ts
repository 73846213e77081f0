import type { Database } from "../../db/client.ts";
import type { Clock } from "../../lib/clock.ts";
import type { AccessService } from "../access/access.service.ts";
import type { AuditService } from "../audit/audit.service.ts";

/** Members of an org: list, change role, remove; and the org's custom roles. */
export function wire(_deps: { db: Database; clock: Clock; audit: AuditService; access: AccessService }) {
  return { service: {}, routes: [] };
}
