import type { Database, Executor } from "../../db/client.ts";
import type { Clock } from "../../lib/clock.ts";
import { randomToken, sha256 } from "../../lib/crypto.ts";
import { newId } from "../../lib/ids.ts";
import type { SigningKeys } from "../keys/signing-keys.ts";
import { identityError } from "./identity.errors.ts";
import type { IdentityRepo, RequestMeta } from "./identity.repo.ts";
import type { SessionRevocations } from "./session-revocations.ts";

export interface TokenPair {
  access_token: string;
  refresh_token: string;
  token_type: "Bearer";
  expires_in: number;
}

/** The readable prefix lets secret scanners recognise a leaked refresh token. */
const REFRESH_PREFIX = "plrt_";

/**
 * Sessions are families of rotating refresh tokens. Every refresh spends the presented token and issues the next;
 * presenting a spent token again means it was stolen or replayed, so the whole family is revoked.
 */
export function createSessionsService(deps: {
  db: Database;
  repo: IdentityRepo;
  keys: Pick<SigningKeys, "sign">;
  clock: Clock;
  accessTtlSeconds: number;
  refreshTtlSeconds: number;
  revocations: Pick<SessionRevocations, "revoked">;
}) {
  const { db, repo, keys, clock, revocations } = deps;

  /**
   * A session opened for one org (sign-in with org_id) signs tokens bound to it (`org`): the tenant hook refuses them
   * on every other org's routes, and leaving or being removed from the org revokes the session.
   */
  async function accessToken(userId: string, sessionId: string, orgId: string | null | undefined): Promise<string> {
    return keys.sign(orgId ? { sub: userId, sid: sessionId, org: orgId } : { sub: userId, sid: sessionId }, deps.accessTtlSeconds);
  }

  async function newRefreshToken(tx: Executor, sessionId: string, now: Date): Promise<string> {
    const token = REFRESH_PREFIX + randomToken(32);
    await repo.insertRefreshToken(tx, sessionId, sha256(token), now);
    return token;
  }

  return {
    /** Opens a session inside the caller's transaction; sign the access token after commit with `issue`. */
    async startSession(tx: Executor, userId: string, method: string, meta: RequestMeta, orgId?: string) {
      const now = clock.now();
      const sessionId = newId("session", now.getTime());
      await repo.insertSession(tx, {
        id: sessionId,
        userId,
        method,
        orgId: orgId ?? null,
        ip: meta.ip,
        userAgent: meta.userAgent,
        createdAt: now,
        lastUsedAt: now,
        expiresAt: new Date(now.getTime() + deps.refreshTtlSeconds * 1000),
      });
      const refreshToken = await newRefreshToken(tx, sessionId, now);
      return { userId, sessionId, refreshToken, orgId: orgId ?? null };
    },

    async issue(s: { userId: string; sessionId: string; refreshToken: string; orgId?: string | null }): Promise<TokenPair> {
      return {
        access_token: await accessToken(s.userId, s.sessionId, s.orgId),
        refresh_token: s.refreshToken,
        token_type: "Bearer",
        expires_in: deps.accessTtlSeconds,
      };
    },

    async refresh(presented: string, meta: RequestMeta): Promise<TokenPair> {
      const hash = sha256(presented);
      const now = clock.now();
      let revokedIds: string[] = [];
      const outcome = await db.tx({}, async (tx) => {
        const claimed = await repo.claimRefreshToken(tx, hash, now);
        if (!claimed) {
          const known = await repo.findRefreshToken(tx, hash);
          if (!known) return { kind: "unknown" as const };
          const session = await repo.findSession(tx, known.sessionId);
          if (session && !session.revokedAt) {
            revokedIds = await repo.revokeSession(tx, session.id, "refresh_token_reused", now);
            await repo.insertSecurityEvent(tx, {
              userId: session.userId,
              kind: "refresh_token_reused",
              detail: { session_id: session.id },
              meta,
              now,
            });
          }
          return { kind: "reused" as const };
        }
        const session = await repo.findSession(tx, claimed.sessionId);
        if (!session || session.revokedAt || session.expiresAt <= now) return { kind: "dead" as const };
        const user = await repo.findUserById(tx, session.userId);
        if (!user || user.disabledAt) return { kind: "dead" as const };
        await repo.touchSession(tx, session.id, now);
        const refreshToken = await newRefreshToken(tx, session.id, now);
        return { kind: "ok" as const, userId: session.userId, sessionId: session.id, refreshToken, orgId: session.orgId };
      });
      // the access tokens of a replayed family stop too, everywhere, before this answers
      await revocations.revoked(revokedIds);
      switch (outcome.kind) {
        case "ok":
          return this.issue(outcome);
        case "reused":
          throw identityError("REFRESH_TOKEN_REUSED", "This refresh token was already used; the session has been revoked. Sign in again.", {
            field: "refresh_token",
          });
        case "unknown":
        case "dead":
          throw identityError("INVALID_REFRESH_TOKEN", "The refresh token is invalid, expired or revoked.", { field: "refresh_token" });
      }
    },

    /** Ends the session the refresh token belongs to (used or not). Unknown tokens are ignored: logout is idempotent. */
    async logout(presented: string): Promise<void> {
      const now = clock.now();
      const ids = await db.tx({}, async (tx) => {
        const known = await repo.findRefreshToken(tx, sha256(presented));
        return known ? repo.revokeSession(tx, known.sessionId, "logout", now) : [];
      });
      await revocations.revoked(ids);
    },

    /**
     * Ends, inside the caller's transaction, the user's sessions opened for `orgId` (leaving or removal from the org);
     * the revoked ids. Pass them to `revoked` after the commit: only then do their access tokens stop everywhere.
     */
    revokeOrgSessions(tx: Executor, orgId: string, userId: string, reason: string): Promise<string[]> {
      return repo.revokeOrgSessions(tx, userId, orgId, reason, clock.now());
    },

    /** Sessions revoked by a commit elsewhere (members, accounts): their access tokens stop everywhere. */
    revoked: (sessionIds: readonly string[]) => revocations.revoked(sessionIds),

    async logoutAll(userId: string, meta: RequestMeta): Promise<number> {
      const now = clock.now();
      const ids = await db.tx({ userId }, async (tx) => {
        const ids = await repo.revokeUserSessions(tx, userId, "logout_all", now);
        await repo.insertSecurityEvent(tx, { userId, kind: "logout_all", detail: { sessions: ids.length }, meta, now });
        return ids;
      });
      await revocations.revoked(ids);
      return ids.length;
    },
  };
}

export type SessionsService = ReturnType<typeof createSessionsService>;
