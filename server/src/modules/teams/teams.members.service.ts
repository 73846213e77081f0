import type { Database, Executor } from "../../db/client.ts";
import type { Clock } from "../../lib/clock.ts";
import type { OrgMembership } from "../access/access.service.ts";
import type { AuditActor, AuditService } from "../audit/audit.service.ts";
import { teamsError } from "./teams.errors.ts";
import type { TeamsRepo } from "./teams.repo.ts";
import type { TeamMemberRow } from "./teams.schemas.ts";
import { requireTeamAdmin, teamNotFound, type TeamsAccess } from "./teams.service.ts";

/**
 * Who is in a team. Anyone who administers a team (teams:update org-wide, or a maintainer of it or of a team above
 * it) adds, promotes, demotes and removes its members; only members of the org can join. Each change is audited in
 * its transaction and ends with access.invalidate: a removed maintainer is refused on the very next request.
 */
export function createTeamMembersService(deps: { db: Database; clock: Clock; repo: TeamsRepo; audit: Pick<AuditService, "record">; access: TeamsAccess }) {
  const { db, clock, repo, audit, access } = deps;

  /** The team, share-locked so it cannot be deleted while its membership changes (the insert would then fail). */
  async function lockTeam(tx: Executor, orgId: string, teamId: string): Promise<void> {
    if (!(await repo.find(tx, orgId, teamId, "key share"))) throw teamNotFound(teamId);
  }

  return {
    /**
     * Puts someone who has just joined the org (an accepted invitation) into those of `teamIds` that still exist, as
     * member, in the caller's transaction; the teams joined, in the order given. Not audited here: the join's own
     * event names the teams. The membership must exist already (team_members refers to it).
     */
    async placeNewMember(tx: Executor, orgId: string, userId: string, teamIds: readonly string[], now: Date): Promise<string[]> {
      const joined: string[] = [];
      for (const teamId of teamIds) {
        if (!(await repo.find(tx, orgId, teamId, "key share"))) continue;
        if (await repo.insertMember(tx, orgId, teamId, userId, "member", now)) joined.push(teamId);
      }
      return joined;
    },

    /** The team's direct members, by user id. */
    async list(m: OrgMembership, teamId: string, opts: { after?: string; limit: number }): Promise<TeamMemberRow[]> {
      await access.require(m, "teams:read", { ref: { type: "team", id: teamId }, relation: "read" });
      return db.tx({ orgId: m.orgId }, async (tx) => {
        if (!(await repo.find(tx, m.orgId, teamId))) throw teamNotFound(teamId);
        return repo.listMembers(tx, m.orgId, teamId, opts);
      });
    },

    /** Adds a member of the org to the team with `role`, or changes their role; `created` tells which. */
    async put(
      m: OrgMembership,
      teamId: string,
      userId: string,
      role: "maintainer" | "member",
      actor: AuditActor,
    ): Promise<{ member: TeamMemberRow; created: boolean }> {
      await requireTeamAdmin(access, m, "teams:update", teamId);
      const { orgId } = m;
      let changed = false;
      const result = await db.tx({ orgId }, async (tx) => {
        await lockTeam(tx, orgId, teamId);
        if (!(await repo.isOrgMember(tx, orgId, userId))) {
          throw teamsError("USER_NOT_ORG_MEMBER", `User ${userId} is not a member of this organization.`, { field: "userId" });
        }
        const target = { type: "team", id: teamId };
        if (await repo.insertMember(tx, orgId, teamId, userId, role, clock.now())) {
          await audit.record(tx, actor, { orgId, action: "team.member_added", target, diff: { user_id: [null, userId], role: [null, role] } });
          changed = true;
          return { member: (await repo.findMember(tx, orgId, teamId, userId)) as TeamMemberRow, created: true };
        }
        const before = (await repo.findMember(tx, orgId, teamId, userId, true)) as TeamMemberRow;
        if (before.role === role) return { member: before, created: false };
        await repo.setMemberRole(tx, orgId, teamId, userId, role);
        await audit.record(tx, actor, { orgId, action: "team.member_role_changed", target, diff: { user_id: [userId, userId], role: [before.role, role] } });
        changed = true;
        return { member: { ...before, role }, created: false };
      });
      if (changed) await access.invalidate(orgId);
      return result;
    },

    async remove(m: OrgMembership, teamId: string, userId: string, actor: AuditActor): Promise<void> {
      await requireTeamAdmin(access, m, "teams:update", teamId);
      const { orgId } = m;
      await db.tx({ orgId }, async (tx) => {
        await lockTeam(tx, orgId, teamId);
        const role = await repo.deleteMember(tx, orgId, teamId, userId);
        if (!role) throw teamsError("TEAM_MEMBER_NOT_FOUND", `User ${userId} is not in this team.`, { field: "userId" });
        await audit.record(tx, actor, {
          orgId,
          action: "team.member_removed",
          target: { type: "team", id: teamId },
          diff: { user_id: [userId, null], role: [role, null] },
        });
      });
      await access.invalidate(orgId);
    },
  };
}

export type TeamMembersService = ReturnType<typeof createTeamMembersService>;
