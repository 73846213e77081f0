import type { Database, Executor } from "../../db/client.ts";
import type { Clock } from "../../lib/clock.ts";
import { platformError } from "../../lib/errors.ts";
import { isId, newId } from "../../lib/ids.ts";
import { isUniqueViolation } from "../../lib/pg-errors.ts";
import type { AccessService, OrgMembership } from "../access/access.service.ts";
import type { GrantOwnerOps } from "../access/grants.owners.ts";
import type { AuditActor, AuditService } from "../audit/audit.service.ts";
import { MAX_TEAM_DEPTH, teamsError } from "./teams.errors.ts";
import type { TeamsRepo } from "./teams.repo.ts";
import type { TeamDetailRow, TeamNode, TeamRow } from "./teams.schemas.ts";

export type TeamsAccess = Pick<AccessService, "require" | "decide" | "invalidate">;

export const teamNotFound = (teamId: string) => teamsError("TEAM_NOT_FOUND", `No team ${teamId} in this organization.`, { field: "teamId" });
const parentNotFound = (parentId: string) =>
  teamsError("TEAM_PARENT_NOT_FOUND", `No team ${parentId} in this organization to put it under.`, { field: "parent_id" });
const nameTaken = () => teamsError("TEAM_NAME_TAKEN", "Another team of this organization has this name.", { field: "name" });
const tooDeep = (depth: number) =>
  teamsError("TEAM_TOO_DEEP", `Teams nest at most ${MAX_TEAM_DEPTH} deep; this would make ${depth}.`, {
    field: "parent_id",
    extra: { max_depth: MAX_TEAM_DEPTH },
  });

/** The admin relation on a team: held org-wide through `permission`, or by a maintainer of the team or a team above it. */
export function requireTeamAdmin(access: TeamsAccess, m: OrgMembership, permission: "teams:update" | "teams:delete", teamId: string): Promise<void> {
  return access.require(m, permission, { ref: { type: "team", id: teamId }, relation: "admin" });
}

/**
 * Teams: a tree inside one org. Creating under a team, or moving a team under another, is administering the parent
 * (a grant to a team reaches the members of every team below it, so hanging a team under one is giving its members
 * that team's access). Moving to the top level is the org's to do (teams:update). Every change runs in one
 * transaction with its audit event, and ends with access.invalidate: the next request sees it.
 */
