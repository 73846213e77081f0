import type { Database } from "../../db/client.ts";
import type { Clock } from "../../lib/clock.ts";
import { orgsRepo } from "./orgs.repo.ts";
import { orgsRoutes } from "./orgs.routes.ts";
import { createOrgsService } from "./orgs.service.ts";

/** Organizations (tenants). */
export function wire(deps: { db: Database; clock: Clock }) {
  const orgs = createOrgsService({ ...deps, repo: orgsRepo });
  return { service: orgs, routes: [orgsRoutes({ orgs })] };
}
