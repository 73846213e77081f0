import { and, desc, eq, gt, inArray, isNull, lt, ne, or, sql } from "drizzle-orm";
import type { Executor } from "../../db/client.ts";
import { emailTokens, loginAttempts, memberships, orgs, passwordCredentials, refreshTokens, securityEvents, sessions, users } from "../../db/schema/index.ts";
import { newId } from "../../lib/ids.ts";

export type UserRow = typeof users.$inferSelect;
export type SessionRow = typeof sessions.$inferSelect;
export type EmailTokenPurpose = "verify_email" | "reset_password" | "magic_link";

export interface RequestMeta {
  ip: string;
  userAgent: string | null;
  requestId: string;
}

/**
 * findUserById runs on every request that loads the signed-in user (GET /v1/me), and building a query with drizzle
 * costs more CPU than sending it: its SQL is built once per executor (the pool; a transaction's own handle is
 * short-lived and dropped with it) and only the id is bound per call. The empty name keeps it an unnamed statement
 * on PostgreSQL, so the database sees exactly the query as before (and a transaction-mode pooler is unaffected).
 */
const findUserByIdQueries = new WeakMap<Executor, { execute(values: { id: string }): Promise<UserRow[]> }>();

/** Queries for users, credentials, sessions and emailed tokens. Every function takes the executor it runs on. */
export const identityRepo = {
  /**
   * `email` is the canonical form (lib/email.ts), which is what is stored. lower() stays on the column only: it is
   * what the users_email_key index holds, and it finds rows stored before addresses were made canonical (those kept
   * the case of their local part).
   */
  async findUserByEmail(ex: Executor, email: string): Promise<UserRow | undefined> {
    const [row] = await ex.select().from(users).where(sql`lower(${users.email}) = ${email}`).limit(1);
    return row;
  },

  async namesOf(ex: Executor, ids: readonly string[]): Promise<{ id: string; email: string; name: string }[]> {
    if (!ids.length) return [];
    return ex
      .select({ id: users.id, email: users.email, name: users.name })
      .from(users)
      .where(inArray(users.id, [...ids]));
  },

  /** The account and its password hash in one query: a sign-in costs the same queries whether the email exists or not. `email` is canonical. */
  async findLoginByEmail(ex: Executor, email: string): Promise<{ user: UserRow; hash: string | null } | undefined> {
    const [row] = await ex
      .select({ user: users, hash: passwordCredentials.hash })
      .from(users)
      .leftJoin(passwordCredentials, eq(passwordCredentials.userId, users.id))
      .where(sql`lower(${users.email}) = ${email}`)
      .limit(1);
    return row;
  },

  async findUserById(ex: Executor, id: string): Promise<UserRow | undefined> {
    let query = findUserByIdQueries.get(ex);
    if (!query) {
      query = ex
        .select()
        .from(users)
        .where(eq(users.id, sql.placeholder("id")))
        .limit(1)
        .prepare("");
      findUserByIdQueries.set(ex, query);
    }
    const [row] = await query.execute({ id });
    return row;
  },

  async insertUser(tx: Executor, row: typeof users.$inferInsert): Promise<UserRow> {
    const [user] = await tx.insert(users).values(row).returning();
    return user;
  },

  async updateUser(tx: Executor, id: string, patch: Partial<typeof users.$inferInsert>): Promise<UserRow | undefined> {
    const [user] = await tx.update(users).set(patch).where(eq(users.id, id)).returning();
    return user;
  },

  async getPasswordHash(ex: Executor, userId: string): Promise<string | undefined> {
    const [row] = await ex.select({ hash: passwordCredentials.hash }).from(passwordCredentials).where(eq(passwordCredentials.userId, userId));
    return row?.hash;
  },

  async setPasswordHash(tx: Executor, userId: string, hash: string, now: Date): Promise<void> {
    await tx
      .insert(passwordCredentials)
      .values({ userId, hash, updatedAt: now })
      .onConflictDoUpdate({ target: passwordCredentials.userId, set: { hash, updatedAt: now } });
  },

  /** Does the user belong to the org, and is it live? (The transaction is scoped to the org.) */
  async isMemberOfLiveOrg(ex: Executor, orgId: string, userId: string): Promise<boolean> {
    const rows = await ex
      .select({ userId: memberships.userId })
      .from(memberships)
      .innerJoin(orgs, eq(orgs.id, memberships.orgId))
      .where(and(eq(memberships.orgId, orgId), eq(memberships.userId, userId), isNull(orgs.deletedAt)));
    return rows.length > 0;
  },

  async insertSession(tx: Executor, row: typeof sessions.$inferInsert): Promise<void> {
    await tx.insert(sessions).values(row);
  },

  async findSession(ex: Executor, id: string): Promise<SessionRow | undefined> {
    const [row] = await ex.select().from(sessions).where(eq(sessions.id, id));
    return row;
  },

  async touchSession(tx: Executor, id: string, now: Date): Promise<void> {
    await tx.update(sessions).set({ lastUsedAt: now }).where(eq(sessions.id, id));
  },

  async insertRefreshToken(tx: Executor, sessionId: string, tokenHash: string, now: Date): Promise<void> {
    await tx.insert(refreshTokens).values({ id: newId("refreshToken", now.getTime()), sessionId, tokenHash, createdAt: now });
  },

  /** Marks the token used if it was unused; one of two concurrent callers wins. */
  async claimRefreshToken(tx: Executor, tokenHash: string, now: Date): Promise<{ sessionId: string } | undefined> {
    const [row] = await tx
      .update(refreshTokens)
      .set({ usedAt: now })
      .where(and(eq(refreshTokens.tokenHash, tokenHash), isNull(refreshTokens.usedAt)))
      .returning({ sessionId: refreshTokens.sessionId });
    return row;
  },

  async findRefreshToken(ex: Executor, tokenHash: string): Promise<{ sessionId: string; usedAt: Date | null } | undefined> {
    const [row] = await ex
      .select({ sessionId: refreshTokens.sessionId, usedAt: refreshTokens.usedAt })
      .from(refreshTokens)
      .where(eq(refreshTokens.tokenHash, tokenHash));
    return row;
  },

  /** Revokes a live session; its id when it was live (for the revocation set), none otherwise. */
  async revokeSession(tx: Executor, id: string, reason: string, now: Date): Promise<string[]> {
    const rows = await tx
      .update(sessions)
      .set({ revokedAt: now, revokedReason: reason })
      .where(and(eq(sessions.id, id), isNull(sessions.revokedAt)))
      .returning({ id: sessions.id });
    return rows.map((r) => r.id);
  },

  /** Revokes every live session of a user, except `keep` when given. Returns their ids. */
  async revokeUserSessions(tx: Executor, userId: string, reason: string, now: Date, keep?: string): Promise<string[]> {
    const rows = await tx
      .update(sessions)
      .set({ revokedAt: now, revokedReason: reason })
      .where(and(eq(sessions.userId, userId), isNull(sessions.revokedAt), keep ? ne(sessions.id, keep) : undefined))
      .returning({ id: sessions.id });
    return rows.map((r) => r.id);
  },

  /** Revokes a user's live sessions opened for one org (an org sign-in, SSO). Returns their ids. */
  async revokeOrgSessions(tx: Executor, userId: string, orgId: string, reason: string, now: Date): Promise<string[]> {
    const rows = await tx
      .update(sessions)
      .set({ revokedAt: now, revokedReason: reason })
      .where(and(eq(sessions.userId, userId), eq(sessions.orgId, orgId), isNull(sessions.revokedAt)))
      .returning({ id: sessions.id });
    return rows.map((r) => r.id);
  },

  async insertEmailToken(
    tx: Executor,
    row: { userId: string; purpose: EmailTokenPurpose; email: string; tokenHash: string; expiresAt: Date; now: Date },
  ): Promise<void> {
    await tx.insert(emailTokens).values({
      id: newId("emailToken", row.now.getTime()),
      userId: row.userId,
      purpose: row.purpose,
      email: row.email,
      tokenHash: row.tokenHash,
      expiresAt: row.expiresAt,
      createdAt: row.now,
    });
  },

  async findLiveEmailToken(ex: Executor, tokenHash: string, purpose: EmailTokenPurpose, now: Date) {
    const [row] = await ex
      .select({ userId: emailTokens.userId, email: emailTokens.email })
      .from(emailTokens)
      .where(and(eq(emailTokens.tokenHash, tokenHash), eq(emailTokens.purpose, purpose), isNull(emailTokens.consumedAt), gt(emailTokens.expiresAt, now)));
    return row;
  },

  /** Consumes a live token atomically: of two concurrent uses, exactly one gets the row. */
  async consumeEmailToken(tx: Executor, tokenHash: string, purpose: EmailTokenPurpose, now: Date) {
    const [row] = await tx
      .update(emailTokens)
      .set({ consumedAt: now })
      .where(and(eq(emailTokens.tokenHash, tokenHash), eq(emailTokens.purpose, purpose), isNull(emailTokens.consumedAt), gt(emailTokens.expiresAt, now)))
      .returning({ userId: emailTokens.userId, email: emailTokens.email });
    return row;
  },

  /** A newer token of the same purpose replaces older ones. */
  async expireEmailTokens(tx: Executor, userId: string, purpose: EmailTokenPurpose, now: Date): Promise<void> {
    await tx
      .update(emailTokens)
      .set({ consumedAt: now })
      .where(and(eq(emailTokens.userId, userId), eq(emailTokens.purpose, purpose), isNull(emailTokens.consumedAt)));
  },

  /**
   * Maintenance: sessions that expired or were revoked before `before`; their refresh tokens go with them (the foreign
   * key cascades). Returns how many of each went.
   */
  async purgeEndedSessions(tx: Executor, before: Date): Promise<{ sessions: number; refreshTokens: number }> {
    const ended = or(lt(sessions.expiresAt, before), lt(sessions.revokedAt, before));
    const [{ n }] = await tx
      .select({ n: sql<number>`count(*)::int` })
      .from(refreshTokens)
      .innerJoin(sessions, eq(sessions.id, refreshTokens.sessionId))
      .where(ended);
    const gone = await tx.delete(sessions).where(ended).returning({ id: sessions.id });
    return { sessions: gone.length, refreshTokens: n };
  },

  /** Maintenance: emailed tokens that expired, or were used (or replaced), before `before`. */
  async purgeEndedEmailTokens(tx: Executor, before: Date): Promise<number> {
    const gone = await tx
      .delete(emailTokens)
      .where(or(lt(emailTokens.expiresAt, before), lt(emailTokens.consumedAt, before)))
      .returning({ id: emailTokens.id });
    return gone.length;
  },

  async insertLoginAttempt(tx: Executor, row: { userId: string | null; method: string; result: string; meta: RequestMeta; now: Date }): Promise<void> {
    await tx.insert(loginAttempts).values({
      id: newId("loginAttempt", row.now.getTime()),
      userId: row.userId,
      method: row.method,
      result: row.result,
      ip: row.meta.ip,
      userAgent: row.meta.userAgent,
      createdAt: row.now,
    });
  },

  async listLoginAttempts(ex: Executor, userId: string, limit: number, before?: string) {
    return ex
      .select()
      .from(loginAttempts)
      .where(and(eq(loginAttempts.userId, userId), before ? lt(loginAttempts.id, before) : undefined))
      .orderBy(desc(loginAttempts.id))
      .limit(limit);
  },

  async insertSecurityEvent(
    tx: Executor,
    row: { userId: string | null; kind: string; detail: Record<string, unknown>; meta: RequestMeta | null; now: Date },
  ): Promise<void> {
    await tx.insert(securityEvents).values({
      id: newId("securityEvent", row.now.getTime()),
      userId: row.userId,
      kind: row.kind,
      detail: row.detail,
      ip: row.meta?.ip ?? null,
      userAgent: row.meta?.userAgent ?? null,
      createdAt: row.now,
    });
  },

  async listSecurityEvents(ex: Executor, userId: string, limit: number) {
    return ex.select().from(securityEvents).where(eq(securityEvents.userId, userId)).orderBy(desc(securityEvents.id)).limit(limit);
  },
};

export type IdentityRepo = typeof identityRepo;
