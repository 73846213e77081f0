import type { Database } from "../../db/client.ts";
import type { Clock } from "../../lib/clock.ts";
import { auditRepo } from "./audit.repo.ts";
import { auditRoutes } from "./audit.routes.ts";
import { createAuditService } from "./audit.service.ts";

/** Audit: the append-only, hash-chained log every module writes to. */
export function wire(deps: { db: Database; clock: Clock }) {
  const audit = createAuditService({ ...deps, repo: auditRepo });
  return { service: audit, routes: [auditRoutes({ audit })] };
}
