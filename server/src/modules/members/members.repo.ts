import { sql, type SQL } from "drizzle-orm";
import type { Executor } from "../../db/client.ts";

export interface MemberTeam {
  id: string;
  name: string;
  role: string;
}

export interface MemberRow {
  userId: string;
  name: string;
  email: string;
  role: string;
  joinedAt: Date;
  /** created_at to the microsecond, for the list's keyset cursor. */
  position: string;
  teams: MemberTeam[];
}

export interface CustomRoleRow {
  id: string;
  name: string;
  description: string;
  permissions: string[];
  createdAt: Date;
  updatedAt: Date;
}

export interface MemberFilter {
  role?: string;
  /** Case-insensitive substring of the name or email. */
  q?: string;
  /** Rows after this (created_at, user_id) position. */
  after?: { position: string; userId: string };
}

async function rows<T>(ex: Executor, query: SQL): Promise<T[]> {
  return ((await ex.execute(query)) as unknown as { rows: T[] }).rows;
}

const likeEscape = (s: string) => s.replace(/[\\%_]/g, "\\$&");

interface RawMember {
  user_id: string;
  name: string;
  email: string;
  role: string;
  created_at: string | Date;
  position: string;
  teams: MemberTeam[];
}

const toMember = (r: RawMember): MemberRow => ({
  userId: r.user_id,
  name: r.name,
  email: r.email,
  role: r.role,
  joinedAt: new Date(r.created_at),
  position: r.position,
  teams: r.teams,
});

interface RawRole {
  id: string;
  name: string;
  description: string;
  permissions: string[];
  created_at: string | Date;
  updated_at: string | Date;
}

const toRole = (r: RawRole): CustomRoleRow => ({
  id: r.id,
  name: r.name,
  description: r.description,
  permissions: r.permissions,
  createdAt: new Date(r.created_at),
  updatedAt: new Date(r.updated_at),
});

function memberQuery(orgId: string, where: SQL, tail: SQL): SQL {
  return sql`
    select m.user_id, u.name, u.email, m.role, m.created_at,
      to_char(m.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as position,
      (select coalesce(json_agg(json_build_object('id', t.id, 'name', t.name, 'role', tm.role) order by t.name, t.id), '[]'::json)
         from team_members tm join teams t on t.id = tm.team_id
        where tm.org_id = m.org_id and tm.user_id = m.user_id and t.org_id = m.org_id) as teams
    from memberships m join users u on u.id = m.user_id
    where m.org_id = ${orgId} and ${where}
    ${tail}`;
}

