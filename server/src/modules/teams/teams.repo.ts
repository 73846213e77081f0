import { sql, type SQL } from "drizzle-orm";
import { textArray } from "../../db/arrays.ts";
import type { Executor } from "../../db/client.ts";
import type { TeamDetailRow, TeamMemberRow, TeamRow } from "./teams.schemas.ts";

async function rows<T>(ex: Executor, query: SQL): Promise<T[]> {
  return ((await ex.execute(query)) as unknown as { rows: T[] }).rows;
}

const TEAM = sql.raw("id, name, description, parent_id, path, created_by, created_at, updated_at");

/**
 * PostgreSQL's text form of a timestamptz ("2024-05-01 12:34:56.789123+00", as both drivers hand it over) as ISO 8601
 * in UTC with milliseconds, like Date#toISOString. Done here rather than with to_char in the query: on the list route
 * that is the difference between ~1 ms of database time per page and a few microseconds of string slicing.
 */
export function isoTimestamp(value: string | Date): string {
  if (typeof value !== "string") return value.toISOString();
  if (value.length >= 22 && value.endsWith("+00") && value[10] === " ") {
    const fraction = value.slice(20, -3); // "" or the digits after the dot
    return `${value.slice(0, 10)}T${value.slice(11, 19)}.${(fraction + "000").slice(0, 3)}Z`;
  }
  return new Date(value).toISOString(); // another session time zone: let Date do the arithmetic
}

/** Rows as they leave the database become the wire format in place (no copies on the hot list path). */
function teamRows(list: TeamRow[]): TeamRow[] {
  for (const r of list) {
    r.created_at = isoTimestamp(r.created_at);
    r.updated_at = isoTimestamp(r.updated_at);
  }
  return list;
}
function memberRows(list: TeamMemberRow[]): TeamMemberRow[] {
  for (const r of list) r.added_at = isoTimestamp(r.added_at);
  return list;
}

/** A text[] literal of ids (ids are [a-z0-9_], so they need no escaping beyond the quotes). */
const at = (d: Date) => sql`${d.toISOString()}::timestamptz`;

export interface NewTeam {
  id: string;
  orgId: string;
  name: string;
  description: string | null;
  parentId: string | null;
  path: string[];
  createdBy: string;
  now: Date;
}

