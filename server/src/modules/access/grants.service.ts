import type { Database, Executor } from "../../db/client.ts";
import type { Clock } from "../../lib/clock.ts";
import { platformError } from "../../lib/errors.ts";
import { isId, newId } from "../../lib/ids.ts";
import { isUniqueViolation } from "../../lib/pg-errors.ts";
import type { AuditActor, AuditService } from "../audit/audit.service.ts";
import type { AccessService, Decision, ObjectRef, OrgMembership } from "./access.service.ts";
import { missingFrom, requireWithin } from "./authority.ts";
import { grantsRepo, type GrantRequestRow, type GrantRow } from "./grants.repo.ts";
import type { Permission } from "./permissions.ts";
import { isObjectType, type ObjectType, type Relation, type SubjectType } from "./relations.ts";

import { grantsError } from "./grants.errors.ts";
export { grantsError };

export interface SubjectRef {
  type: SubjectType;
  /** Optional for `org`: this organization. */
  id?: string;
}

/**
 * How the module owning a kind of object answers whether a grant may name `id` (read in the grant's transaction): a
 * refusal's detail (no such object in the org, or one that cannot be shared), or undefined. Modules register theirs
 * through the access module's `objects` (index.ts); a type without one is named by id only.
 */
export type ObjectVerifier = (tx: Executor, caller: { orgId: string; userId: string }, id: string) => Promise<string | undefined>;
export type ObjectVerifiers = Partial<Record<ObjectType, ObjectVerifier>>;
/** Where a module registers its object type's verifier (the access module's `objects`). */
export interface ObjectRegistry {
  verify(type: ObjectType, verifier: ObjectVerifier): void;
}

/** One question for the check API: an org-wide permission, or a relation on one resource. */
export type CheckInput = { permission: Permission } | { relation: Relation; object: ObjectRef };

const ID_KIND = { user: "user", team: "team", org: "org" } as const;
const bad = (field: string, detail: string) => platformError("VALIDATION_FAILED", detail, { field });
const forbidden = (permission: string, detail: string) => platformError("FORBIDDEN", detail, { extra: { permission } });
const iso = (d: Date | null | undefined) => d?.toISOString() ?? null;
const NOTHING: ReadonlySet<Permission> = new Set();

/**
 * Grants: sharing one resource with a user, a team or the whole org (kind `share`); peer grants, a member passing a
 * permission their role gives them to another member (kind `peer`); requests for peer grants; and the check / explain
 * API over the access engine. Every change is audited in its own transaction and then invalidates the org's cached
 * access here and on every other instance.
 */
