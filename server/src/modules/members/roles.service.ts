import type { Database } from "../../db/client.ts";
import type { Clock } from "../../lib/clock.ts";
import { platformError, type AppErrorOptions } from "../../lib/errors.ts";
import { newId } from "../../lib/ids.ts";
import { isUniqueViolation } from "../../lib/pg-errors.ts";
import type { AccessService, OrgMembership } from "../access/access.service.ts";
import { builtInRolePermissions, missingFrom, requireWithin } from "../access/authority.ts";
import { ALL_PERMISSIONS, BUILT_IN_ROLES, isBuiltInRole, isPermission, type BuiltInRole } from "../access/permissions.ts";
import type { AuditActor, AuditService } from "../audit/audit.service.ts";
import { membersError } from "./members.errors.ts";
import type { CustomRoleRow, MembersRepo } from "./members.repo.ts";

/** An org has at most this many custom roles, so the roles list needs no pages. */
export const MAX_CUSTOM_ROLES = 100;

export interface RoleView {
  id: string | null;
  name: string;
  builtIn: boolean;
  description: string;
  permissions: string[];
  memberCount: number;
  createdAt: Date | null;
  updatedAt: Date | null;
}

const custom = (r: CustomRoleRow, memberCount: number): RoleView => ({ ...r, builtIn: false, memberCount });
const roleNotFound = () => membersError("ROLE_NOT_FOUND", "No such custom role in this organization.", { field: "roleId" });

/** Known names in catalog order, duplicates dropped; an unknown name is a 400 naming it. */
function normalize(permissions: readonly string[]): string[] {
  permissions.forEach((p, i) => {
    if (!isPermission(p))
      throw platformError("VALIDATION_FAILED", `permissions.${i} ${p} is not a permission (see GET /v1/permissions).`, { field: `permissions.${i}` });
  });
  const wanted = new Set(permissions);
  return ALL_PERMISSIONS.filter((p) => wanted.has(p));
}

/** Nothing the caller lacks goes into a role (authority.ts, with this code): a role manager cannot mint power. */
const notHeld = {
  subject: "A role",
  field: "permissions",
  error: (detail: string, options: AppErrorOptions) => membersError("PERMISSION_NOT_HELD", detail, options),
};

/**
 * The org's roles: the built-in ones and its custom roles (named subsets of the permission catalog). Memberships name
 * a custom role by its name, which therefore never changes; a role's permissions do, for every holder at once.
 */
