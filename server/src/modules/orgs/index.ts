import type { Database, Executor } from "../../db/client.ts";
import type { JobQueue } from "../../jobs/queue.ts";
import type { Clock } from "../../lib/clock.ts";
import type { AccessService } from "../access/access.service.ts";
import type { AuditService } from "../audit/audit.service.ts";
import type { MembershipWrites } from "../members/members.service.ts";
import { orgLifecycleRoutes } from "./orgs.lifecycle.routes.ts";
import { createOrgLifecycleService } from "./orgs.lifecycle.service.ts";
import { orgProfileRoutes } from "./orgs.profile.routes.ts";
import { createOrgProfileService } from "./orgs.profile.service.ts";
import { orgProfileRepo, orgsRepo } from "./orgs.repo.ts";
import { orgsRoutes } from "./orgs.routes.ts";
import { createOrgsService } from "./orgs.service.ts";

/** The org unless it is deleted (or there is none), in the caller's transaction: how other modules read an org. */
export async function liveOrg(ex: Executor, orgId: string): Promise<{ id: string; name: string; slug: string; displayName: string | null } | undefined> {
  const org = await orgProfileRepo.findLive(ex, orgId);
  return org && { id: org.id, name: org.name, slug: org.slug, displayName: org.displayName };
}

/**
 * Organizations (tenants): creation, profile, and the delete → restore → purge lifecycle. A new org's owner is written
 * through `members` (the members module owns memberships).
 */
export function wire(deps: { db: Database; clock: Clock; audit: AuditService; access: AccessService; jobs: JobQueue; members: MembershipWrites }) {
  const orgs = createOrgsService({ ...deps, repo: orgsRepo });
  const profile = createOrgProfileService(deps);
  const lifecycle = createOrgLifecycleService(deps);
  return {
    service: orgs,
    profile,
    lifecycle,
    routes: [orgsRoutes({ orgs }), orgProfileRoutes({ profile }), orgLifecycleRoutes({ lifecycle })],
  };
}