export function createTeamsService(deps: {
  db: Database;
  clock: Clock;
  repo: TeamsRepo;
  audit: Pick<AuditService, "record">;
  access: TeamsAccess;
  /** The access module's grants: a deleted team's go through it. */
  grants: Pick<GrantOwnerOps, "removeGrantsOf">;
}) {
  const { db, clock, repo, audit, access, grants: grantRows } = deps;

  /**
   * Before a team goes under `parentId`: a caller without teams:update org-wide must administer the parent. A parent
   * that does not exist is a bad parent_id (400), not a refusal, whoever asks.
   */
  async function requireParentAdmin(m: OrgMembership, parentId: string): Promise<void> {
    if (access.decide(m, "teams:update").allowed) return;
    const exists = await db.tx({ orgId: m.orgId }, (tx) => repo.find(tx, m.orgId, parentId));
    if (!exists) throw parentNotFound(parentId);
    await requireTeamAdmin(access, m, "teams:update", parentId);
  }

  async function parentFor(tx: Executor, orgId: string, parentId: string): Promise<TeamRow> {
    const parent = await repo.find(tx, orgId, parentId);
    if (!parent) throw parentNotFound(parentId);
    return parent;
  }

  async function uniqueName<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (isUniqueViolation(e)) throw nameTaken();
      throw e;
    }
  }

  return {
    /** One page of teams in creation order: every team, the top-level ones (parent null), or one team's children. */
    list(orgId: string, opts: { parent?: string | null; after?: string; limit: number }): Promise<TeamRow[]> {
      return db.tx({ orgId }, (tx) => repo.list(tx, orgId, opts));
    },

    /** The whole hierarchy, nested, from one query. */
    async tree(orgId: string): Promise<{ items: TeamNode[]; total: number }> {
      const outline = await db.tx({ orgId }, (tx) => repo.outline(tx, orgId));
      const nodes = new Map<string, TeamNode>();
      for (const t of outline) nodes.set(t.id, { id: t.id, name: t.name, children: [] });
      const items: TeamNode[] = [];
      for (const t of outline) {
        const node = nodes.get(t.id) as TeamNode;
        const parent = t.parent_id ? nodes.get(t.parent_id) : undefined;
        (parent ? parent.children : items).push(node);
      }
      return { items, total: outline.length };
    },

    /** A team, for anyone with teams:read or in the team (a member reads it), with its member count and ancestors. */
    async get(m: OrgMembership, teamId: string): Promise<TeamDetailRow> {
      await access.require(m, "teams:read", { ref: { type: "team", id: teamId }, relation: "read" });
      const team = await db.tx({ orgId: m.orgId }, (tx) => repo.findDetail(tx, m.orgId, teamId));
      if (!team) throw teamNotFound(teamId);
      return team;
    },

    /** A new team (under parent_id when given) with its creator as maintainer. */
    async create(m: OrgMembership, input: { name: string; description?: string | null; parent_id?: string | null }, actor: AuditActor): Promise<TeamRow> {
      const parentId = input.parent_id ?? null;
      if (parentId) await requireParentAdmin(m, parentId);
      const { orgId } = m;
      const now = clock.now();
      const id = newId("team", now.getTime());
      const team = await uniqueName(() =>
        db.tx({ orgId }, async (tx) => {
          await repo.lockTree(tx, orgId);
          const parent = parentId ? await parentFor(tx, orgId, parentId) : undefined;
          const path = [...(parent?.path ?? []), id];
          if (path.length > MAX_TEAM_DEPTH) throw tooDeep(path.length);
          const name = input.name.trim();
          const description = input.description ?? null;
          const row = await repo.insert(tx, { id, orgId, name, description, parentId, path, createdBy: m.userId, now });
          // a person who creates a team maintains it; a service account (no membership row) does not become one
          const maintainer = isId("user", m.userId) ? m.userId : null;
          if (maintainer) await repo.insertMember(tx, orgId, id, maintainer, "maintainer", now);
          await audit.record(tx, actor, {
            orgId,
            action: "team.created",
            target: { type: "team", id },
            diff: { name: [null, name], description: [null, description], parent_id: [null, parentId], maintainer: [null, maintainer] },
          });
          return row;
        }),
      );
      await access.invalidate(orgId);
      return team;
    },

    /** Renames or re-describes a team; audited with the fields that changed. */
    async update(m: OrgMembership, teamId: string, patch: { name?: string; description?: string | null }, actor: AuditActor): Promise<TeamRow> {
      await requireTeamAdmin(access, m, "teams:update", teamId);
      const { orgId } = m;
      let changed = false;
      const team = await uniqueName(() =>
        db.tx({ orgId }, async (tx) => {
          const before = await repo.find(tx, orgId, teamId, "update");
          if (!before) throw teamNotFound(teamId);
          const set: { name?: string; description?: string | null } = {};
          const diff: Record<string, [unknown, unknown]> = {};
          const name = patch.name?.trim();
          if (name !== undefined && name !== before.name) [set.name, diff.name] = [name, [before.name, name]];
          if (patch.description !== undefined && patch.description !== before.description) {
            [set.description, diff.description] = [patch.description, [before.description, patch.description]];
          }
          if (!Object.keys(diff).length) return before;
          changed = true;
          const after = await repo.update(tx, orgId, teamId, set, clock.now());
          await audit.record(tx, actor, { orgId, action: "team.updated", target: { type: "team", id: teamId }, diff });
          return after;
        }),
      );
      if (changed) await access.invalidate(orgId);
      return team;
    },

    /**
     * Puts the team (and its whole subtree) under another team, or at the top level with null. Refuses a cycle (under
     * itself or a descendant) and a subtree that would end up deeper than MAX_TEAM_DEPTH.
     */
    async move(m: OrgMembership, teamId: string, parentId: string | null, actor: AuditActor): Promise<TeamRow> {
      await requireTeamAdmin(access, m, "teams:update", teamId);
      if (parentId === null) {
        if (!access.decide(m, "teams:update").allowed) {
          throw platformError("FORBIDDEN", "Moving a team to the top level needs the teams:update permission, which you do not have.", {
            extra: { permission: "teams:update" },
          });
        }
      } else if (parentId !== teamId) {
        await requireParentAdmin(m, parentId);
      }
      const { orgId } = m;
      let moved = false;
      const team = await db.tx({ orgId }, async (tx) => {
        await repo.lockTree(tx, orgId);
        const team = await repo.find(tx, orgId, teamId);
        if (!team) throw teamNotFound(teamId);
        if (team.parent_id === parentId) return team;
        const parent = parentId ? await parentFor(tx, orgId, parentId) : null;
        if (parent?.path.includes(teamId)) {
          throw teamsError(
            "TEAM_CYCLE",
            parentId === teamId ? "A team cannot be its own parent." : `Team ${parentId} is below this team: moving it there would make a cycle.`,
            { field: "parent_id" },
          );
        }
        const deepest = (parent?.path.length ?? 0) + (await repo.subtreeDepth(tx, orgId, teamId)) - team.path.length + 1;
        if (deepest > MAX_TEAM_DEPTH) throw tooDeep(deepest);
        await repo.move(tx, orgId, team, parent, clock.now());
        await audit.record(tx, actor, { orgId, action: "team.moved", target: { type: "team", id: teamId }, diff: { parent_id: [team.parent_id, parentId] } });
        moved = true;
        return (await repo.find(tx, orgId, teamId)) as TeamRow;
      });
      if (moved) await access.invalidate(orgId);
      return team;
    },

    /**
     * Deletes a team, with its memberships and every grant to or on it. A team with sub-teams is refused unless
     * `cascade`, which deletes the whole subtree (each team audited as team.deleted).
     */
    async remove(m: OrgMembership, teamId: string, opts: { cascade: boolean }, actor: AuditActor): Promise<{ deleted: string[]; grants: number }> {
      await requireTeamAdmin(access, m, "teams:delete", teamId);
      const { orgId } = m;
      const result = await db.tx({ orgId }, async (tx) => {
        await repo.lockTree(tx, orgId);
        const subtree = await repo.subtree(tx, orgId, teamId);
        if (!subtree.length) throw teamNotFound(teamId);
        if (subtree.length > 1 && !opts.cascade) {
          throw teamsError("TEAM_HAS_CHILDREN", `This team has ${subtree.length - 1} team(s) below it: move or delete them first, or pass cascade=true.`, {
            field: "teamId",
          });
        }
        const ids = subtree.map((t) => t.id);
        // grants to or on the teams are the access module's rows: it deletes them
        const grants = (await grantRows.removeGrantsOf(tx, orgId, { type: "team", ids })).length;
        await repo.deleteTeams(tx, orgId, ids);
        for (const t of subtree) {
          await audit.record(tx, actor, {
            orgId,
            action: "team.deleted",
            target: { type: "team", id: t.id },
            diff: { name: [t.name, null], parent_id: [t.parent_id, null], ...(t.id === teamId ? { grants_deleted: grants, teams_deleted: ids.length } : {}) },
          });
        }
        return { deleted: ids, grants };
      });
      await access.invalidate(orgId);
      return result;
    },
  };
}

export type TeamsService = ReturnType<typeof createTeamsService>;
