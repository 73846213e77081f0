import { actsAsRole, missingFrom, permissionsOfRole, requireWithin } from "../access/authority.ts";
import type { Database, Executor } from "../../db/client.ts";
import { platformError, type AppErrorOptions } from "../../lib/errors.ts";
import { isId } from "../../lib/ids.ts";
import type { AccessService, OrgMembership } from "../access/access.service.ts";
import type { GrantOwnerOps } from "../access/grants.owners.ts";
import type { Permission } from "../access/permissions.ts";
import type { AuditActor, AuditService } from "../audit/audit.service.ts";
import type { SessionsService } from "../identity/sessions.service.ts";
import type { KeyOwnerOps } from "../keys/api-keys.owners.ts";
import type { ClientMakerOps } from "../service-accounts/service-accounts.makers.ts";
import type { ServiceKeyMakerOps } from "../service-keys/service-keys.makers.ts";
import { membersError } from "./members.errors.ts";
import type { MemberFilter, MemberRow, MembersRepo } from "./members.repo.ts";

/** The credentials a removed member made for the org: still working (`revoked` false) or revoked with the removal. */
export interface CreatedCredentials {
  /** cli_… OAuth clients of service accounts. */
  oauthClients: string[];
  /** key_… API keys owned by service accounts. */
  serviceAccountKeys: string[];
  /** svk_… service key registrations. */
  serviceKeys: string[];
  revoked: boolean;
}

/** What ending a membership did. */
export interface MembershipEnded {
  userId: string;
  role: string;
  /** The member's own API keys, revoked with the membership. */
  revokedApiKeys: string[];
  createdCredentials: CreatedCredentials;
}

/**
 * The functions of the modules that own a member's other rows, each run in the ending transaction: identity's
 * sessions, the access module's grants, the keys module's API keys, service accounts' OAuth clients and the service
 * key registry.
 */
export interface MemberOwners {
  sessions: Pick<SessionsService, "revokeOrgSessions">;
  grants: Pick<GrantOwnerOps, "removeGrantsOf">;
  keys: Pick<KeyOwnerOps, "idsOf" | "revokeAllOf" | "serviceAccountKeysMadeBy" | "revokeServiceAccountKeysMadeBy">;
  clients: Pick<ClientMakerOps, "clientsCreatedBy" | "revokeClientsCreatedBy">;
  serviceKeys: Pick<ServiceKeyMakerOps, "keysCreatedBy" | "revokeCreatedBy">;
}

const REVOKE_CREDENTIALS_NEEDS = ["service-accounts:manage", "service-keys:manage"] as const;

const memberNotFound = () => membersError("MEMBER_NOT_FOUND", "No such member of this organization.", { field: "userId" });
const roleAboveOwn = (detail: string, options: AppErrorOptions) => membersError("ROLE_ABOVE_OWN", detail, options);
const NOTHING: ReadonlySet<Permission> = new Set();
const orgGone = () => platformError("NOT_FOUND", "No organization that you belong to.", { field: "orgId" });

/**
 * Members of an org: list, change role, remove, leave. The rules: nobody changes their own role; only owners touch
 * owners or make owners; nobody assigns, or touches a holder of, a role with a permission they lack themselves; an
 * org always keeps an owner. Each change runs in one transaction holding the org's owner rows, so two concurrent
 * changes cannot both pass the last-owner check, and ends with access.invalidate: the next request sees it.
 */
