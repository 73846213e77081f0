import type { Database, Executor } from "../../db/client.ts";
import type { Clock } from "../../lib/clock.ts";
import { canonicalEmail, requireEmail } from "../../lib/email.ts";
import { isUniqueViolation } from "../../lib/pg-errors.ts";
import { newId } from "../../lib/ids.ts";
import type { JobQueue } from "../../jobs/queue.ts";
import type { OrgsService } from "../orgs/orgs.service.ts";
import { countOrRefuse, refuseIfBlocked, type AbuseThrottles } from "./abuse.ts";
import { identityError } from "./identity.errors.ts";
import type { IdentityRepo, RequestMeta, UserRow } from "./identity.repo.ts";
import { dummyPasswordHash, hashPassword, needsRehash, passwordProblem, verifyPassword } from "./passwords.ts";
import type { SessionsService, TokenPair } from "./sessions.service.ts";

export const EMAIL_JOB = "identity.send-email";

export interface ProfilePatch {
  name?: string;
  avatar_url?: string | null;
  locale?: string | null;
  timezone?: string | null;
}

/** Accounts: registration, password sign-in, the profile and its password. */
export function createIdentityService(deps: {
  db: Database;
  repo: IdentityRepo;
  sessions: Pick<SessionsService, "startSession" | "issue" | "revoked">;
  orgs: Pick<OrgsService, "createPersonalOrg">;
  jobs: Pick<JobQueue, "enqueue" | "kick">;
  throttles: AbuseThrottles;
  clock: Clock;
}) {
  const { db, repo, sessions, orgs, jobs, throttles: th, clock } = deps;

  function checkPassword(password: string, email: string, field: string): void {
    const problem = passwordProblem(password, email);
    if (problem) throw identityError("WEAK_PASSWORD", `The password ${problem}.`, { field });
  }

  async function createAccount(
    input: { email: string; password: string; name: string },
    meta: RequestMeta,
    verified?: { inTx: (tx: Executor, user: UserRow) => Promise<void>; method: string },
  ): Promise<{ user: UserRow; session?: { userId: string; sessionId: string; refreshToken: string } }> {
    const email = requireEmail(input.email);
    const name = input.name.trim();
    checkPassword(input.password, email, "password");
    // Registration reveals whether an email is taken, so it is throttled per IP and per address.
    await countOrRefuse([
      [th.registerPerIp, meta.ip],
      [th.registerPerEmail, email],
    ]);
    const hash = await hashPassword(input.password); // outside the transaction: it takes tens of milliseconds
    const now = clock.now();
    const userId = newId("user", now.getTime());
    try {
      const done = await db.tx({ userId }, async (tx) => {
        if (await repo.findUserByEmail(tx, email)) return undefined;
        const created = await repo.insertUser(tx, { id: userId, email, name, emailVerifiedAt: verified ? now : null, createdAt: now, updatedAt: now });
        await repo.setPasswordHash(tx, userId, hash, now);
        await orgs.createPersonalOrg(tx, created, { type: "user", id: userId, ip: meta.ip, userAgent: meta.userAgent, requestId: meta.requestId });
        if (!verified) {
          await jobs.enqueue(tx, EMAIL_JOB, { purpose: "verify_email", userId });
          return { user: created };
        }
        await verified.inTx(tx, created);
        return { user: created, session: await sessions.startSession(tx, userId, verified.method, meta) };
      });
      if (!done) throw identityError("EMAIL_TAKEN", "An account with this email already exists.", { field: "email" });
      if (!verified) jobs.kick();
      return done;
    } catch (e) {
      if (isUniqueViolation(e)) throw identityError("EMAIL_TAKEN", "An account with this email already exists.", { field: "email" });
      throw e;
    }
  }

  return {
    async register(input: { email: string; password: string; name: string }, meta: RequestMeta): Promise<UserRow> {
      return (await createAccount(input, meta)).user;
    },

    /**
     * Registration through a link that proved the address (an invitation): the account is created verified, `inTx`
     * runs in the same transaction (joining the org), and a session starts there too, so either all of it happens or
     * none. `inTx` must scope the transaction to its own org first: the personal org's creation left it on that one.
     */
    async registerVerified(
      input: { email: string; password: string; name: string },
      meta: RequestMeta,
      inTx: (tx: Executor, user: UserRow) => Promise<void>,
      method = "invitation",
    ): Promise<{ user: UserRow; tokens: TokenPair }> {
      const { user, session } = await createAccount(input, meta, { inTx, method });
      return { user, tokens: await sessions.issue(session!) };
    },

    /** Unknown email and wrong password answer alike, and take about as long (a dummy hash is verified). */
    async login(input: { email: string; password: string; org_id?: string }, meta: RequestMeta): Promise<TokenPair> {
      const email = requireEmail(input.email);
      const accountKey = email;
      await refuseIfBlocked([
        [th.loginPerAccount, accountKey],
        [th.loginPerIp, meta.ip],
      ]);
      const found = await db.read((r) => repo.findLoginByEmail(r, email));
      const user = found?.user;
      const stored = found?.hash ?? undefined;
      const ok = await verifyPassword(stored ?? (await dummyPasswordHash()), input.password);
      const now = clock.now();
      if (!ok || !user || !stored) {
        await db.tx({ userId: user?.id }, (tx) =>
          repo.insertLoginAttempt(tx, { userId: user?.id ?? null, method: "password", result: "invalid_credentials", meta, now }),
        );
        await Promise.all([th.loginPerAccount.hit(accountKey), th.loginPerIp.hit(meta.ip)]);
        throw identityError("INVALID_CREDENTIALS", "The email or password is incorrect.");
      }
      if (user.disabledAt) {
        await db.tx({ userId: user.id }, (tx) => repo.insertLoginAttempt(tx, { userId: user.id, method: "password", result: "account_disabled", meta, now }));
        throw identityError("ACCOUNT_DISABLED", "This account is disabled.");
      }
      const upgraded = needsRehash(stored) ? await hashPassword(input.password) : undefined;
      const orgId = input.org_id;
      const started = await db.tx({ userId: user.id, orgId }, async (tx) => {
        if (orgId && !(await repo.isMemberOfLiveOrg(tx, orgId, user.id))) {
          // checked only after the password: a stranger learns nothing about the org
          throw identityError("NOT_A_MEMBER", "You do not belong to this organization.", { field: "org_id" });
        }
        if (upgraded) await repo.setPasswordHash(tx, user.id, upgraded, now);
        await repo.insertLoginAttempt(tx, { userId: user.id, method: "password", result: "success", meta, now });
        return sessions.startSession(tx, user.id, "password", meta, orgId);
      });
      await th.loginPerAccount.reset(accountKey);
      return sessions.issue(started);
    },

    async getMe(userId: string): Promise<UserRow> {
      const user = await db.read((r) => repo.findUserById(r, userId));
      if (!user) throw identityError("USER_NOT_FOUND", "This account no longer exists.");
      return user;
    },

    async updateMe(userId: string, patch: ProfilePatch): Promise<UserRow> {
      const set: Parameters<IdentityRepo["updateUser"]>[2] = { updatedAt: clock.now() };
      if (patch.name !== undefined) set.name = patch.name.trim();
      if (patch.avatar_url !== undefined) set.avatarUrl = patch.avatar_url;
      if (patch.locale !== undefined) set.locale = patch.locale;
      if (patch.timezone !== undefined) set.timezone = patch.timezone;
      const user = await db.tx({ userId }, (tx) => repo.updateUser(tx, userId, set));
      if (!user) throw identityError("USER_NOT_FOUND", "This account no longer exists.");
      return user;
    },

    /** Changing the password needs the current one and signs out every other session. */
    async changePassword(
      userId: string,
      sessionId: string | undefined,
      input: { current_password: string; new_password: string },
      meta: RequestMeta,
    ): Promise<{ revoked_sessions: number }> {
      const user = await this.getMe(userId);
      const stored = await db.read((r) => repo.getPasswordHash(r, userId));
      await refuseIfBlocked([[th.loginPerAccount, canonicalEmail(user.email)]]);
      if (!stored || !(await verifyPassword(stored, input.current_password))) {
        await th.loginPerAccount.hit(canonicalEmail(user.email));
        throw identityError("WRONG_CURRENT_PASSWORD", "The current password is incorrect.", { field: "current_password" });
      }
      checkPassword(input.new_password, user.email, "new_password");
      const hash = await hashPassword(input.new_password);
      const now = clock.now();
      const ids = await db.tx({ userId }, async (tx) => {
        await repo.setPasswordHash(tx, userId, hash, now);
        const ids = await repo.revokeUserSessions(tx, userId, "password_changed", now, sessionId);
        await repo.insertSecurityEvent(tx, { userId, kind: "password_changed", detail: { revoked_sessions: ids.length }, meta, now });
        return ids;
      });
      await sessions.revoked(ids);
      return { revoked_sessions: ids.length };
    },

    async listLogins(userId: string, limit: number, before?: string) {
      return db.tx({ userId }, (tx: Executor) => repo.listLoginAttempts(tx, userId, limit, before));
    },
  };
}

export type IdentityService = ReturnType<typeof createIdentityService>;
