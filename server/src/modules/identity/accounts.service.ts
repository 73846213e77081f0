import type { Database, Executor } from "../../db/client.ts";
import type { Clock } from "../../lib/clock.ts";
import type { AuditActor, AuditService } from "../audit/audit.service.ts";
import { PLATFORM_AUDIT_ORG } from "../audit/audit.service.ts";
import { identityError } from "./identity.errors.ts";
import type { IdentityRepo, UserRow } from "./identity.repo.ts";
import type { SessionRevocations } from "./session-revocations.ts";

/** Who disables an account: a platform admin through the API (checked here), or the operator through the CLI. */
export type AccountsCaller = { kind: "admin"; userId: string } | { kind: "operator" };

/**
 * Platform-level account management: disabling and enabling accounts. A disabled account cannot sign in, its
 * sessions are revoked (their access tokens stop at the next request on every instance), and its API keys and any
 * token acting for it stop on org routes (its memberships no longer count). Audited in the platform's audit chain as
 * user.disabled / user.enabled.
 */
export function createAccountsService(deps: {
  db: Database;
  clock: Clock;
  repo: IdentityRepo;
  audit: Pick<AuditService, "record">;
  revocations: Pick<SessionRevocations, "revoked">;
  /** After the commit: the account's access changed in every org it belongs to (access caches drop it). */
  onAccountChanged: (userId: string) => Promise<void>;
}) {
  const { db, clock, repo, audit, revocations } = deps;

  async function requireAdmin(ex: Executor, caller: AccountsCaller): Promise<void> {
    if (caller.kind === "operator") return;
    const me = await repo.findUserById(ex, caller.userId);
    if (!me?.isPlatformAdmin || me.disabledAt) throw identityError("PLATFORM_ADMIN_REQUIRED", "Disabling and enabling accounts is for platform admins.");
  }

  async function setDisabled(caller: AccountsCaller, userId: string, disable: boolean, actor: AuditActor): Promise<{ user: UserRow; revokedSessions: number }> {
    if (caller.kind === "admin" && caller.userId === userId && disable) {
      throw identityError("CANNOT_DISABLE_SELF", "You cannot disable your own account.", { field: "userId" });
    }
    const now = clock.now();
    const { user, revoked } = await db.tx({ orgId: PLATFORM_AUDIT_ORG }, async (tx) => {
      await requireAdmin(tx, caller);
      const before = await repo.findUserById(tx, userId);
      if (!before) throw identityError("USER_NOT_FOUND", "No such user.", { field: "userId" });
      // disabling a disabled account (or enabling an enabled one) changes nothing and records nothing
      if ((before.disabledAt !== null) === disable) return { user: before, revoked: [] as string[] };
      const user = (await repo.updateUser(tx, userId, { disabledAt: disable ? now : null, updatedAt: now }))!;
      const revoked = disable ? await repo.revokeUserSessions(tx, userId, "account_disabled", now) : [];
      await audit.record(tx, actor, {
        orgId: PLATFORM_AUDIT_ORG,
        action: disable ? "user.disabled" : "user.enabled",
        target: { type: "user", id: userId },
        diff: { disabled: [!disable, disable], ...(disable ? { revoked_sessions: revoked.length } : {}) },
      });
      return { user, revoked };
    });
    if (revoked.length) await revocations.revoked(revoked);
    await deps.onAccountChanged(userId);
    return { user, revokedSessions: revoked.length };
  }

  return {
    disable: (caller: AccountsCaller, userId: string, actor: AuditActor) => setDisabled(caller, userId, true, actor),
    enable: (caller: AccountsCaller, userId: string, actor: AuditActor) => setDisabled(caller, userId, false, actor),
    /** The account with this (canonical) email, for the CLI. */
    byEmail: (email: string) => db.read((ex) => repo.findUserByEmail(ex, email)),
  };
}

export type AccountsService = ReturnType<typeof createAccountsService>;
