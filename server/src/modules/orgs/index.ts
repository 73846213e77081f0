import type { Database } from "../../db/client.ts";
import type { Clock } from "../../lib/clock.ts";
import type { AuditService } from "../audit/audit.service.ts";
import { orgProfileRoutes } from "./orgs.profile.routes.ts";
import { createOrgProfileService } from "./orgs.profile.service.ts";
import { orgsRepo } from "./orgs.repo.ts";
import { orgsRoutes } from "./orgs.routes.ts";
import { createOrgsService } from "./orgs.service.ts";

/** Organizations (tenants). */
export function wire(deps: { db: Database; clock: Clock; audit: AuditService }) {
  const orgs = createOrgsService({ ...deps, repo: orgsRepo });
  const profile = createOrgProfileService(deps);
  return { service: orgs, profile, routes: [orgsRoutes({ orgs }), orgProfileRoutes({ profile })] };
}
