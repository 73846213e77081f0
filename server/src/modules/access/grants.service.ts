import type { Database, Executor } from "../../db/client.ts";
import type { Clock } from "../../lib/clock.ts";
import { isId, newId } from "../../lib/ids.ts";
import type { AuditActor, AuditService } from "../audit/audit.service.ts";
import type { AccessService, Decision, ObjectRef, OrgMembership } from "./access.service.ts";
import { grantsRepo, type GrantRow } from "./grants.repo.ts";
import { bad, conflictAs409, forbidden, type GrantRules, iso, requireFuture } from "./grants.rules.ts";
import type { Permission } from "./permissions.ts";
import { isObjectType, type ObjectType, type Relation, type SubjectType } from "./relations.ts";
import type { OrgSubjects } from "./subjects.ts";

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

/**
 * Grants: sharing one resource with a user, a team or the whole org (kind `share`); peer grants, a member passing a
 * permission their role gives them to another member (kind `peer`); and the check / explain API over the access engine
 * (requests for peer grants: grant-requests.service.ts). Every change is audited in its own transaction and then invalidates the org's cached
 * access here and on every other instance.
 */
export function createGrantsService(deps: {
  db: Database;
  clock: Clock;
  audit: Pick<AuditService, "record">;
  access: Pick<AccessService, "check" | "decide" | "membership" | "invalidate">;
  /** Filled in as the modules owning object types are wired (index.ts). */
  objects?: ObjectVerifiers;
  /** Whether a grant's subject or team object exists: the members and teams modules answer (subjects.ts). */
  subjects: OrgSubjects;
  /** Who may give what, and how a peer grant is written (grants.rules.ts). */
  rules: GrantRules;
}) {
  const { db, clock, audit, access, subjects } = deps;
  const { authorizeShare, requirePassable, clearTuple, insertPeerGrants } = deps.rules;
  const objects = deps.objects ?? {};

  /** The decision's time limit: the grant it rests on ends then (null: it rests on nothing that ends). */
  async function limitOf(tx: Executor, orgId: string, decisions: Decision[]): Promise<Date | null> {
    const ids = decisions.map((d) => d.steps.findLast((s) => s.grant_id)?.grant_id).filter((id): id is string => !!id);
    const ends = await grantsRepo.expiries(tx, orgId, ids);
    let limit: Date | null = null;
    for (const end of ends.values()) if (end && (!limit || end < limit)) limit = end;
    return limit;
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
        if (object.type === "team" && !(await subjects.teamExists(tx, orgId, object.id))) throw bad("object.id", `No team ${object.id} in this organization.`);
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
                  ? await subjects.isMember(tx, orgId, subject.id)
                  : await subjects.teamExists(tx, orgId, subject.id);
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
            if (!(await subjects.isMember(tx, orgId, input.granteeId))) throw bad("grantee_id", `${input.granteeId} is not a member of this organization.`);
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
