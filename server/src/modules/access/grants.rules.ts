import type { Executor } from "../../db/client.ts";
import { platformError } from "../../lib/errors.ts";
import { isId, newId } from "../../lib/ids.ts";
import { isUniqueViolation } from "../../lib/pg-errors.ts";
import type { AuditActor, AuditService } from "../audit/audit.service.ts";
import type { AccessService, Decision, ObjectRef, OrgMembership } from "./access.service.ts";
import { requireWithin } from "./authority.ts";
import { grantsError } from "./grants.errors.ts";
import { grantsRepo, type GrantRow } from "./grants.repo.ts";
import type { Permission } from "./permissions.ts";
import type { Relation } from "./relations.ts";

export const bad = (field: string, detail: string) => platformError("VALIDATION_FAILED", detail, { field });
export const forbidden = (permission: string, detail: string) => platformError("FORBIDDEN", detail, { extra: { permission } });
export const iso = (d: Date | null | undefined) => d?.toISOString() ?? null;
const NOTHING: ReadonlySet<Permission> = new Set();

export function requireFuture(expiresAt: Date | undefined, now: Date, field = "expires_at"): void {
  if (expiresAt && expiresAt.getTime() <= now.getTime()) throw bad(field, `${field} must be in the future.`);
}

/** Unique violations of a concurrent writer become the same 409 as the one checked for. */
export async function conflictAs409<T>(fn: () => Promise<T>, field: string): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (isUniqueViolation(e)) throw grantsError("GRANT_EXISTS", "An identical grant was created at the same time.", { field });
    throw e;
  }
}

/**
 * The rules every path that makes or takes away a grant shares (grants.service.ts: shares and peer grants;
 * grant-requests.service.ts: approving a request makes peer grants): who may give what, how a peer grant is written
 * and audited, and how a concurrent duplicate answers.
 */
export function createGrantRules(deps: { audit: Pick<AuditService, "record">; access: Pick<AccessService, "check" | "decide" | "membership"> }) {
  const { audit, access } = deps;

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

  /** Peer grants of `permissions` from the grantor to the grantee, each audited as peer_grant.created (an expired one on the tuple is replaced). */
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

  return { authorizeShare, requirePassable, clearTuple, insertPeerGrants };
}

export type GrantRules = ReturnType<typeof createGrantRules>;
