import type { Database, Executor } from "../../db/client.ts";
import type { Clock } from "../../lib/clock.ts";
import type { AccessService } from "../access/access.service.ts";
import type { GrantOwnerOps } from "../access/grants.owners.ts";
import type { AuditService } from "../audit/audit.service.ts";
import { teamMembersRoutes } from "./teams.members.routes.ts";
import { createTeamMembersService } from "./teams.members.service.ts";
import { teamsRepo } from "./teams.repo.ts";
import { teamsRoutes } from "./teams.routes.ts";
import { createTeamsService } from "./teams.service.ts";

/** Which of `ids` (team_… ids, checked by the caller's schema) are teams of the org, in the caller's transaction. */
export function existingTeams(ex: Executor, orgId: string, ids: readonly string[]): Promise<Set<string>> {
  return teamsRepo.existing(ex, orgId, ids);
}

/** Whether `teamId` is a team of the org, in the caller's transaction (what access's subjects port asks). */
export async function teamExists(ex: Executor, orgId: string, teamId: string): Promise<boolean> {
  return (await teamsRepo.existing(ex, orgId, [teamId])).has(teamId);
}

/** Teams: a hierarchy of teams inside an org, and their members. `grants`: the access module's, for deleted teams. */
export function wire(deps: { db: Database; clock: Clock; audit: AuditService; access: AccessService; grants: GrantOwnerOps }) {
  const teams = createTeamsService({ ...deps, repo: teamsRepo });
  const members = createTeamMembersService({ ...deps, repo: teamsRepo });
  return { service: { ...teams, members }, routes: [teamsRoutes({ teams }), teamMembersRoutes({ members })] };
}
