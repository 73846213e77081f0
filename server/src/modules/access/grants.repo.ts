import { and, desc, eq, gt, inArray, isNull, lt, or, type SQL } from "drizzle-orm";
import type { Executor } from "../../db/client.ts";
import { grantRequests, grants } from "../../db/schema/index.ts";

export type GrantRow = typeof grants.$inferSelect;
export type GrantRequestRow = typeof grantRequests.$inferSelect;

export interface GrantFilter {
  kind?: "share" | "peer";
  subjectType?: string;
  subjectId?: string;
  objectType?: string;
  objectId?: string;
  /** Peer grants given by this user. */
  grantedBy?: string;
  /** Leave out grants that expired before this time. */
  liveAt?: Date;
}

export interface GrantRequestFilter {
  /** Requests this user made (outgoing), was asked (incoming), or either. */
  userId: string;
  role?: "incoming" | "outgoing";
  status?: string;
}

const live = (at: Date) => or(isNull(grants.expiresAt), gt(grants.expiresAt, at));

/**
 * Grant and grant-request queries. Row-level security already limits a transaction to its org; every query names the
 * org as well.
 */
export const grantsRepo = {
  async insert(tx: Executor, row: typeof grants.$inferInsert): Promise<GrantRow> {
    const [g] = await tx.insert(grants).values(row).returning();
    return g;
  },

  async find(ex: Executor, orgId: string, id: string): Promise<GrantRow | undefined> {
    const [g] = await ex
      .select()
      .from(grants)
      .where(and(eq(grants.orgId, orgId), eq(grants.id, id)));
    return g;
  },

  /** The grant with exactly this tuple, live or expired (the tuple is unique per org). */
  async findTuple(
    ex: Executor,
    orgId: string,
    t: { subjectType: string; subjectId: string; relation: string; objectType: string; objectId: string },
  ): Promise<GrantRow | undefined> {
    const [g] = await ex
      .select()
      .from(grants)
      .where(
        and(
          eq(grants.orgId, orgId),
          eq(grants.objectType, t.objectType),
          eq(grants.objectId, t.objectId),
          eq(grants.relation, t.relation),
          eq(grants.subjectType, t.subjectType),
          eq(grants.subjectId, t.subjectId),
        ),
      );
    return g;
  },

  async delete(tx: Executor, orgId: string, id: string): Promise<GrantRow | undefined> {
    const [g] = await tx
      .delete(grants)
      .where(and(eq(grants.orgId, orgId), eq(grants.id, id)))
      .returning();
    return g;
  },

  /**
   * Deletes every grant to the users or teams (`subject`) and, for teams, every grant on them as objects; the ids of
   * the grants deleted.
   */
  async deleteNaming(tx: Executor, orgId: string, subject: { type: "user" | "team"; ids: readonly string[] }): Promise<string[]> {
    if (!subject.ids.length) return [];
    const to = and(eq(grants.subjectType, subject.type), inArray(grants.subjectId, [...subject.ids]));
    const on = subject.type === "team" ? and(eq(grants.objectType, "team"), inArray(grants.objectId, [...subject.ids])) : undefined;
    const gone = await tx
      .delete(grants)
      .where(and(eq(grants.orgId, orgId), on ? or(to, on) : to))
      .returning({ id: grants.id });
    return gone.map((g) => g.id);
  },

  /** Deletes every grant on the objects (`type`, `ids`); the ids of the grants deleted. */
  async deleteOn(tx: Executor, orgId: string, object: { type: string; ids: readonly string[] }): Promise<string[]> {
    if (!object.ids.length) return [];
    const gone = await tx
      .delete(grants)
      .where(and(eq(grants.orgId, orgId), eq(grants.objectType, object.type), inArray(grants.objectId, [...object.ids])))
      .returning({ id: grants.id });
    return gone.map((g) => g.id);
  },

  /** Newest first, `limit` rows older than the cursor id (ids are time-ordered). */
  async list(ex: Executor, orgId: string, f: GrantFilter, limit: number, beforeId?: string): Promise<GrantRow[]> {
    return ex
      .select()
      .from(grants)
      .where(
        and(
          eq(grants.orgId, orgId),
          f.kind ? eq(grants.kind, f.kind) : undefined,
          f.subjectType ? eq(grants.subjectType, f.subjectType) : undefined,
          f.subjectId ? eq(grants.subjectId, f.subjectId) : undefined,
          f.objectType ? eq(grants.objectType, f.objectType) : undefined,
          f.objectId ? eq(grants.objectId, f.objectId) : undefined,
          f.grantedBy ? eq(grants.grantedBy, f.grantedBy) : undefined,
          f.liveAt ? live(f.liveAt) : undefined,
          beforeId !== undefined ? lt(grants.id, beforeId) : undefined,
        ),
      )
      .orderBy(desc(grants.id))
      .limit(limit);
  },

  /** Peer grants a user gave or received, newest first. */
  async listPeer(
    ex: Executor,
    orgId: string,
    userId: string,
    direction: "given" | "received" | undefined,
    liveAt: Date | undefined,
    limit: number,
    beforeId?: string,
  ): Promise<GrantRow[]> {
    const given = eq(grants.grantedBy, userId);
    const received = and(eq(grants.subjectType, "user"), eq(grants.subjectId, userId));
    return ex
      .select()
      .from(grants)
      .where(
        and(
          eq(grants.orgId, orgId),
          eq(grants.kind, "peer"),
          direction === "given" ? given : direction === "received" ? received : or(given, received),
          liveAt ? live(liveAt) : undefined,
          beforeId !== undefined ? lt(grants.id, beforeId) : undefined,
        ),
      )
      .orderBy(desc(grants.id))
      .limit(limit);
  },

  /** When the grants with these ids end (null: never); ids not found are left out. */
  async expiries(ex: Executor, orgId: string, ids: string[]): Promise<Map<string, Date | null>> {
    if (!ids.length) return new Map();
    const rows = await ex
      .select({ id: grants.id, expiresAt: grants.expiresAt })
      .from(grants)
      .where(and(eq(grants.orgId, orgId), inArray(grants.id, ids)));
    return new Map(rows.map((r) => [r.id, r.expiresAt]));
  },

  async insertRequest(tx: Executor, row: typeof grantRequests.$inferInsert): Promise<GrantRequestRow> {
    const [r] = await tx.insert(grantRequests).values(row).returning();
    return r;
  },

  async findRequest(ex: Executor, orgId: string, id: string, lock = false): Promise<GrantRequestRow | undefined> {
    const q = ex
      .select()
      .from(grantRequests)
      .where(and(eq(grantRequests.orgId, orgId), eq(grantRequests.id, id)));
    const [r] = lock ? await q.for("update") : await q;
    return r;
  },

  async decideRequest(
    tx: Executor,
    orgId: string,
    id: string,
    set: { status: string; decidedAt: Date; decidedBy: string; grantIds?: string[] },
  ): Promise<GrantRequestRow> {
    const [r] = await tx
      .update(grantRequests)
      .set(set)
      .where(and(eq(grantRequests.orgId, orgId), eq(grantRequests.id, id), eq(grantRequests.status, "pending")))
      .returning();
    return r;
  },

  async listRequests(ex: Executor, orgId: string, f: GrantRequestFilter, limit: number, beforeId?: string): Promise<GrantRequestRow[]> {
    const incoming = eq(grantRequests.grantorId, f.userId);
    const outgoing = eq(grantRequests.requesterId, f.userId);
    const mine: SQL | undefined = f.role === "incoming" ? incoming : f.role === "outgoing" ? outgoing : or(incoming, outgoing);
    return ex
      .select()
      .from(grantRequests)
      .where(
        and(
          eq(grantRequests.orgId, orgId),
          mine,
          f.status ? eq(grantRequests.status, f.status) : undefined,
          beforeId !== undefined ? lt(grantRequests.id, beforeId) : undefined,
        ),
      )
      .orderBy(desc(grantRequests.id))
      .limit(limit);
  },
};

export type GrantsRepo = typeof grantsRepo;
