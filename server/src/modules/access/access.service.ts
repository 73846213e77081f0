import { and, eq, isNull } from "drizzle-orm";
import type { Database } from "../../db/client.ts";
import { memberships, orgs } from "../../db/schema/index.ts";
import { BUILT_IN_ROLES, isBuiltInRole, type Permission } from "./permissions.ts";

/** Where a decision came from, so `explain` can show the path. */
export interface DecisionStep {
  kind: "membership" | "role";
  detail: string;
}

export interface Decision {
  allowed: boolean;
  permission: Permission;
  steps: DecisionStep[];
}

export interface OrgMembership {
  orgId: string;
  userId: string;
  role: string;
  permissions: ReadonlySet<Permission>;
}

function permissionsOf(role: string): ReadonlySet<Permission> {
  return new Set(isBuiltInRole(role) ? BUILT_IN_ROLES[role].permissions : []);
}

/**
 * The authorization engine: one place decides whether a principal may do something in an org. This session it is
 * RBAC over the built-in roles; relationship grants (sharing, teams, peer grants) and custom roles plug in here.
 */
export function createAccessService(deps: { db: Database }) {
  const { db } = deps;
  return {
    /** The user's membership in a live org, or undefined (a stranger, or a deleted org: the caller answers 404). */
    async membership(orgId: string, userId: string): Promise<OrgMembership | undefined> {
      const [row] = await db.tx({ orgId, userId }, (tx) =>
        tx
          .select({ role: memberships.role })
          .from(memberships)
          .innerJoin(orgs, eq(orgs.id, memberships.orgId))
          .where(and(eq(memberships.orgId, orgId), eq(memberships.userId, userId), isNull(orgs.deletedAt)))
          .limit(1),
      );
      return row ? { orgId, userId, role: row.role, permissions: permissionsOf(row.role) } : undefined;
    },

    decide(m: OrgMembership, permission: Permission): Decision {
      const allowed = m.permissions.has(permission);
      return {
        allowed,
        permission,
        steps: [
          { kind: "membership", detail: `member of ${m.orgId} with role ${m.role}` },
          { kind: "role", detail: allowed ? `role ${m.role} grants ${permission}` : `role ${m.role} does not grant ${permission}` },
        ],
      };
    },

    permissionsOf,
  };
}

export type AccessService = ReturnType<typeof createAccessService>;