export function createMembersService(deps: {
  db: Database;
  repo: MembersRepo;
  audit: Pick<AuditService, "record">;
  access: Pick<AccessService, "invalidate">;
  /** The modules owning what a member leaves behind: their org sessions, their keys, what they made. */
  owners: MemberOwners;
  /** Told, after the commit, which sessions an ended membership revoked (their access tokens must stop everywhere). */
  onSessionsRevoked?: (sessionIds: string[]) => void | Promise<void>;
}) {
  const { db, repo, audit, access, owners } = deps;
  const onSessionsRevoked = deps.onSessionsRevoked ?? (() => {});

  /** A role's permissions in the org (authority.ts), a custom role's row share-locked: it cannot go under the assignment. */
  const roleLocked = (tx: Executor, orgId: string, role: string) =>
    permissionsOfRole(tx, orgId, role, async (ex, org, name) => (await repo.findRole(ex, org, { name }, "share"))?.permissions);

  /** Nobody changes or removes a member whose role holds a permission they lack (by role or peer grant alike). */
  async function requireTouchable(tx: Executor, caller: OrgMembership, target: { role: string }): Promise<void> {
    requireWithin(caller, (await roleLocked(tx, caller.orgId, target.role)) ?? NOTHING, {
      subject: `This member's role (${target.role})`,
      error: roleAboveOwn,
    });
  }

  /**
   * The locked rows of the caller and the target, and how many owners the org has under the lock. A service account
   * or a registered service (sa_…, svk_…) has no membership row: it acts on its permissions alone and is never an
   * owner, so it can change or remove non-owners its permissions cover (before, it got a misleading 404).
   */
  async function lockFor(tx: Executor, orgId: string, callerId: string, targetId: string) {
    const machine = !isId("user", callerId);
    const locked = await repo.lockOwnersAnd(tx, orgId, machine ? [targetId] : [callerId, targetId]);
    const caller = machine ? { userId: callerId, role: "" } : locked.find((r) => r.userId === callerId);
    // removed (or the org emptied) since this request's membership was read
    if (!caller) throw orgGone();
    const target = locked.find((r) => r.userId === targetId);
    return { caller, target, owners: locked.filter((r) => r.role === "owner").length };
  }

  /**
   * Ends a membership in one transaction: the membership, its teams and grants; the sessions opened for the org
   * (identity); the member's own API keys (keys). What the member made for the org (service accounts' OAuth clients
   * and keys, service key registrations) belongs to the org and keeps working, listed in the answer and the audit
   * event, unless `revokeCredentials` revokes it too (each revocation audited by its module).
   */
  async function endMembership(
    orgId: string,
    caller: OrgMembership,
    targetId: string,
    actor: AuditActor,
    revokeCredentials: boolean,
  ): Promise<MembershipEnded> {
    const self = targetId === caller.userId;
    const result = await db.tx({ orgId }, async (tx) => {
      const { caller: me, target, owners: ownerCount } = await lockFor(tx, orgId, caller.userId, targetId);
      if (!target) throw memberNotFound();
      if (!self) {
        if (target.role === "owner" && !(me.role === "owner" && actsAsRole(caller, "owner")))
          throw membersError("OWNER_ONLY", "Only an owner can remove an owner.");
        await requireTouchable(tx, caller, target);
      }
      if (target.role === "owner" && ownerCount <= 1) {
        throw membersError(
          "LAST_OWNER",
          self ? "You are the last owner: make another member owner before you leave." : "This is the organization's last owner.",
        );
      }
      await repo.removeMembership(tx, orgId, targetId);
      // the grants and peer grants they held belong to the access module (the ones they gave stop counting by themselves)
      const removedGrants = await owners.grants.removeGrantsOf(tx, orgId, { type: "user", ids: [targetId] });
      const sessionIds = await owners.sessions.revokeOrgSessions(tx, orgId, targetId, self ? "left_org" : "removed_from_org");
      const member = { type: "user" as const, id: targetId };
      // what they made names them, or one of their keys, as its maker
      const makers = [targetId, ...(await owners.keys.idsOf(tx, orgId, member))];
      // their API keys end with their membership (and access.invalidate below drops them from every cache)
      const revokedApiKeys = await owners.keys.revokeAllOf(tx, orgId, member, self ? "owner_left" : "owner_removed", actor);
      const reason = self ? "maker_left" : "maker_removed";
      const made: CreatedCredentials = revokeCredentials
        ? {
            oauthClients: await owners.clients.revokeClientsCreatedBy(tx, orgId, makers, reason, actor),
            serviceAccountKeys: await owners.keys.revokeServiceAccountKeysMadeBy(tx, orgId, makers, reason, actor),
            serviceKeys: await owners.serviceKeys.revokeCreatedBy(tx, orgId, makers, reason, actor),
            revoked: true,
          }
        : {
            oauthClients: await owners.clients.clientsCreatedBy(tx, orgId, makers),
            serviceAccountKeys: await owners.keys.serviceAccountKeysMadeBy(tx, orgId, makers),
            serviceKeys: await owners.serviceKeys.keysCreatedBy(tx, orgId, makers),
            revoked: false,
          };
      await audit.record(tx, actor, {
        orgId,
        action: self ? "member.left" : "member.removed",
        target: { type: "user", id: targetId },
        diff: {
          role: [target.role, null],
          removed_grants: removedGrants.length,
          revoked_sessions: sessionIds.length,
          revoked_api_keys: revokedApiKeys,
          created_credentials: {
            oauth_clients: made.oauthClients,
            service_account_keys: made.serviceAccountKeys,
            service_keys: made.serviceKeys,
            revoked: made.revoked,
          },
        },
      });
      return { ended: { userId: targetId, role: target.role, revokedApiKeys, createdCredentials: made }, sessionIds };
    });
    await access.invalidate(orgId);
    if (result.sessionIds.length) await onSessionsRevoked(result.sessionIds);
    return result.ended;
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
        if (target.role === "owner" && !(me.role === "owner" && actsAsRole(caller, "owner")))
          throw membersError("OWNER_ONLY", "Only an owner can change an owner's role.");
        if (role === "owner" && !(me.role === "owner" && actsAsRole(caller, "owner")))
          throw membersError("OWNER_ONLY", "Only an owner can make someone an owner.");
        const granted = await roleLocked(tx, orgId, role);
        if (!granted)
          throw platformError("VALIDATION_FAILED", `role ${role} is neither a built-in role nor a custom role of this organization.`, { field: "role" });
        await requireTouchable(tx, caller, target);
        requireWithin(caller, granted, { subject: `The role ${role}`, field: "role", error: roleAboveOwn });
        if (target.role === role) return { changed: false };
        if (target.role === "owner" && owners <= 1) throw membersError("LAST_OWNER", "This is the organization's last owner.");
        await repo.setRole(tx, orgId, userId, role);
        await audit.record(tx, actor, { orgId, action: "member.role_changed", target: { type: "user", id: userId }, diff: { role: [target.role, role] } });
        return { changed: true };
      });
      if (result.changed) await access.invalidate(orgId);
      return get(orgId, userId);
    },

    /**
     * Removes another member (or, for oneself, leaves). Their access to the org ends with this call; what they made
     * for the org keeps working unless `opts.revokeCredentials`.
     */
    async remove(caller: OrgMembership, userId: string, actor: AuditActor, opts: { revokeCredentials?: boolean } = {}): Promise<MembershipEnded> {
      if (opts.revokeCredentials) {
        // revoking a service account's clients and keys, or a service's registration, is what these permissions allow
        const missing = missingFrom(caller.permissions, REVOKE_CREDENTIALS_NEEDS);
        if (missing.length) {
          throw platformError("FORBIDDEN", `Revoking the credentials the member made needs ${missing.join(", ")}, which you do not have.`, {
            field: "revoke_credentials",
            extra: { permission: missing[0], missing },
          });
        }
      }
      return endMembership(caller.orgId, caller, userId, actor, opts.revokeCredentials ?? false);
    },

    async leave(caller: OrgMembership, actor: AuditActor): Promise<MembershipEnded> {
      return endMembership(caller.orgId, caller, caller.userId, actor, false);
    },

    /** Adds a membership in the caller's transaction (an accepted invitation): see createMembershipWrites. */
    add: createMembershipWrites({ repo }).add,
    /** Whether the user is a member of the org (in the caller's transaction). */
    async isMember(ex: Executor, orgId: string, userId: string): Promise<boolean> {
      return (await repo.find(ex, orgId, userId)) !== undefined;
    },
  };
}

/**
 * Writing memberships, which only the members module does: an accepted invitation, and a new org's first owner (orgs
 * is wired before members, since identity makes personal orgs and a removal needs identity's sessions). Runs in the
 * caller's transaction; the caller checks who may join and invalidates the org's access facts after the commit.
 */
export function createMembershipWrites(deps: { repo: Pick<MembersRepo, "insertMembership"> }) {
  const { repo } = deps;
  return {
    async add(tx: Executor, m: { orgId: string; userId: string; role: string; now: Date }): Promise<void> {
      await repo.insertMembership(tx, m);
    },
  };
}

export type MembershipWrites = ReturnType<typeof createMembershipWrites>;

export type MembersService = ReturnType<typeof createMembersService>;
