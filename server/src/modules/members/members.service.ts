import type { Database, Executor } from "../../db/client.ts";
import type { Clock } from "../../lib/clock.ts";
import { platformError } from "../../lib/errors.ts";
import type { AccessService, OrgMembership } from "../access/access.service.ts";
import { BUILT_IN_ROLES, isBuiltInRole, type Permission } from "../access/permissions.ts";
import type { AuditActor, AuditService } from "../audit/audit.service.ts";
import { membersError } from "./members.errors.ts";
import type { MemberFilter, MemberRow, MembersRepo } from "./members.repo.ts";

/** The first permission of `wanted` the caller does not hold (in catalog order when `wanted` is), or undefined. */
export function firstMissing(wanted: Iterable<string>, held: ReadonlySet<Permission>): string | undefined {
  for (const p of wanted) if (!held.has(p as Permission)) return p;
  return undefined;
}

const memberNotFound = () => membersError("MEMBER_NOT_FOUND", "No such member of this organization.", { field: "userId" });
const orgGone = () => platformError("NOT_FOUND", "No organization that you belong to.", { field: "orgId" });

/**
 * Members of an org: list, change role, remove, leave. The rules: nobody changes their own role; only owners touch
 * owners or make owners; nobody assigns, or touches a holder of, a role with a permission they lack themselves; an
 * org always keeps an owner. Each change runs in one transaction holding the org's owner rows, so two concurrent
 * changes cannot both pass the last-owner check, and ends with access.invalidate: the next request sees it.
 */
export function createMembersService(deps: {
  db: Database;
  clock: Clock;
  repo: MembersRepo;
  audit: Pick<AuditService, "record">;
  access: Pick<AccessService, "invalidate">;
}) {
  const { db, clock, repo, audit, access } = deps;

  /** A role's permissions in the org, the custom role's row share-locked so it cannot be deleted under the assignment. */
  async function permissionsOfRole(tx: Executor, orgId: string, role: string): Promise<readonly string[] | undefined> {
    if (isBuiltInRole(role)) return BUILT_IN_ROLES[role].permissions;
    return (await repo.findRole(tx, orgId, { name: role }, "share"))?.permissions;
  }

  /** The locked rows of the caller and the target, and how many owners the org has under the lock. */
  async function lockFor(tx: Executor, orgId: string, callerId: string, targetId: string) {
    const locked = await repo.lockOwnersAnd(tx, orgId, [callerId, targetId]);
    const caller = locked.find((r) => r.userId === callerId);
    // removed (or the org emptied) since this request's membership was read
    if (!caller) throw orgGone();
    const target = locked.find((r) => r.userId === targetId);
    return { caller, target, owners: locked.filter((r) => r.role === "owner").length };
  }

  /** A role is "above" the caller when it holds a permission the caller lacks (role, or peer grant, alike). */
  function requireNotAbove(caller: OrgMembership, role: string, permissions: readonly string[], what: string): void {
    const missing = firstMissing(permissions, caller.permissions);
    if (missing) {
      throw membersError("ROLE_ABOVE_OWN", `You cannot ${what}: the role ${role} holds ${missing}, which you do not have.`, { extra: { permission: missing } });
    }
  }

  async function endMembership(orgId: string, caller: OrgMembership, targetId: string, actor: AuditActor): Promise<void> {
    const self = targetId === caller.userId;
    await db.tx({ orgId }, async (tx) => {
      const { caller: me, target, owners } = await lockFor(tx, orgId, caller.userId, targetId);
      if (!target) throw memberNotFound();
      if (!self) {
        if (target.role === "owner" && me.role !== "owner") throw membersError("OWNER_ONLY", "Only an owner can remove an owner.");
        requireNotAbove(caller, target.role, (await permissionsOfRole(tx, orgId, target.role)) ?? [], "remove this member");
      }
      if (target.role === "owner" && owners <= 1) {
        throw membersError("LAST_OWNER", self ? "You are the last owner: make another member owner before you leave." : "This is the organization's last owner.");
      }
      const now = clock.now();
      const ended = await repo.removeMembership(tx, orgId, targetId, self ? "left_org" : "removed_from_org", now);
      await audit.record(tx, actor, {
        orgId,
        action: self ? "member.left" : "member.removed",
        target: { type: "user", id: targetId },
        diff: { role: [target.role, null], removed_grants: ended.grants, revoked_sessions: ended.sessions },
      });
      // their API keys end with their membership (and access.invalidate below drops them from every cache)
      const reason = self ? "owner_left" : "owner_removed";
      for (const keyId of await repo.revokeApiKeys(tx, orgId, targetId, reason, now)) {
        await audit.record(tx, actor, { orgId, action: "key.revoked", target: { type: "api_key", id: keyId }, diff: { revoked_reason: [null, reason] } });
      }
    });
    await access.invalidate(orgId);
  }

  async function get(orgId: string, userId: string): Promise<MemberRow> {
    const m = await db.tx({ orgId }, (tx) => repo.find(tx, orgId, userId));
    if (!m) throw memberNotFound();
    return m;
  }

  return {
    get,

    async list(orgId: string, filter: MemberFilter, limit: number): Promise<MemberRow[]> {
      return db.tx({ orgId }, (tx) => repo.list(tx, orgId, filter, limit));
    },

    async changeRole(caller: OrgMembership, userId: string, role: string, actor: AuditActor): Promise<MemberRow> {
      const { orgId } = caller;
      if (userId === caller.userId) throw membersError("CANNOT_CHANGE_OWN_ROLE", "Nobody changes their own role; ask another member who may.");
      const result = await db.tx({ orgId }, async (tx) => {
        const { caller: me, target, owners } = await lockFor(tx, orgId, caller.userId, userId);
        if (!target) throw memberNotFound();
        if (target.role === "owner" && me.role !== "owner") throw membersError("OWNER_ONLY", "Only an owner can change an owner's role.");
        if (role === "owner" && me.role !== "owner") throw membersError("OWNER_ONLY", "Only an owner can make someone an owner.");
        const granted = await permissionsOfRole(tx, orgId, role);
        if (!granted) throw platformError("VALIDATION_FAILED", `role ${role} is neither a built-in role nor a custom role of this organization.`, { field: "role" });
        requireNotAbove(caller, target.role, (await permissionsOfRole(tx, orgId, target.role)) ?? [], "change this member's role");
        requireNotAbove(caller, role, granted, "assign this role");
        if (target.role === role) return { changed: false };
        if (target.role === "owner" && owners <= 1) throw membersError("LAST_OWNER", "This is the organization's last owner.");
        await repo.setRole(tx, orgId, userId, role);
        await audit.record(tx, actor, { orgId, action: "member.role_changed", target: { type: "user", id: userId }, diff: { role: [target.role, role] } });
        return { changed: true };
      });
      if (result.changed) await access.invalidate(orgId);
      return get(orgId, userId);
    },

    /** Removes another member (or, for oneself, leaves). Their access to the org ends with this call. */
    async remove(caller: OrgMembership, userId: string, actor: AuditActor): Promise<void> {
      await endMembership(caller.orgId, caller, userId, actor);
    },

    async leave(caller: OrgMembership, actor: AuditActor): Promise<void> {
      await endMembership(caller.orgId, caller, caller.userId, actor);
    },
  };
}

export type MembersService = ReturnType<typeof createMembersService>;
