import type { Database, Executor } from "../../db/client.ts";
import type { Clock } from "../../lib/clock.ts";
import type { AccessService } from "../access/access.service.ts";
import type { AuditService } from "../audit/audit.service.ts";
import { membersRepo } from "./members.repo.ts";
import { membersRoutes } from "./members.routes.ts";
import { createMembershipWrites, createMembersService, type MemberOwners } from "./members.service.ts";
import { rolesRoutes } from "./roles.routes.ts";
import { createRolesService } from "./roles.service.ts";

/**
 * Members of an org: list, change role, remove, leave, and `members.add` (the one writer of memberships); and the
 * org's custom roles. `owners` are the functions of the modules whose rows a removal ends or lists;
 * `onSessionsRevoked` hears, after the commit, which sessions a removal revoked.
 */
export function wire(deps: {
  db: Database;
  clock: Clock;
  audit: AuditService;
  access: AccessService;
  owners: MemberOwners;
  onSessionsRevoked?: (sessionIds: string[]) => void | Promise<void>;
}) {
  const members = createMembersService({ ...deps, repo: membersRepo });
  const roles = createRolesService({ ...deps, repo: membersRepo });
  return { service: { members, roles }, routes: [membersRoutes({ members }), rolesRoutes({ roles })] };
}

/**
 * The org's members holding one of `roles` or among `userIds` (enabled accounts only), with their email, read on the
 * caller's executor (a transaction of that org): whom another module's notice goes to, never reading memberships.
 */
export async function membersToNotify(
  ex: Executor,
  orgId: string,
  q: { roles: readonly string[]; userIds: readonly string[] },
): Promise<{ userId: string; email: string; name: string; role: string }[]> {
  return (await membersRepo.notifiable(ex, orgId, q)).map((r) => ({ userId: r.user_id, email: r.email, name: r.name, role: r.role }));
}

/**
 * `members.add` for a module wired before members: orgs writes a new org's first owner through it (identity makes
 * personal orgs, and members needs identity's sessions, so members comes after both).
 */
export function wireMemberships() {
  return createMembershipWrites({ repo: membersRepo });
}
