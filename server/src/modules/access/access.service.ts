import { sql } from "drizzle-orm";
import { textArray } from "../../db/arrays.ts";
import type { Database, Executor } from "../../db/client.ts";
import type { Clock } from "../../lib/clock.ts";
import { createCache, createKeyJoiner, firstPartOf } from "../../lib/cache.ts";
import { platformError } from "../../lib/errors.ts";
import { builtInRolePermissions, permissionsOfRole } from "./authority.ts";
import { isPermission, type Permission } from "./permissions.ts";
import { includes, permissionsFor, relationsIncluding, type ObjectType, type Relation } from "./relations.ts";

/** One step on the path to a decision, so `explain` can show why. */
export interface DecisionStep {
  kind: "membership" | "role" | "peer_grant" | "grant" | "team" | "maintainer" | "default";
  detail: string;
  grant_id?: string;
}

export interface Decision {
  allowed: boolean;
  /** The permission (`secrets:read`) or relation (`read`) asked about. */
  permission: string;
  steps: DecisionStep[];
}

/** A peer grant: a permission another member passed on, perhaps until a time. */
export interface PeerPermission {
  grantId: string;
  permission: Permission;
  grantedBy: string | null;
  expiresAt: Date | null;
}

export interface TeamPlacement {
  teamId: string;
  role: "maintainer" | "member";
  /** Root first, the team itself last. */
  path: readonly string[];
}

export interface OrgMembership {
  orgId: string;
  userId: string;
  role: string;
  /** The role's permissions and the live peer grants' together: what RBAC allows. */
  permissions: ReadonlySet<Permission>;
  rolePermissions: ReadonlySet<Permission>;
  peer: readonly PeerPermission[];
  teams: readonly TeamPlacement[];
  /** The user's teams and all their ancestors: a grant to any of these reaches the user. */
  teamReach: ReadonlySet<string>;
  /**
   * Set for a narrowed credential (an API key with its own permissions): only its permissions count, never what is
   * shared with its owner through relationship grants or teams.
   */
  permissionsOnly?: boolean;
}

export interface ObjectRef {
  type: ObjectType;
  id: string;
}

interface GrantTuple {
  id: string;
  subjectType: string;
  subjectId: string;
  relation: Relation;
  expiresAt: Date | null;
}

interface ObjectFacts {
  grants: GrantTuple[];
  /** For a team: root-first ancestor chain including itself; undefined when the team does not exist. */
  teamPath?: readonly string[];
}

/** A text[] parameter (one statement text whatever the length); the items are ids and relation names, never quoted. */

/** The soonest of some expiry times (ms since epoch), or undefined when none expires. */
function soonest(items: readonly { expiresAt: Date | null }[]): number | undefined {
  let out: number | undefined;
  for (const i of items) if (i.expiresAt && (out === undefined || i.expiresAt.getTime() < out)) out = i.expiresAt.getTime();
  return out;
}

export interface AccessOptions {
  /** Safety net: a cached fact is re-read after this long even without an invalidation. */
  cacheTtlMs?: number;
  maxMemberships?: number;
  maxObjects?: number;
}

/**
 * The authorization engine: one place decides whether a principal may do something in an org.
 *
 * - RBAC: the member's role (built-in or the org's custom role) gives permissions org-wide.
 * - Peer grants: permissions another member passed on (never more than they held), perhaps until a time.
 * - Relationship grants: (subject, relation, object) tuples sharing one resource with a user, a team (reaching the
 *   members of it and of all its sub-teams) or the whole org. Relations include weaker ones (relations.ts).
 * - Teams: a team's maintainers administer it and every team below it; its members read it.
 *
 * Facts are cached per instance (lib/cache.ts), grouped by org: `invalidate(orgId)` makes every cached fact of the
 * org stale at once and tells the other instances (the bus's "access" channel, index.ts), so a revoked grant or
 * removed member is denied on the very next request anywhere. Callers invalidate after their transaction commits.
 */