/** Member and custom-role queries; every one names its org (row-level security is the floor, this the wall). */
export const membersRepo = {
  async list(ex: Executor, orgId: string, f: MemberFilter, limit: number): Promise<MemberRow[]> {
    const conds: SQL[] = [sql`true`];
    if (f.role) conds.push(sql`m.role = ${f.role}`);
    if (f.q) {
      const like = `%${likeEscape(f.q)}%`;
      conds.push(sql`(u.name ilike ${like} or u.email ilike ${like})`);
    }
    if (f.after) conds.push(sql`(m.created_at, m.user_id) > (${f.after.position}::timestamptz, ${f.after.userId})`);
    const r = await rows<RawMember>(ex, memberQuery(orgId, sql.join(conds, sql` and `), sql`order by m.created_at, m.user_id limit ${limit}`));
    return r.map(toMember);
  },

  /** Members (enabled accounts) holding one of `roles` or among `userIds`, with their address: who a notice goes to. */
  async notifiable(ex: Executor, orgId: string, q: { roles: readonly string[]; userIds: readonly string[] }) {
    const inList = (xs: readonly string[]) =>
      xs.length
        ? sql`in (${sql.join(
            xs.map((x) => sql`${x}`),
            sql`, `,
          )})`
        : sql`in (null)`;
    return rows<{ user_id: string; email: string; name: string; role: string }>(
      ex,
      sql`select m.user_id, u.email, u.name, m.role from memberships m join users u on u.id = m.user_id
          where m.org_id = ${orgId} and u.disabled_at is null and (m.role ${inList(q.roles)} or m.user_id ${inList(q.userIds)})
          order by m.user_id`,
    );
  },

  async find(ex: Executor, orgId: string, userId: string): Promise<MemberRow | undefined> {
    const [r] = await rows<RawMember>(ex, memberQuery(orgId, sql`m.user_id = ${userId}`, sql``));
    return r ? toMember(r) : undefined;
  },

  /**
   * Locks, until the transaction ends, the org's owner memberships and those of the given users, in one order (so
   * two changes cannot deadlock): the last-owner rule then counts owners that cannot change under it.
   */
  async lockOwnersAnd(tx: Executor, orgId: string, userIds: string[]): Promise<{ userId: string; role: string }[]> {
    const users = sql.join(
      userIds.map((u) => sql`${u}`),
      sql`, `,
    );
    const r = await rows<{ user_id: string; role: string }>(
      tx,
      sql`select user_id, role from memberships
          where org_id = ${orgId} and (role = 'owner' or user_id in (${users}))
          order by user_id for update`,
    );
    return r.map((x) => ({ userId: x.user_id, role: x.role }));
  },

  async setRole(tx: Executor, orgId: string, userId: string, role: string): Promise<void> {
    await tx.execute(sql`update memberships set role = ${role} where org_id = ${orgId} and user_id = ${userId}`);
  },

  /** A new membership (an accepted invitation, a new org's first owner): the one insert into memberships. */
  async insertMembership(tx: Executor, row: { orgId: string; userId: string; role: string; now: Date }): Promise<void> {
    await tx.execute(
      sql`insert into memberships (org_id, user_id, role, created_at) values (${row.orgId}, ${row.userId}, ${row.role}, ${row.now.toISOString()}::timestamptz)`,
    );
  },

  /**
   * Ends a user's membership (their team memberships go with it by foreign key). The grants they hold are the access
   * module's to remove (grants.owners.ts).
   */
  async removeMembership(tx: Executor, orgId: string, userId: string): Promise<void> {
    await tx.execute(sql`delete from memberships where org_id = ${orgId} and user_id = ${userId}`);
  },

  async listRoles(ex: Executor, orgId: string): Promise<CustomRoleRow[]> {
    const r = await rows<RawRole>(
      ex,
      sql`select id, name, description, permissions, created_at, updated_at from custom_roles where org_id = ${orgId} order by name`,
    );
    return r.map(toRole);
  },

  /** How many members hold each role of the org. */
  async roleCounts(ex: Executor, orgId: string): Promise<Map<string, number>> {
    const r = await rows<{ role: string; n: number | string }>(ex, sql`select role, count(*) as n from memberships where org_id = ${orgId} group by role`);
    return new Map(r.map((x) => [x.role, Number(x.n)]));
  },

  async countRoles(ex: Executor, orgId: string): Promise<number> {
    const [r] = await rows<{ n: number | string }>(ex, sql`select count(*) as n from custom_roles where org_id = ${orgId}`);
    return Number(r.n);
  },

  /** `lock`: "update" to change or delete the role; "share" to assign it (a concurrent delete then waits, or sees the holder). */
  async findRole(ex: Executor, orgId: string, by: { id: string } | { name: string }, lock?: "update" | "share"): Promise<CustomRoleRow | undefined> {
    const where = "id" in by ? sql`id = ${by.id}` : sql`name = ${by.name}`;
    const lockSql = lock === "update" ? sql` for update` : lock === "share" ? sql` for share` : sql``;
    const [r] = await rows<RawRole>(
      ex,
      sql`select id, name, description, permissions, created_at, updated_at from custom_roles where org_id = ${orgId} and ${where}${lockSql}`,
    );
    return r ? toRole(r) : undefined;
  },

  async insertRole(
    tx: Executor,
    orgId: string,
    row: { id: string; name: string; description: string; permissions: string[]; createdBy: string | null; now: Date },
  ): Promise<CustomRoleRow> {
    const [r] = await rows<RawRole>(
      tx,
      sql`insert into custom_roles (id, org_id, name, description, permissions, created_by, created_at, updated_at)
          values (${row.id}, ${orgId}, ${row.name}, ${row.description}, ${toTextArray(row.permissions)}, ${row.createdBy}, ${row.now.toISOString()}::timestamptz, ${row.now.toISOString()}::timestamptz)
          returning id, name, description, permissions, created_at, updated_at`,
    );
    return toRole(r);
  },

  async updateRole(tx: Executor, orgId: string, id: string, patch: { description: string; permissions: string[]; now: Date }): Promise<CustomRoleRow> {
    const [r] = await rows<RawRole>(
      tx,
      sql`update custom_roles set description = ${patch.description}, permissions = ${toTextArray(patch.permissions)}, updated_at = ${patch.now.toISOString()}::timestamptz
          where org_id = ${orgId} and id = ${id}
          returning id, name, description, permissions, created_at, updated_at`,
    );
    return toRole(r);
  },

  async deleteRole(tx: Executor, orgId: string, id: string): Promise<void> {
    await tx.execute(sql`delete from custom_roles where org_id = ${orgId} and id = ${id}`);
  },

  /** Who would be left holding a role that no longer exists: its members and its pending invitations. */
  async roleUsage(ex: Executor, orgId: string, name: string, now: Date): Promise<{ members: number; invitations: number }> {
    const [r] = await rows<{ members: number | string; invitations: number | string }>(
      ex,
      sql`select
            (select count(*) from memberships where org_id = ${orgId} and role = ${name}) as members,
            (select count(*) from invitations where org_id = ${orgId} and role = ${name}
               and accepted_at is null and revoked_at is null and expires_at > ${now.toISOString()}::timestamptz) as invitations`,
    );
    return { members: Number(r.members), invitations: Number(r.invitations) };
  },
};

/** A text[] parameter that both drivers bind the same way. */
function toTextArray(values: string[]): SQL {
  if (!values.length) return sql`'{}'::text[]`;
  return sql`array[${sql.join(
    values.map((v) => sql`${v}`),
    sql`, `,
  )}]::text[]`;
}

export type MembersRepo = typeof membersRepo;
