import type { Database } from "../../db/client.ts";
import type { Clock } from "../../lib/clock.ts";
import { randomToken, sha256 } from "../../lib/crypto.ts";
import { canonicalEmail, requireEmail } from "../../lib/email.ts";
import type { JobPayload, JobQueue } from "../../jobs/queue.ts";
import type { Mailer } from "../../mail/mailer.ts";
import { countOrRefuse, type AbuseThrottles } from "./abuse.ts";
import { identityError } from "./identity.errors.ts";
import type { EmailTokenPurpose, IdentityRepo, RequestMeta, UserRow } from "./identity.repo.ts";
import { EMAIL_JOB } from "./identity.service.ts";
import { hashPassword, passwordProblem } from "./passwords.ts";
import type { SessionsService, TokenPair } from "./sessions.service.ts";
import { renderEmail } from "./emails.ts";

/** How long each emailed token lives. */
export const EMAIL_TOKEN_TTL_SECONDS: Record<EmailTokenPurpose, number> = {
  verify_email: 24 * 3600,
  reset_password: 3600,
  magic_link: 15 * 60,
};

const PURPOSES: EmailTokenPurpose[] = ["verify_email", "reset_password", "magic_link"];

/**
 * Email verification, password reset and magic-link sign-in. Requests only enqueue a job naming the user; the job
 * makes the token when it runs, so no secret ever sits in a job payload, and the raw token exists only in the mail.
 */
export function createEmailFlowsService(deps: {
  db: Database;
  repo: IdentityRepo;
  sessions: Pick<SessionsService, "startSession" | "issue" | "revoked">;
  jobs: Pick<JobQueue, "enqueue" | "kick" | "register">;
  mailer: Pick<Mailer, "send">;
  throttles: AbuseThrottles;
  clock: Clock;
  publicUrl: string;
}) {
  const { db, repo, sessions, jobs, mailer, throttles: th, clock } = deps;

  /** The job: make a fresh token (older ones of the purpose die) and mail the link. */
  async function sendEmail(payload: JobPayload): Promise<void> {
    const purpose = payload.purpose as EmailTokenPurpose;
    const userId = String(payload.userId);
    if (!PURPOSES.includes(purpose)) throw new Error(`unknown email purpose ${String(purpose)}`);
    const token = randomToken(32);
    const now = clock.now();
    const user = await db.tx({ userId }, async (tx) => {
      const u = await repo.findUserById(tx, userId);
      if (!u) return undefined;
      if (purpose === "verify_email" && u.emailVerifiedAt) return undefined;
      await repo.expireEmailTokens(tx, userId, purpose, now);
      await repo.insertEmailToken(tx, {
        userId,
        purpose,
        email: u.email,
        tokenHash: sha256(token),
        expiresAt: new Date(now.getTime() + EMAIL_TOKEN_TTL_SECONDS[purpose] * 1000),
        now,
      });
      return u;
    });
    if (!user) return; // the account is gone or already verified: nothing to send
    await mailer.send(renderEmail(purpose, { to: user.email, name: user.name, token, publicUrl: deps.publicUrl }));
  }
  jobs.register(EMAIL_JOB, sendEmail);

  /** `email` is canonical (lib/email.ts); `known` is the account when the caller already has it (resend). */
  async function enqueueFor(email: string, purpose: EmailTokenPurpose, meta: RequestMeta, known?: UserRow): Promise<void> {
    await countOrRefuse([
      [th.emailPerIp, meta.ip],
      [th.emailPerAccount, `${purpose}:${email}`],
    ]);
    const user = known ?? (await db.read((r) => repo.findUserByEmail(r, email)));
    // Unknown addresses get the same answer and no mail, so the endpoint does not reveal who has an account.
    if (!user || user.disabledAt) return;
    await db.tx({ userId: user.id }, (tx) => jobs.enqueue(tx, EMAIL_JOB, { purpose, userId: user.id }));
    jobs.kick();
  }

  function badToken(): Error {
    return identityError("INVALID_EMAIL_TOKEN", "This link is invalid, expired or already used.", { field: "token" });
  }

  return {
    async resendVerification(userId: string, meta: RequestMeta): Promise<void> {
      const user = await db.read((r) => repo.findUserById(r, userId));
      if (!user) throw identityError("USER_NOT_FOUND", "This account no longer exists.");
      if (user.emailVerifiedAt) throw identityError("EMAIL_ALREADY_VERIFIED", "This email address is already verified.");
      await enqueueFor(canonicalEmail(user.email), "verify_email", meta, user);
    },

    async verifyEmail(token: string): Promise<void> {
      const now = clock.now();
      const ok = await db.tx({}, async (tx) => {
        const row = await repo.consumeEmailToken(tx, sha256(token), "verify_email", now);
        if (!row) return false;
        const user = await repo.findUserById(tx, row.userId);
        if (!user || user.email !== row.email) return false;
        if (!user.emailVerifiedAt) await repo.updateUser(tx, user.id, { emailVerifiedAt: now, updatedAt: now });
        return true;
      });
      if (!ok) throw badToken();
    },

    requestPasswordReset: async (email: string, meta: RequestMeta) => enqueueFor(requireEmail(email), "reset_password", meta),

    /** Sets the new password, spends the token and signs out every session. */
    async confirmPasswordReset(input: { token: string; new_password: string }, meta: RequestMeta): Promise<void> {
      const hash = sha256(input.token);
      const live = await db.read((r) => repo.findLiveEmailToken(r, hash, "reset_password", clock.now()));
      if (!live) throw badToken();
      const problem = passwordProblem(input.new_password, live.email);
      if (problem) throw identityError("WEAK_PASSWORD", `The password ${problem}.`, { field: "new_password" });
      const passwordHash = await hashPassword(input.new_password);
      const now = clock.now();
      const revoked = await db.tx({ userId: live.userId }, async (tx) => {
        const row = await repo.consumeEmailToken(tx, hash, "reset_password", now);
        if (!row) return undefined; // a concurrent use won
        await repo.setPasswordHash(tx, row.userId, passwordHash, now);
        const ids = await repo.revokeUserSessions(tx, row.userId, "password_reset", now);
        await repo.insertSecurityEvent(tx, { userId: row.userId, kind: "password_reset", detail: { revoked_sessions: ids.length }, meta, now });
        return ids;
      });
      if (!revoked) throw badToken();
      await sessions.revoked(revoked);
    },

    requestMagicLink: async (email: string, meta: RequestMeta) => enqueueFor(requireEmail(email), "magic_link", meta),

    /** Signs in with a magic link; the link also proves the address, so it verifies the email. */
    async consumeMagicLink(token: string, meta: RequestMeta): Promise<TokenPair> {
      const now = clock.now();
      const started = await db.tx({}, async (tx) => {
        const row = await repo.consumeEmailToken(tx, sha256(token), "magic_link", now);
        if (!row) return undefined;
        const user = await repo.findUserById(tx, row.userId);
        if (!user || user.disabledAt || user.email !== row.email) return undefined;
        if (!user.emailVerifiedAt) await repo.updateUser(tx, user.id, { emailVerifiedAt: now, updatedAt: now });
        await repo.insertLoginAttempt(tx, { userId: user.id, method: "magic_link", result: "success", meta, now });
        return sessions.startSession(tx, user.id, "magic_link", meta);
      });
      if (!started) throw badToken();
      return sessions.issue(started);
    },
  };
}

export type EmailFlowsService = ReturnType<typeof createEmailFlowsService>;