export function createAccessService(deps: { db: Database; clock: Clock; options?: AccessOptions }) {
  const { db, clock } = deps;
  const ttlMs = deps.options?.cacheTtlMs ?? 30_000;
  // keys: the org, then the member, or the object's type and id (the org first: it is the entry's group)
  const memberKey = createKeyJoiner();
  const [orgTypeKey, typedKey] = [createKeyJoiner(), createKeyJoiner()];
  const objectKey = (orgId: string, object: ObjectRef) => typedKey(orgTypeKey(orgId, object.type), object.id);
  // a fact goes stale at the soonest expiry of a grant in it, or after the safety TTL
  const memberships = createCache<OrgMembership | null, { orgId: string; userId: string }>({
    name: "access.memberships",
    max: deps.options?.maxMemberships ?? 50_000,
    ttlMs,
    clock,
    group: firstPartOf,
    staleAt: (m) => (m ? soonest(m.peer) : undefined),
    fetch: async (_key, { orgId, userId }) => {
      const now = clock.now();
      const [row] = await db.readScoped<MembershipRow>({ orgId }, membershipQuery(orgId, userId, now));
      return toMembership(orgId, userId, row);
    },
  });
  const objects = createCache<ObjectFacts, { orgId: string; object: ObjectRef }>({
    name: "access.objects",
    max: deps.options?.maxObjects ?? 200_000,
    ttlMs,
    clock,
    group: firstPartOf,
    staleAt: (facts) => soonest(facts.grants),
    fetch: async (_key, { orgId, object }) => {
      const now = clock.now();
      const [row] = await db.readScoped<ObjectRow>({ orgId }, objectQuery(orgId, object, now));
      return toObject(row);
    },
  });
  let publish: (orgId: string) => Promise<void> = async () => {};
  /** Caches kept elsewhere that follow the org's access facts (API keys): told of every invalidation. */
  const listeners: ((orgId: string) => void)[] = [];

  async function customRolePermissions(ex: Executor, orgId: string, role: string): Promise<Permission[] | undefined> {
    const r = (await ex.execute(sql`select permissions from custom_roles where org_id = ${orgId} and name = ${role}`)) as unknown as {
      rows: { permissions: string[] }[];
    };
    return r.rows[0]?.permissions.filter(isPermission);
  }

  type MembershipRow = {
    role: string;
    custom: string[] | null;
    teams: { team: string; role: string; path: string[] }[];
    peer: { id: string; p: string; by: string | null; exp: string | null; byRole: string; byCustom: string[] | null }[];
  };
  type ObjectRow = { grants: { id: string; st: string; sid: string; rel: Relation; exp: string | null }[]; path: string[] | null };

  /** The member's role, custom role permissions, teams (with their paths) and live peer grants: one row, or none. */
  const membershipQuery = (orgId: string, userId: string, now: Date) => sql`
        select m.role,
          (select r.permissions from custom_roles r where r.org_id = m.org_id and r.name = m.role) as custom,
          (select coalesce(json_agg(json_build_object('team', t.id, 'role', tm.role, 'path', t.path)), '[]'::json)
             from team_members tm join teams t on t.id = tm.team_id
            where tm.org_id = m.org_id and tm.user_id = m.user_id) as teams,
          (select coalesce(json_agg(json_build_object('id', g.id, 'p', g.relation, 'by', g.granted_by, 'exp', g.expires_at,
                    'byRole', gm.role, 'byCustom', (select r.permissions from custom_roles r where r.org_id = g.org_id and r.name = gm.role))), '[]'::json)
             from grants g join memberships gm on gm.org_id = g.org_id and gm.user_id = g.granted_by
            where g.org_id = m.org_id and g.kind = 'peer' and g.subject_type = 'user' and g.subject_id = m.user_id
              and (g.expires_at is null or g.expires_at > ${now.toISOString()}::timestamptz)) as peer
        from memberships m join orgs o on o.id = m.org_id
        where m.org_id = ${orgId} and m.user_id = ${userId} and o.deleted_at is null
          and not exists (select 1 from users u where u.id = m.user_id and u.disabled_at is not null)`;

  /** An object's live share grants and, for a team, its ancestry: always one row. */
  const objectQuery = (orgId: string, object: ObjectRef, now: Date) => sql`
        select
          (select coalesce(json_agg(json_build_object('id', g.id, 'st', g.subject_type, 'sid', g.subject_id, 'rel', g.relation, 'exp', g.expires_at)), '[]'::json)
             from grants g
            where g.org_id = ${orgId} and g.object_type = ${object.type} and g.object_id = ${object.id} and g.kind = 'share'
              and (g.expires_at is null or g.expires_at > ${now.toISOString()}::timestamptz)) as grants,
          (select t.path from teams t where ${object.type} = 'team' and t.org_id = ${orgId} and t.id = ${object.id}) as path`;

  function toMembership(orgId: string, userId: string, row: MembershipRow | undefined): OrgMembership | null {
    if (!row) return null;
    const builtIn = builtInRolePermissions(row.role);
    const rolePermissions = builtIn.size ? builtIn : new Set<Permission>((row.custom ?? []).filter(isPermission));
    const peer: PeerPermission[] = [];
    for (const g of row.peer) {
      if (!isPermission(g.p)) continue;
      // a peer grant lasts only while its grantor is a member whose role still holds the permission: never more
      const byBuiltIn = builtInRolePermissions(g.byRole);
      if (!(byBuiltIn.size ? byBuiltIn.has(g.p) : (g.byCustom ?? []).includes(g.p))) continue;
      const expiresAt = g.exp ? new Date(g.exp) : null;
      peer.push({ grantId: g.id, permission: g.p, grantedBy: g.by, expiresAt });
    }
    const permissions = new Set<Permission>(rolePermissions);
    for (const p of peer) permissions.add(p.permission);
    const teams: TeamPlacement[] = row.teams.map((t) => ({ teamId: t.team, role: t.role === "maintainer" ? "maintainer" : "member", path: t.path }));
    const teamReach = new Set<string>();
    for (const t of teams) for (const id of t.path) teamReach.add(id);
    return { orgId, userId, role: row.role, permissions, rolePermissions, peer, teams, teamReach };
  }

  function toObject(row: ObjectRow): ObjectFacts {
    const grants = row.grants.map((g) => ({ id: g.id, subjectType: g.st, subjectId: g.sid, relation: g.rel, expiresAt: g.exp ? new Date(g.exp) : null }));
    return { grants, teamPath: row.path ?? undefined };
  }

  /**
   * The decision, and with `trace` the steps that led to it (for explain, the check API's reasons, and grant limits).
   * Without, no step is built: `steps?.push(…)` does not even evaluate its argument, so the hot path (every request's
   * permission, every resource check) makes no strings.
   */
  /** The steps of an untraced decision: none. */
  const NO_STEPS: DecisionStep[] = Object.freeze([]) as unknown as DecisionStep[];

  function decidePermission(m: OrgMembership, permission: Permission, trace = false): Decision {
    const steps: DecisionStep[] | undefined = trace ? [{ kind: "membership", detail: `member of ${m.orgId} with role ${m.role}` }] : undefined;
    if (m.rolePermissions.has(permission)) {
      steps?.push({ kind: "role", detail: `role ${m.role} grants ${permission}` });
      return { allowed: true, permission, steps: steps ?? NO_STEPS };
    }
    steps?.push({ kind: "role", detail: `role ${m.role} does not grant ${permission}` });
    const peer = m.peer.find((p) => p.permission === permission);
    if (peer) {
      steps?.push({
        kind: "peer_grant",
        detail: `peer grant of ${permission} from ${peer.grantedBy ?? "a former member"}${peer.expiresAt ? ` until ${peer.expiresAt.toISOString()}` : ""}`,
        grant_id: peer.grantId,
      });
      return { allowed: true, permission, steps: steps ?? NO_STEPS };
    }
    return { allowed: false, permission, steps: steps ?? NO_STEPS };
  }

  function decideRelation(m: OrgMembership, relation: Relation, object: ObjectRef, facts: ObjectFacts, trace = false): Decision {
    const steps: DecisionStep[] | undefined = trace ? [{ kind: "membership", detail: `member of ${m.orgId} with role ${m.role}` }] : undefined;
    const done = (allowed: boolean): Decision => ({ allowed, permission: relation, steps: steps ?? NO_STEPS });
    if (object.type === "team" && !facts.teamPath) {
      steps?.push({ kind: "default", detail: `no team ${object.id} in this organization` });
      return done(false);
    }
    for (const p of permissionsFor(object.type, relation)) {
      const d = decidePermission(m, p, trace);
      if (d.allowed) {
        steps?.push(...d.steps.slice(1));
        steps?.push({ kind: "role", detail: `${p} covers ${relation} on every ${object.type} of the organization` });
        return done(true);
      }
    }
    if (m.permissionsOnly) {
      steps?.push({ kind: "default", detail: `this credential holds only its own permissions; grants to its owner do not reach it` });
      return done(false);
    }
    if (object.type === "team" && facts.teamPath) {
      for (const t of m.teams) {
        if (t.role === "maintainer" && facts.teamPath.includes(t.teamId) && includes("admin", relation)) {
          steps?.push({
            kind: "maintainer",
            detail: t.teamId === object.id ? `maintainer of team ${t.teamId}` : `maintainer of ${t.teamId}, an ancestor of team ${object.id}`,
          });
          return done(true);
        }
        if (t.teamId === object.id && includes("read", relation)) {
          steps?.push({ kind: "team", detail: `member of team ${object.id}` });
          return done(true);
        }
      }
    }
    for (const g of facts.grants) {
      if (!includes(g.relation, relation)) continue;
      let via: string | undefined;
      if (g.subjectType === "user" && g.subjectId === m.userId) via = "you";
      else if (g.subjectType === "team" && m.teamReach.has(g.subjectId)) {
        const direct = m.teams.some((t) => t.teamId === g.subjectId);
        via = direct ? `team ${g.subjectId}, which you are in` : `team ${g.subjectId}, above a team you are in`;
      } else if (g.subjectType === "org" && g.subjectId === m.orgId) via = "every member of the organization";
      if (!via) continue;
      steps?.push({
        kind: "grant",
        detail: `${g.relation} on ${object.type} ${object.id} granted to ${via}${g.relation !== relation ? ` (${g.relation} includes ${relation})` : ""}${g.expiresAt ? ` until ${g.expiresAt.toISOString()}` : ""}`,
        grant_id: g.id,
      });
      return done(true);
    }
    steps?.push({ kind: "default", detail: `no role permission, team or grant gives ${relation} on ${object.type} ${object.id}` });
    return done(false);
  }

  const service = {
    /** The user's membership in a live org, or undefined (a stranger, or a deleted org: the caller answers 404). */
    async membership(orgId: string, userId: string): Promise<OrgMembership | undefined> {
      const key = memberKey(orgId, userId);
      const hit = memberships.get(key);
      return (hit !== undefined ? hit : await memberships.fetch(key, { orgId, userId })) ?? undefined;
    },

    /** May the member do `permission` (org-wide)? Role, then peer grants. */
    decide(m: OrgMembership, permission: Permission, trace = false): Decision {
      return decidePermission(m, permission, trace);
    },

    /** May the member hold `relation` on one resource? RBAC, teams, then relationship grants. */
    async check(m: OrgMembership, relation: Relation, object: ObjectRef, trace = false): Promise<Decision> {
      const key = objectKey(m.orgId, object);
      const facts = objects.get(key) ?? (await objects.fetch(key, { orgId: m.orgId, object }));
      return decideRelation(m, relation, object, facts, trace);
    },

    /**
     * `check` for a user given by id (the check API, other services): when neither the membership nor the object is
     * cached, both are read in one transaction. A stranger (or a deleted org) gets undefined.
     */
    async checkUser(orgId: string, userId: string, relation: Relation, object: ObjectRef, trace = false): Promise<Decision | undefined> {
      const mKey = memberKey(orgId, userId);
      const oKey = objectKey(orgId, object);
      let m = memberships.get(mKey);
      let facts = objects.get(oKey);
      if (m === undefined && facts === undefined) {
        // taken before reading: an invalidation during the read leaves the facts unstored
        const since = { m: memberships.version(), o: objects.version() };
        const now = clock.now();
        // both in one statement (one round trip on PostgreSQL)
        const [row] = await db.readScoped<{ m: MembershipRow | null; o: ObjectRow }>(
          { orgId },
          sql`select (select row_to_json(x) from (${membershipQuery(orgId, userId, now)}) x) as m, (select row_to_json(y) from (${objectQuery(orgId, object, now)}) y) as o`,
        );
        m = toMembership(orgId, userId, row.m ?? undefined);
        facts = toObject(row.o);
        memberships.set(mKey, m, since.m);
        objects.set(oKey, facts, since.o);
      }
      if (m === undefined) m = await memberships.fetch(mKey, { orgId, userId }); // null: a cached stranger
      if (!m) return undefined;
      facts ??= await objects.fetch(oKey, { orgId, object });
      return decideRelation(m, relation, object, facts, trace);
    },

    /**
     * The ids of the objects of `type` on which the member holds `relation` through live share grants: to them, to a
     * team they are in or below, or to the org; the same grants `check` counts (team memberships and RBAC aside: a
     * role covering the whole type needs no list). One query, uncached, so a revoked grant is gone from the next
     * answer. A narrowed credential gets none: grants to its owner do not reach it.
     */
    async grantedObjectIds(m: OrgMembership, type: ObjectType, relation: Relation): Promise<string[]> {
      if (m.permissionsOnly) return [];
      const rows = await db.readScoped<{ id: string }>(
        { orgId: m.orgId },
        sql`select distinct g.object_id as id from grants g
             where g.org_id = ${m.orgId} and g.kind = 'share' and g.object_type = ${type}
               and g.relation = any(${textArray(relationsIncluding(relation))})
               and (g.expires_at is null or g.expires_at > ${clock.now().toISOString()}::timestamptz)
               and ((g.subject_type = 'user' and g.subject_id = ${m.userId})
                 or (g.subject_type = 'team' and g.subject_id = any(${textArray([...m.teamReach])}))
                 or (g.subject_type = 'org' and g.subject_id = ${m.orgId}))`,
      );
      return rows.map((r) => r.id);
    },

    /** Throws 403 naming the permission unless the member holds it (org-wide, or on `object` when given). */
    async require(m: OrgMembership, permission: Permission, object?: { ref: ObjectRef; relation: Relation }): Promise<void> {
      if (decidePermission(m, permission).allowed) return;
      if (object && (await service.check(m, object.relation, object.ref)).allowed) return;
      throw platformError(
        "FORBIDDEN",
        `This needs the ${permission} permission${object ? ` or ${object.relation} on ${object.ref.type} ${object.ref.id}` : ""}, which you do not have.`,
        {
          extra: { permission },
        },
      );
    },

    /** The permissions of a role in an org: built-in, or the org's custom role (undefined when there is none). */
    rolePermissions(ex: Executor, orgId: string, role: string): Promise<ReadonlySet<Permission> | undefined> {
      return permissionsOfRole(ex, orgId, role, customRolePermissions);
    },

    /**
     * What a list of roles gives together (a key's, a service account's, a service key's roles): 400 naming
     * `roles.<i>` for a name that is neither a built-in role nor a custom role of the org.
     */
    async permissionsOfRoles(ex: Executor, orgId: string, roles: readonly string[], field = "roles"): Promise<Set<Permission>> {
      const out = new Set<Permission>();
      for (const [i, role] of roles.entries()) {
        const perms = await permissionsOfRole(ex, orgId, role, customRolePermissions);
        if (!perms)
          throw platformError("VALIDATION_FAILED", `role ${role} is neither a built-in role nor a custom role of this organization.`, {
            field: `${field}.${i}`,
          });
        for (const p of perms) out.add(p);
      }
      return out;
    },

    /**
     * Something about the org's access changed (membership, role, team, grant, the org itself): every cached fact of
     * the org is stale here at once, and on the other instances before this resolves. Call after the commit.
     */
    async invalidate(orgId: string): Promise<void> {
      service.invalidateLocal(orgId);
      await publish(orgId);
    },

    /** Drops the org's cached facts on this instance only (the bus calls this for other instances' changes). */
    invalidateLocal(orgId: string): void {
      void memberships.deleteGroup(orgId); // local caches: nothing to wait for
      void objects.deleteGroup(orgId);
      for (const l of listeners) l(orgId);
    },

    /** Calls `listener` on every invalidation of an org, local or from another instance (API keys drop their cache). */
    onInvalidate(listener: (orgId: string) => void): void {
      listeners.push(listener);
    },

    /** Wires the cross-instance bus (deps.ts does, once Redis is known). */
    setPublisher(fn: (orgId: string) => Promise<void>): void {
      publish = fn;
    },

    /** Every cached fact, everywhere in this instance, gone (tests and the bench's uncached runs). */
    clearCache(): void {
      void memberships.clear();
      void objects.clear();
    },
  };
  return service;
}

export type AccessService = ReturnType<typeof createAccessService>;