export function createRolesService(deps: {
  db: Database;
  clock: Clock;
  repo: MembersRepo;
  audit: Pick<AuditService, "record">;
  access: Pick<AccessService, "invalidate">;
}) {
  const { db, clock, repo, audit, access } = deps;

  return {
    async list(orgId: string): Promise<RoleView[]> {
      const { roles, counts } = await db.tx({ orgId }, async (tx) => ({ roles: await repo.listRoles(tx, orgId), counts: await repo.roleCounts(tx, orgId) }));
      const builtIn = (Object.keys(BUILT_IN_ROLES) as BuiltInRole[]).map(
        (name): RoleView => ({
          id: null,
          name,
          builtIn: true,
          description: BUILT_IN_ROLES[name].description,
          permissions: [...builtInRolePermissions(name)],
          memberCount: counts.get(name) ?? 0,
          createdAt: null,
          updatedAt: null,
        }),
      );
      return [...builtIn, ...roles.map((r) => custom(r, counts.get(r.name) ?? 0))];
    },

    async get(orgId: string, roleId: string): Promise<RoleView> {
      return db.tx({ orgId }, async (tx) => {
        const role = await repo.findRole(tx, orgId, { id: roleId });
        if (!role) throw roleNotFound();
        return custom(role, (await repo.roleUsage(tx, orgId, role.name, clock.now())).members);
      });
    },

    async create(caller: OrgMembership, input: { name: string; description?: string; permissions: string[] }, actor: AuditActor): Promise<RoleView> {
      const { orgId } = caller;
      if (isBuiltInRole(input.name)) throw membersError("ROLE_NAME_TAKEN", `${input.name} is a built-in role.`, { field: "name" });
      const permissions = normalize(input.permissions);
      requireWithin(caller, permissions, notHeld);
      const now = clock.now();
      try {
        return await db.tx({ orgId }, async (tx) => {
          if ((await repo.countRoles(tx, orgId)) >= MAX_CUSTOM_ROLES) {
            throw membersError("TOO_MANY_ROLES", `An organization has at most ${MAX_CUSTOM_ROLES} custom roles; delete one first.`);
          }
          const description = input.description?.trim() ?? "";
          const role = await repo.insertRole(tx, orgId, {
            id: newId("role", now.getTime()),
            name: input.name,
            description,
            permissions,
            createdBy: caller.userId,
            now,
          });
          await audit.record(tx, actor, {
            orgId,
            action: "role.created",
            target: { type: "role", id: role.id },
            diff: { name: [null, role.name], description: [null, description], permissions: [null, permissions] },
          });
          return custom(role, 0);
        });
      } catch (e) {
        if (isUniqueViolation(e)) throw membersError("ROLE_NAME_TAKEN", `This organization already has a role named ${input.name}.`, { field: "name" });
        throw e;
      }
    },

    /** Changes description and permissions; only permissions the caller holds may be added. Holders feel it at once. */
    async update(caller: OrgMembership, roleId: string, patch: { description?: string; permissions?: string[] }, actor: AuditActor): Promise<RoleView> {
      const { orgId } = caller;
      const wanted = patch.permissions === undefined ? undefined : normalize(patch.permissions);
      const out = await db.tx({ orgId }, async (tx) => {
        const before = await repo.findRole(tx, orgId, { id: roleId }, "update");
        if (!before) throw roleNotFound();
        const permissions = wanted ?? before.permissions;
        // what the role holds already may stay, held by the caller or not: only what is added must be theirs
        requireWithin(caller, missingFrom(new Set(before.permissions.filter(isPermission)), permissions), notHeld);
        const description = patch.description?.trim() ?? before.description;
        const diff: Record<string, [unknown, unknown]> = {};
        if (description !== before.description) diff.description = [before.description, description];
        if (permissions.join(",") !== before.permissions.join(",")) diff.permissions = [before.permissions, permissions];
        const members = (await repo.roleUsage(tx, orgId, before.name, clock.now())).members;
        if (!Object.keys(diff).length) return { role: custom(before, members), changed: false };
        const after = await repo.updateRole(tx, orgId, roleId, { description, permissions, now: clock.now() });
        await audit.record(tx, actor, { orgId, action: "role.updated", target: { type: "role", id: roleId }, diff });
        return { role: custom(after, members), changed: "permissions" in diff };
      });
      if (out.changed) await access.invalidate(orgId);
      return out.role;
    },

    /** Deletes a role nobody holds and no pending invitation offers. */
    async delete(caller: OrgMembership, roleId: string, actor: AuditActor): Promise<void> {
      const { orgId } = caller;
      await db.tx({ orgId }, async (tx) => {
        // locked: a concurrent assignment (which share-locks the role) either lands first and is counted, or waits and fails
        const role = await repo.findRole(tx, orgId, { id: roleId }, "update");
        if (!role) throw roleNotFound();
        const usage = await repo.roleUsage(tx, orgId, role.name, clock.now());
        if (usage.members || usage.invitations) {
          const parts = [
            usage.members && `${usage.members} member${usage.members === 1 ? "" : "s"}`,
            usage.invitations && `${usage.invitations} pending invitation${usage.invitations === 1 ? "" : "s"}`,
          ].filter(Boolean);
          throw membersError("ROLE_IN_USE", `The role ${role.name} is in use by ${parts.join(" and ")}; give them another role first.`);
        }
        await repo.deleteRole(tx, orgId, roleId);
        await audit.record(tx, actor, {
          orgId,
          action: "role.deleted",
          target: { type: "role", id: roleId },
          diff: { name: [role.name, null], description: [role.description, null], permissions: [role.permissions, null] },
        });
      });
      await access.invalidate(orgId);
    },
  };
}

export type RolesService = ReturnType<typeof createRolesService>;