/** Team queries. Row-level security limits every transaction to its org; each query names the org as well. */
export const teamsRepo = {
  /**
   * Serializes changes to the shape of one org's tree (create, move, delete) until the transaction ends, so two moves
   * cannot together make a cycle and a path is never computed from a parent that is moving.
   */
  async lockTree(tx: Executor, orgId: string): Promise<void> {
    await tx.execute(sql`select pg_advisory_xact_lock(hashtextextended(${`plinth.teams:${orgId}`}, 0))`);
  },

  /** One page of the org's teams in creation order (ids are time-ordered); `parent` null means the top-level ones. */
  list(ex: Executor, orgId: string, opts: { parent?: string | null; after?: string; limit: number }): Promise<TeamRow[]> {
    const parent = opts.parent === undefined ? sql`` : opts.parent === null ? sql` and parent_id is null` : sql` and parent_id = ${opts.parent}`;
    const after = opts.after === undefined ? sql`` : sql` and id > ${opts.after}`;
    return rows<TeamRow>(ex, sql`select ${TEAM} from teams where org_id = ${orgId}${parent}${after} order by id limit ${opts.limit}`).then(teamRows);
  },

  /** Every team's place in the tree, siblings by name. */
  outline(ex: Executor, orgId: string): Promise<{ id: string; name: string; parent_id: string | null }[]> {
    return rows(ex, sql`select id, name, parent_id from teams where org_id = ${orgId} order by lower(name), id`);
  },

  async find(ex: Executor, orgId: string, teamId: string, lock?: "update" | "key share"): Promise<TeamRow | undefined> {
    const suffix = lock === "update" ? sql` for update` : lock === "key share" ? sql` for key share` : sql``;
    return teamRows(await rows<TeamRow>(ex, sql`select ${TEAM} from teams where org_id = ${orgId} and id = ${teamId}${suffix}`))[0];
  },

  /** Which of `ids` are teams of the org. */
  async existing(ex: Executor, orgId: string, ids: readonly string[]): Promise<Set<string>> {
    if (!ids.length) return new Set();
    const found = await rows<{ id: string }>(ex, sql`select id from teams where org_id = ${orgId} and id = any(${textArray(ids)})`);
    return new Set(found.map((r) => r.id));
  },

  /** The team with its direct member count and its ancestors (top-level first), in one statement. */
  async findDetail(ex: Executor, orgId: string, teamId: string): Promise<TeamDetailRow | undefined> {
    const [row] = await rows<TeamDetailRow>(
      ex,
      sql`select ${TEAM},
        (select count(*)::int from team_members m where m.org_id = t.org_id and m.team_id = t.id) as member_count,
        (select coalesce(json_agg(json_build_object('id', a.id, 'name', a.name) order by array_position(t.path, a.id)), '[]'::json)
           from teams a where a.org_id = t.org_id and a.id = any(t.path) and a.id <> t.id) as ancestors
      from teams t where t.org_id = ${orgId} and t.id = ${teamId}`,
    );
    return row && (teamRows([row])[0] as TeamDetailRow);
  },

  async insert(tx: Executor, t: NewTeam): Promise<TeamRow> {
    const [row] = await rows<TeamRow>(
      tx,
      sql`insert into teams (id, org_id, name, description, parent_id, path, created_by, created_at, updated_at)
        values (${t.id}, ${t.orgId}, ${t.name}, ${t.description}, ${t.parentId}, ${textArray(t.path)}, ${t.createdBy}, ${at(t.now)}, ${at(t.now)})
        returning ${TEAM}`,
    );
    return teamRows([row])[0];
  },

  async update(tx: Executor, orgId: string, teamId: string, set: { name?: string; description?: string | null }, now: Date): Promise<TeamRow> {
    const parts = [sql`updated_at = ${at(now)}`];
    if (set.name !== undefined) parts.push(sql`name = ${set.name}`);
    if (set.description !== undefined) parts.push(sql`description = ${set.description}`);
    const [row] = await rows<TeamRow>(tx, sql`update teams set ${sql.join(parts, sql`, `)} where org_id = ${orgId} and id = ${teamId} returning ${TEAM}`);
    return teamRows([row])[0];
  },

  /** The length of the longest path in the team's subtree (the team itself included). */
  async subtreeDepth(ex: Executor, orgId: string, teamId: string): Promise<number> {
    const [row] = await rows<{ depth: number }>(
      ex,
      sql`select coalesce(max(array_length(path, 1)), 0)::int as depth from teams where org_id = ${orgId} and path @> array[${teamId}]::text[]`,
    );
    return row.depth;
  },

  /** The team and every team below it, deepest first. */
  subtree(ex: Executor, orgId: string, teamId: string): Promise<{ id: string; name: string; parent_id: string | null }[]> {
    return rows(
      ex,
      sql`select id, name, parent_id from teams where org_id = ${orgId} and path @> array[${teamId}]::text[] order by array_length(path, 1) desc, id`,
    );
  },

  /**
   * Re-parents a team and its whole subtree in one statement: every path that runs through the team keeps its part
   * from the team down and gets the new parent's path in front.
   */
  async move(tx: Executor, orgId: string, team: TeamRow, parent: { id: string; path: string[] } | null, now: Date): Promise<void> {
    const from = team.path.length; // 1-based position of the team in each of its subtree's paths
    await tx.execute(sql`
      update teams set
        path = ${textArray(parent?.path ?? [])} || path[${from}:],
        parent_id = case when id = ${team.id} then ${parent?.id ?? null} else parent_id end,
        updated_at = case when id = ${team.id} then ${at(now)} else updated_at end
      where org_id = ${orgId} and path @> array[${team.id}]::text[]`);
  },

  /** Deletes the teams (their memberships cascade); the grants to or on them are the access module's to delete first. */
  async deleteTeams(tx: Executor, orgId: string, ids: readonly string[]): Promise<void> {
    // parent links inside the set first: the parent foreign key restricts deleting a team that still has children
    await tx.execute(sql`update teams set parent_id = null where org_id = ${orgId} and id = any(${textArray(ids)}) and parent_id = any(${textArray(ids)})`);
    await tx.execute(sql`delete from teams where org_id = ${orgId} and id = any(${textArray(ids)})`);
  },

  async isOrgMember(ex: Executor, orgId: string, userId: string): Promise<boolean> {
    return (await rows(ex, sql`select 1 from memberships where org_id = ${orgId} and user_id = ${userId}`)).length > 0;
  },

  listMembers(ex: Executor, orgId: string, teamId: string, opts: { after?: string; limit: number }): Promise<TeamMemberRow[]> {
    const after = opts.after === undefined ? sql`` : sql` and tm.user_id > ${opts.after}`;
    return rows<TeamMemberRow>(
      ex,
      sql`select tm.user_id, u.name, u.email, tm.role, tm.created_at as added_at
        from team_members tm join users u on u.id = tm.user_id
        where tm.org_id = ${orgId} and tm.team_id = ${teamId}${after} order by tm.user_id limit ${opts.limit}`,
    ).then(memberRows);
  },

  async findMember(ex: Executor, orgId: string, teamId: string, userId: string, lock = false): Promise<TeamMemberRow | undefined> {
    const [row] = await rows<TeamMemberRow>(
      ex,
      sql`select tm.user_id, u.name, u.email, tm.role, tm.created_at as added_at
        from team_members tm join users u on u.id = tm.user_id
        where tm.org_id = ${orgId} and tm.team_id = ${teamId} and tm.user_id = ${userId}${lock ? sql` for update of tm` : sql``}`,
    );
    return row && memberRows([row])[0];
  },

  /** Adds the member; false when they were already in the team (a concurrent add won). */
  async insertMember(tx: Executor, orgId: string, teamId: string, userId: string, role: string, now: Date): Promise<boolean> {
    const r = await rows(
      tx,
      sql`insert into team_members (team_id, org_id, user_id, role, created_at) values (${teamId}, ${orgId}, ${userId}, ${role}, ${at(now)})
        on conflict (team_id, user_id) do nothing returning user_id`,
    );
    return r.length > 0;
  },

  async setMemberRole(tx: Executor, orgId: string, teamId: string, userId: string, role: string): Promise<void> {
    await tx.execute(sql`update team_members set role = ${role} where org_id = ${orgId} and team_id = ${teamId} and user_id = ${userId}`);
  },

  async deleteMember(tx: Executor, orgId: string, teamId: string, userId: string): Promise<string | undefined> {
    const [row] = await rows<{ role: string }>(
      tx,
      sql`delete from team_members where org_id = ${orgId} and team_id = ${teamId} and user_id = ${userId} returning role`,
    );
    return row?.role;
  },
};

export type TeamsRepo = typeof teamsRepo;
