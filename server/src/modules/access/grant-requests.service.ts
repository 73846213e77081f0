import type { Database } from "../../db/client.ts";
import type { Clock } from "../../lib/clock.ts";
import { platformError } from "../../lib/errors.ts";
import { isId, newId } from "../../lib/ids.ts";
import type { AuditActor, AuditService } from "../audit/audit.service.ts";
import type { AccessService, OrgMembership } from "./access.service.ts";
import { missingFrom } from "./authority.ts";
import { grantsError } from "./grants.errors.ts";
import { grantsRepo, type GrantRequestRow, type GrantRow } from "./grants.repo.ts";
import { bad, conflictAs409, forbidden, type GrantRules, iso, requireFuture } from "./grants.rules.ts";
import type { Permission } from "./permissions.ts";
import type { OrgSubjects } from "./subjects.ts";

/**
 * Requests for peer grants: a member asks another (the grantor) for permissions the grantor's role gives them; the
 * grantor approves (perhaps narrowed: the peer grants are made by the same rules as a peer grant given directly,
 * grants.rules.ts) or denies; the requester may cancel. Each step is audited in its own transaction.
 */
export function createGrantRequestsService(deps: {
  db: Database;
  clock: Clock;
  audit: Pick<AuditService, "record">;
  access: Pick<AccessService, "decide" | "membership" | "invalidate">;
  subjects: Pick<OrgSubjects, "isMember">;
  rules: Pick<GrantRules, "requirePassable" | "insertPeerGrants">;
}) {
  const { db, clock, audit, access, subjects } = deps;
  const { requirePassable, insertPeerGrants } = deps.rules;

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

  return {
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
            if (!(await subjects.isMember(tx, orgId, r.requesterId)))
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
  };
}

export type GrantRequestsService = ReturnType<typeof createGrantRequestsService>;
