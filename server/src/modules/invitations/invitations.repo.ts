import { and, desc, eq, gt, isNotNull, isNull, lt, lte, or, sql, type SQL } from "drizzle-orm";
import type { Executor } from "../../db/client.ts";
import { invitations } from "../../db/schema/index.ts";

export type InvitationRow = typeof invitations.$inferSelect;
export type InvitationStatus = "pending" | "accepted" | "revoked" | "expired";

/** An invitation's state at `now`: answered (accepted, revoked) first, then whether its link has run out. */
export function statusOf(row: InvitationRow, now: Date): InvitationStatus {
  if (row.acceptedAt) return "accepted";
  if (row.revokedAt) return "revoked";
  return row.expiresAt <= now ? "expired" : "pending";
}

function statusFilter(status: InvitationStatus, now: Date): SQL | undefined {
  const open = and(isNull(invitations.acceptedAt), isNull(invitations.revokedAt));
  switch (status) {
    case "accepted":
      return isNotNull(invitations.acceptedAt);
    case "revoked":
      return and(isNull(invitations.acceptedAt), isNotNull(invitations.revokedAt));
    case "expired":
      return and(open, lte(invitations.expiresAt, now));
    case "pending":
      return and(open, gt(invitations.expiresAt, now));
  }
}

/** Invitation queries. Row-level security limits each transaction to its org; every query names the org as well. */
export const invitationsRepo = {
  async insert(tx: Executor, row: typeof invitations.$inferInsert): Promise<InvitationRow> {
    const [inv] = await tx.insert(invitations).values(row).returning();
    return inv;
  },

  /** The invitation, locked until the transaction ends when `lock` is set (a change reads the state it replaces). */
  async findById(ex: Executor, orgId: string, id: string, lock = false): Promise<InvitationRow | undefined> {
    const q = ex
      .select()
      .from(invitations)
      .where(and(eq(invitations.orgId, orgId), eq(invitations.id, id)));
    const [row] = lock ? await q.for("update") : await q;
    return row;
  },

  async lockByTokenHash(tx: Executor, orgId: string, tokenHash: string): Promise<InvitationRow | undefined> {
    const [row] = await tx
      .select()
      .from(invitations)
      .where(and(eq(invitations.orgId, orgId), eq(invitations.tokenHash, tokenHash)))
      .for("update");
    return row;
  },

  /** The unanswered invitation of an address (live or expired): at most one, by the partial unique index. */
  async findOpenByEmail(tx: Executor, orgId: string, emailKey: string): Promise<InvitationRow | undefined> {
    const [row] = await tx
      .select()
      .from(invitations)
      .where(and(eq(invitations.orgId, orgId), eq(invitations.emailKey, emailKey), isNull(invitations.acceptedAt), isNull(invitations.revokedAt)))
      .for("update");
    return row;
  },

  async update(tx: Executor, orgId: string, id: string, patch: Partial<typeof invitations.$inferInsert>): Promise<InvitationRow> {
    const [row] = await tx
      .update(invitations)
      .set(patch)
      .where(and(eq(invitations.orgId, orgId), eq(invitations.id, id)))
      .returning();
    return row;
  },

  /** Newest first; `before` is the last id of the previous page. */
  async list(ex: Executor, orgId: string, opts: { status?: InvitationStatus; now: Date; limit: number; before?: string }): Promise<InvitationRow[]> {
    return ex
      .select()
      .from(invitations)
      .where(
        and(
          eq(invitations.orgId, orgId),
          opts.status ? statusFilter(opts.status, opts.now) : undefined,
          opts.before ? lt(invitations.id, opts.before) : undefined,
        ),
      )
      .orderBy(desc(invitations.id))
      .limit(opts.limit);
  },

  /**
   * Maintenance, across every org: removes invitations accepted, revoked or expired before `before`. The one
   * cross-tenant statement here: it declares the sweep for its own transaction (0023_maintenance.sql's policies).
   */
  async purgeEnded(tx: Executor, before: Date): Promise<number> {
    await tx.execute(sql`select set_config('app.sweep', 'invitations', true)`);
    const gone = await tx
      .delete(invitations)
      .where(or(lt(invitations.acceptedAt, before), lt(invitations.revokedAt, before), lt(invitations.expiresAt, before)))
      .returning({ id: invitations.id });
    return gone.length;
  },
};

export type InvitationsRepo = typeof invitationsRepo;
