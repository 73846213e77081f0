import type { Database } from "../../db/client.ts";
import type { Clock } from "../../lib/clock.ts";
import type { AccessService } from "../access/access.service.ts";
import type { GrantOwnerOps } from "../access/grants.owners.ts";
import type { AuditService } from "../audit/audit.service.ts";
import { teamMembersRoutes } from "./teams.members.routes.ts";
import { createTeamMembersService } from "./teams.members.service.ts";
import { teamsRepo } from "./teams.repo.ts";
import { teamsRoutes } from "./teams.routes.ts";
import { createTeamsService } from "./teams.service.ts";

/** Teams: a hierarchy of teams inside an org, and their members. `grants`: the access module's, for deleted teams. */
export function wire(deps: { db: Database; clock: Clock; audit: AuditService; access: AccessService; grants: GrantOwnerOps }) {
  const teams = createTeamsService({ ...deps, repo: teamsRepo });
  const members = createTeamMembersService({ ...deps, repo: teamsRepo });
  return { service: { ...teams, members }, routes: [teamsRoutes({ teams }), teamMembersRoutes({ members })] };
}