export function createGrantsService(deps: {
  db: Database;
  clock: Clock;
  audit: Pick<AuditService, "record">;
  access: Pick<AccessService, "check" | "decide" | "membership" | "invalidate">;
  /** Filled in as the modules owning object types are wired (index.ts). */
  objects?: ObjectVerifiers;
}) {
  const { db, clock, audit, access } = deps;
  const objects = deps.objects ?? {};

  function requireFuture(expiresAt: Date | undefined, now: Date, field = "expires_at"): void {
    if (expiresAt && expiresAt.getTime() <= now.getTime()) throw bad(field, `${field} must be in the future.`);
  }

  /** The decision's time limit: the grant it rests on ends then (null: it rests on nothing that ends). */
  async function limitOf(tx: Executor, orgId: string, decisions: Decision[]): Promise<Date | null> {
    const ids = decisions.map((d) => d.steps.findLast((s) => s.grant_id)?.grant_id).filter((id): id is string => !!id);
    const ends = await grantsRepo.expiries(tx, orgId, ids);
    let limit: Date | null = null;
    for (const end of ends.values()) if (end && (!limit || end < limit)) limit = end;
    return limit;
  }

  /**
   * May the member give (or take away) `relation` on `object`? Returns the decisions that allow it. grants:manage
   * may give anything; otherwise the member needs `share` on the object and must hold `relation` there themselves,
   * so nobody hands out more than they have (`owner` only by an owner).
   */
  async function authorizeShare(m: OrgMembership, relation: Relation, object: ObjectRef): Promise<Decision[]> {
    const manage = access.decide(m, "grants:manage", true);
    if (manage.allowed) return [manage];
    const share = await access.check(m, "share", object, true);
    if (!share.allowed)
      throw forbidden("grants:manage", `Sharing ${object.type} ${object.id} needs the grants:manage permission or share on it, which you do not have.`);
    if (relation === "share") return [share];
    const held = await access.check(m, relation, object, true);
    if (!held.allowed) {
      throw forbidden(
        "grants:manage",
        relation === "owner"
          ? `Only an owner of ${object.type} ${object.id}, or a member with grants:manage, can make owners.`
          : `You can share only what you hold, and you do not hold ${relation} on ${object.type} ${object.id}.`,
      );
    }
    return [share, held];
  }

  /**
   * Nothing passed on as a peer grant is more than the caller may pass on (authority.ts: 403 with every missing
   * permission): what their role gives them, never peer grants they received; through an API key or an exchanged
   * token only what that credential holds as well, since the grant outlives it. A service account or a registered
   * service is no member and has no role to pass on. (An impersonation never gets here: these routes mint authority.)
   */
  async function requirePassable(m: OrgMembership, permissions: readonly Permission[], note?: string): Promise<void> {
    if (!isId("user", m.userId)) {
      const why = "A service account or a registered service is no member: it has no role to pass on.";
      requireWithin(NOTHING, permissions, { subject: "A peer grant", holder: "your role as a member", note: note ? `${why} ${note}` : why });
      return;
    }
    let held = m.rolePermissions;
    if (m.permissionsOnly) {
      // a narrowed membership's permissions may include what its owner received as peer grants: only the owner's role counts
      const owner = await access.membership(m.orgId, m.userId);
      held = new Set([...(owner?.rolePermissions ?? NOTHING)].filter((p) => m.permissions.has(p)));
    }
    requireWithin(held, permissions, { subject: "A peer grant", holder: `your role (${m.role})${m.permissionsOnly ? " within this credential" : ""}`, note });
  }

  /** Drops an expired grant holding the tuple (it no longer counts, but would block the unique tuple), or refuses a live one. */
  async function clearTuple(
    tx: Executor,
    orgId: string,
    t: Parameters<typeof grantsRepo.findTuple>[2],
    now: Date,
    field: string,
    what: string,
  ): Promise<string | undefined> {
    const existing = await grantsRepo.findTuple(tx, orgId, t);
    if (!existing) return undefined;
    if (existing.expiresAt && existing.expiresAt <= now) {
      await grantsRepo.delete(tx, orgId, existing.id);
      return existing.id;
    }
    throw grantsError(
      "GRANT_EXISTS",
      `${what} already exists as grant ${existing.id}${existing.expiresAt ? ` until ${existing.expiresAt.toISOString()}` : ""}; revoke it first to change it.`,
      { field },
    );
  }

  async function insertPeerGrants(
    tx: Executor,
    orgId: string,
    grantorId: string,
    granteeId: string,
    permissions: readonly Permission[],
    expiresAt: Date | null,
    actor: AuditActor,
    now: Date,
  ): Promise<GrantRow[]> {
    const out: GrantRow[] = [];
    for (const permission of permissions) {
      const tuple = { subjectType: "user", subjectId: granteeId, relation: permission, objectType: "org", objectId: orgId };
      const replaced = await clearTuple(tx, orgId, tuple, now, "permissions", `A peer grant of ${permission} to ${granteeId}`);
      const g = await grantsRepo.insert(tx, {
        id: newId("grant", now.getTime()),
        orgId,
        ...tuple,
        kind: "peer",
        grantedBy: grantorId,
        expiresAt,
        createdAt: now,
      });
      await audit.record(tx, actor, {
        orgId,
        action: "peer_grant.created",
        target: { type: "grant", id: g.id },
        diff: {
          grantee_id: [null, granteeId],
          permission: [null, permission],
          expires_at: [null, iso(expiresAt)],
          ...(replaced ? { replaces: [replaced, null] } : {}),
        },
      });
      out.push(g);
    }
    return out;
  }

  /** Unique violations of a concurrent writer become the same 409 as the one checked for. */
  async function conflictAs409<T>(fn: () => Promise<T>, field: string): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (isUniqueViolation(e)) throw grantsError("GRANT_EXISTS", "An identical grant was created at the same time.", { field });
      throw e;
    }
  }

  async function visibleRequest(m: OrgMembership, id: string): Promise<GrantRequestRow> {
    const r = await db.tx({ orgId: m.orgId, userId: m.userId }, (tx) => grantsRepo.findRequest(tx, m.orgId, id));
    const mine = r && (r.requesterId === m.userId || r.grantorId === m.userId);
    if (!r || (!mine && !access.decide(m, "grants:read").allowed)) throw grantsError("GRANT_REQUEST_NOT_FOUND", `No grant request ${id} in this organization.`);
    return r;
  }

  /** Moves a pending request to `status` (deny, cancel), audited; 409 when someone decided it first. */
  async function closeRequest(
    m: OrgMembership,
    r: GrantRequestRow,
    status: "denied" | "cancelled",
    reason: string | undefined,
    actor: AuditActor,
  ): Promise<GrantRequestRow> {
    if (r.status !== "pending") throw grantsError("GRANT_REQUEST_DECIDED", `Grant request ${r.id} is already ${r.status}.`);
    const now = clock.now();
    return db.tx({ orgId: m.orgId, userId: m.userId }, async (tx) => {
      const done = await grantsRepo.decideRequest(tx, m.orgId, r.id, { status, decidedAt: now, decidedBy: m.userId });
      if (!done) throw grantsError("GRANT_REQUEST_DECIDED", `Grant request ${r.id} was decided meanwhile.`);
      await audit.record(tx, actor, {
        orgId: m.orgId,
        action: `grant_request.${status}`,
        target: { type: "grant_request", id: r.id },
        diff: { status: ["pending", status], ...(reason !== undefined ? { reason: [null, reason] } : {}) },
      });
      return done;
    });
  }

  const service = {
    /** Shares `relation` on `object` with a user, a team or the org (kind `share`). */
    async createGrant(
      m: OrgMembership,
      input: { subject: SubjectRef; relation: Relation; object: ObjectRef; expiresAt?: Date },
      actor: AuditActor,
    ): Promise<GrantRow> {
      const { orgId } = m;
      const { relation, object } = input;
      const subject = { type: input.subject.type, id: input.subject.id ?? (input.subject.type === "org" ? orgId : "") };
      const now = clock.now();
      requireFuture(input.expiresAt, now);
      if (!subject.id) throw bad("subject.id", `subject.id is required for a ${subject.type}.`);
      if (!isId(ID_KIND[subject.type], subject.id)) throw bad("subject.id", `${subject.id} is not a ${subject.type} id.`);
      if (object.type === "team" && !isId("team", object.id)) throw bad("object.id", `${object.id} is not a team id.`);
      await db.tx({ orgId }, async (tx) => {
        if (object.type === "team" && !(await grantsRepo.teamExists(tx, orgId, object.id)))
          throw bad("object.id", `No team ${object.id} in this organization.`);
        const refusal = await objects[object.type]?.(tx, m, object.id);
        if (refusal) throw bad("object.id", refusal);
      });
      const decisions = await authorizeShare(m, relation, object);
      const g = await conflictAs409(
        () =>
          db.tx({ orgId }, async (tx) => {
            const exists =
              subject.type === "org"
                ? subject.id === orgId
                : subject.type === "user"
                  ? await grantsRepo.isMember(tx, orgId, subject.id)
                  : await grantsRepo.teamExists(tx, orgId, subject.id);
            if (!exists)
              throw bad(
                "subject.id",
                subject.type === "org" ? `${subject.id} is not this organization.` : `No ${subject.type} ${subject.id} in this organization.`,
              );
            // a grant never outlives the access that allowed it (a time-limited share or peer grant)
            const limit = await limitOf(tx, orgId, decisions);
            if (limit && input.expiresAt && input.expiresAt > limit)
              throw bad("expires_at", `expires_at cannot be later than ${limit.toISOString()}, when your own access to share this ends.`);
            const expiresAt = input.expiresAt ?? limit;
            const tuple = { subjectType: subject.type, subjectId: subject.id, relation, objectType: object.type, objectId: object.id };
            const replaced = await clearTuple(
              tx,
              orgId,
              tuple,
              now,
              "relation",
              `${relation} on ${object.type} ${object.id} for ${subject.type} ${subject.id}`,
            );
            const row = await grantsRepo.insert(tx, {
              id: newId("grant", now.getTime()),
              orgId,
              ...tuple,
              kind: "share",
              grantedBy: m.userId,
              expiresAt,
              createdAt: now,
            });
            await audit.record(tx, actor, {
              orgId,
              action: "grant.created",
              target: { type: "grant", id: row.id },
              diff: {
                subject: [null, `${subject.type}:${subject.id}`],
                relation: [null, relation],
                object: [null, `${object.type}:${object.id}`],
                expires_at: [null, iso(expiresAt)],
                ...(replaced ? { replaces: [replaced, null] } : {}),
              },
            });
            return row;
          }),
        "relation",
      );
      await access.invalidate(orgId);
      return g;
    },

    async listGrants(orgId: string, filter: Parameters<typeof grantsRepo.list>[2], limit: number, beforeId?: string): Promise<GrantRow[]> {
      return db.tx({ orgId }, (tx) => grantsRepo.list(tx, orgId, filter, limit, beforeId));
    },

    async getGrant(orgId: string, id: string): Promise<GrantRow> {
      const g = await db.tx({ orgId }, (tx) => grantsRepo.find(tx, orgId, id));
      if (!g) throw grantsError("GRANT_NOT_FOUND", `No grant ${id} in this organization.`);
      return g;
    },

    /**
     * Revokes a grant: grants:manage may revoke any; a peer grant also its grantor; a share grant also a member who
     * could have made it (share on the object and the relation held). `kind` limits the route to one kind.
     */
    async revokeGrant(m: OrgMembership, id: string, actor: AuditActor, kind?: "peer"): Promise<void> {
      const { orgId } = m;
      const g = await db.tx({ orgId }, (tx) => grantsRepo.find(tx, orgId, id));
      const manager = access.decide(m, "grants:manage").allowed;
      if (!g || (kind && g.kind !== kind)) {
        // a grant that is not there is one the caller could not revoke either, unless they manage grants
        if (!manager)
          throw forbidden("grants:manage", `Revoking grants needs the grants:manage permission, being the grant's grantor, or share on its object.`);
        throw grantsError("GRANT_NOT_FOUND", `No ${kind ? `${kind} ` : ""}grant ${id} in this organization.`);
      }
      if (!manager) {
        if (g.kind === "peer") {
          if (g.grantedBy !== m.userId)
            throw forbidden("grants:manage", `Only the member who gave peer grant ${id}, or one with grants:manage, can revoke it.`);
        } else if (isObjectType(g.objectType)) {
          await authorizeShare(m, g.relation as Relation, { type: g.objectType, id: g.objectId });
        } else {
          throw forbidden("grants:manage", `Revoking grant ${id} needs the grants:manage permission.`);
        }
      }
      await db.tx({ orgId }, async (tx) => {
        const gone = await grantsRepo.delete(tx, orgId, id);
        if (!gone) throw grantsError("GRANT_NOT_FOUND", `Grant ${id} was revoked meanwhile.`);
        await audit.record(tx, actor, {
          orgId,
          action: gone.kind === "peer" ? "peer_grant.revoked" : "grant.revoked",
          target: { type: "grant", id },
          diff: {
            subject: [`${gone.subjectType}:${gone.subjectId}`, null],
            relation: [gone.relation, null],
            object: [`${gone.objectType}:${gone.objectId}`, null],
            expires_at: [iso(gone.expiresAt), null],
          },
        });
      });
      await access.invalidate(orgId);
    },

    /** Passes permissions the grantor's role gives them (never peer grants they received) to another member. */
    async createPeerGrants(
      m: OrgMembership,
      input: { granteeId: string; permissions: Permission[]; expiresAt?: Date },
      actor: AuditActor,
    ): Promise<GrantRow[]> {
      const { orgId } = m;
      const now = clock.now();
      requireFuture(input.expiresAt, now);
      await requirePassable(m, input.permissions);
      if (input.granteeId === m.userId) throw bad("grantee_id", "You cannot give yourself a peer grant.");
      const rows = await conflictAs409(
        () =>
          db.tx({ orgId }, async (tx) => {
            if (!(await grantsRepo.isMember(tx, orgId, input.granteeId))) throw bad("grantee_id", `${input.granteeId} is not a member of this organization.`);
            return insertPeerGrants(tx, orgId, m.userId, input.granteeId, input.permissions, input.expiresAt ?? null, actor, now);
          }),
        "permissions",
      );
      await access.invalidate(orgId);
      return rows;
    },

    async listPeerGrants(
      m: OrgMembership,
      direction: "given" | "received" | undefined,
      includeExpired: boolean,
      limit: number,
      beforeId?: string,
    ): Promise<GrantRow[]> {
      const liveAt = includeExpired ? undefined : clock.now();
      return db.tx({ orgId: m.orgId }, (tx) => grantsRepo.listPeer(tx, m.orgId, m.userId, direction, liveAt, limit, beforeId));
    },

    /** Asks a member (the grantor) for permissions their role gives them. */
    async createGrantRequest(
      m: OrgMembership,
      input: { grantorId: string; permissions: Permission[]; reason?: string; expiresAt?: Date },
      actor: AuditActor,
    ): Promise<GrantRequestRow> {
      const { orgId } = m;
      const now = clock.now();
      requireFuture(input.expiresAt, now);
      // the approval makes peer grants to the requester, and those go to members only
      if (!isId("user", m.userId)) {
        throw platformError("FORBIDDEN", "Only a member asks for peer grants; a service account or a registered service is given roles instead.", {
          extra: { reason: "not_a_member" },
        });
      }
      if (input.grantorId === m.userId) throw bad("grantor_id", "Ask another member: you cannot request a grant from yourself.");
      const grantor = await access.membership(orgId, input.grantorId);
      if (!grantor) throw bad("grantor_id", `${input.grantorId} is not a member of this organization.`);
      const missing = missingFrom(grantor.rolePermissions, input.permissions);
      if (missing.length) {
        throw platformError(
          "VALIDATION_FAILED",
          `${input.grantorId}'s role (${grantor.role}) does not include ${missing.join(", ")}, so they cannot grant it.`,
          { field: "permissions", extra: { missing } },
        );
      }
      return db.tx({ orgId }, async (tx) => {
        const r = await grantsRepo.insertRequest(tx, {
          id: newId("grantRequest", now.getTime()),
          orgId,
          requesterId: m.userId,
          grantorId: input.grantorId,
          permissions: input.permissions,
          reason: input.reason ?? null,
          requestedExpiresAt: input.expiresAt ?? null,
          status: "pending",
          createdAt: now,
        });
        await audit.record(tx, actor, {
          orgId,
          action: "grant_request.created",
          target: { type: "grant_request", id: r.id },
          diff: { grantor_id: [null, r.grantorId], permissions: [null, r.permissions], expires_at: [null, iso(r.requestedExpiresAt)] },
        });
        return r;
      });
    },

    async listGrantRequests(
      m: OrgMembership,
      role: "incoming" | "outgoing" | undefined,
      status: string | undefined,
      limit: number,
      beforeId?: string,
    ): Promise<GrantRequestRow[]> {
      return db.tx({ orgId: m.orgId }, (tx) => grantsRepo.listRequests(tx, m.orgId, { userId: m.userId, role, status }, limit, beforeId));
    },

    /** The requester, the grantor and members with grants:read see a request; to anyone else it does not exist. */
    getGrantRequest: visibleRequest,

    /**
     * The grantor approves, perhaps narrowed (fewer permissions, an earlier end): the peer grants are made and the
     * request is approved in one transaction. The grantor must still hold every permission through their role.
     */
    async approveGrantRequest(
      m: OrgMembership,
      id: string,
      input: { permissions?: Permission[]; expiresAt?: Date },
      actor: AuditActor,
    ): Promise<{ request: GrantRequestRow; grants: GrantRow[] }> {
      const { orgId } = m;
      const r = await visibleRequest(m, id);
      if (r.grantorId !== m.userId) throw forbidden("grants:manage", `Only ${r.grantorId}, whom the request asks, can approve it.`);
      if (r.status !== "pending") throw grantsError("GRANT_REQUEST_DECIDED", `Grant request ${id} is already ${r.status}.`);
      const now = clock.now();
      const permissions = (input.permissions ?? r.permissions) as Permission[];
      const wider = permissions.filter((p) => !r.permissions.includes(p));
      if (wider.length) throw bad("permissions", `Approval can only narrow the request; it did not ask for ${wider.join(", ")}.`);
      let expiresAt = r.requestedExpiresAt;
      if (input.expiresAt) {
        requireFuture(input.expiresAt, now);
        if (expiresAt && input.expiresAt > expiresAt)
          throw bad("expires_at", `Approval can only narrow the request; it asked until ${expiresAt.toISOString()}.`);
        expiresAt = input.expiresAt;
      } else if (expiresAt && expiresAt <= now) {
        throw grantsError("GRANT_REQUEST_EXPIRED", `Grant request ${id} asked for access until ${expiresAt.toISOString()}, which has passed.`);
      }
      await requirePassable(m, permissions, "Approve without it, or deny the request.");
      const out = await conflictAs409(
        () =>
          db.tx({ orgId }, async (tx) => {
            const locked = await grantsRepo.findRequest(tx, orgId, id, true);
            if (locked?.status !== "pending") throw grantsError("GRANT_REQUEST_DECIDED", `Grant request ${id} was decided meanwhile.`);
            if (!(await grantsRepo.isMember(tx, orgId, r.requesterId)))
              throw grantsError("REQUESTER_NOT_MEMBER", `${r.requesterId} is no longer a member of this organization.`);
            const grants = await insertPeerGrants(tx, orgId, m.userId, r.requesterId, permissions, expiresAt, actor, now);
            const request = await grantsRepo.decideRequest(tx, orgId, id, {
              status: "approved",
              decidedAt: now,
              decidedBy: m.userId,
              grantIds: grants.map((g) => g.id),
            });
            const narrowed = permissions.length < r.permissions.length;
            const shortened = iso(expiresAt) !== iso(r.requestedExpiresAt);
            await audit.record(tx, actor, {
              orgId,
              action: "grant_request.approved",
              target: { type: "grant_request", id },
              diff: {
                status: ["pending", "approved"],
                grant_ids: [null, request.grantIds],
                ...(narrowed ? { permissions: [r.permissions, permissions] } : {}),
                ...(shortened ? { expires_at: [iso(r.requestedExpiresAt), iso(expiresAt)] } : {}),
              },
            });
            return { request, grants };
          }),
        "permissions",
      );
      await access.invalidate(orgId);
      return out;
    },

    /** The grantor says no; the reason goes to the audit log and back to the caller. */
    async denyGrantRequest(m: OrgMembership, id: string, reason: string | undefined, actor: AuditActor): Promise<GrantRequestRow> {
      const r = await visibleRequest(m, id);
      if (r.grantorId !== m.userId) throw forbidden("grants:manage", `Only ${r.grantorId}, whom the request asks, can deny it.`);
      return closeRequest(m, r, "denied", reason, actor);
    },

    /** The requester withdraws a pending request. */
    async cancelGrantRequest(m: OrgMembership, id: string, actor: AuditActor): Promise<GrantRequestRow> {
      const r = await visibleRequest(m, id);
      if (r.requesterId !== m.userId) throw forbidden("grants:manage", `Only ${r.requesterId}, who made the request, can cancel it.`);
      return closeRequest(m, r, "cancelled", undefined, actor);
    },

    /**
     * Whose access a check asks about: the caller, or (with grants:read, since it reveals what another member holds)
     * another member of the org.
     */
    async subjectOf(m: OrgMembership, subject?: { id: string }): Promise<OrgMembership> {
      if (!subject || subject.id === m.userId) return m;
      if (!access.decide(m, "grants:read").allowed)
        throw forbidden("grants:read", "Checking another member's access needs the grants:read permission, which you do not have.");
      const other = await access.membership(m.orgId, subject.id);
      if (!other) throw bad("subject.id", `${subject.id} is not a member of this organization.`);
      return other;
    },

    /** One decision, with the steps that led to it. */
    async decide(m: OrgMembership, check: CheckInput): Promise<Decision> {
      return "permission" in check ? access.decide(m, check.permission, true) : access.check(m, check.relation, check.object, true);
    },

    /** Decisions for a batch, in order (objects shared by several checks are read once and then cached). */
    async checkAll(m: OrgMembership, checks: CheckInput[]): Promise<Decision[]> {
      const out: Decision[] = [];
      for (const c of checks) out.push(await service.decide(m, c));
      return out;
    },
  };
  return service;
}

export type GrantsService = ReturnType<typeof createGrantsService>;
