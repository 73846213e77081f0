import { Type, type TSchema } from "typebox";
import { OrgIdParams, Timestamp } from "../../http/schemas.ts";
import { Page, PageQuery, pageQuery } from "../../lib/pagination.ts";
import { idPattern } from "../../lib/ids.ts";
import { MAX_TEAM_DEPTH } from "./teams.errors.ts";

export const TeamId = Type.String({ pattern: idPattern("team"), description: "team_… id" });
const UserId = Type.String({ pattern: idPattern("user"), description: "usr_… id of a member of the organization" });

export const TeamParams = Type.Object({ ...OrgIdParams.properties, teamId: TeamId }, { additionalProperties: false });
export const TeamMemberParams = Type.Object({ ...OrgIdParams.properties, teamId: TeamId, userId: UserId }, { additionalProperties: false });

export const TeamName = Type.String({
  minLength: 1,
  maxLength: 100,
  pattern: "\\S",
  description: "Team name, unique in the organization (case-insensitively); trimmed",
});
export const TeamDescription = Type.Union([Type.String({ maxLength: 1000 }), Type.Null()], { description: "Free text (up to 1,000 characters), or null" });
const ParentId = Type.Union([TeamId, Type.Null()], { description: "The parent team (team_… of this organization), or null for a top-level team" });
export const TeamRole = Type.Union([Type.Literal("maintainer"), Type.Literal("member")], {
  description: "maintainer: manages the team and every team below it; member: belongs to it (and reads it)",
});

export const CreateTeamBody = Type.Object(
  { name: TeamName, description: Type.Optional(TeamDescription), parent_id: Type.Optional(ParentId) },
  { additionalProperties: false },
);
export const UpdateTeamBody = Type.Object(
  { name: Type.Optional(TeamName), description: Type.Optional(TeamDescription) },
  { additionalProperties: false, minProperties: 1 },
);
export const MoveTeamBody = Type.Object({ parent_id: ParentId }, { additionalProperties: false });
export const PutMemberBody = Type.Object({ role: TeamRole }, { additionalProperties: false });

export const ListTeamsQuery = Type.Object(
  {
    parent_id: Type.Optional(
      Type.String({
        pattern: `^(root|${idPattern("team").slice(1, -1)})$`,
        description: "Only the direct children of this team (team_…), or `root` for the top-level teams; omitted: every team",
      }),
    ),
    ...pageQuery,
  },
  { additionalProperties: false },
);
export const ListMembersQuery = PageQuery;
export const DeleteTeamQuery = Type.Object(
  { cascade: Type.Optional(Type.Boolean({ default: false, description: "Also delete every team below it (default: a team with sub-teams is refused)" })) },
  { additionalProperties: false },
);

const teamFields = {
  id: Type.String({ description: "team_… id" }),
  name: Type.String(),
  description: Type.Union([Type.String(), Type.Null()]),
  parent_id: Type.Union([Type.String(), Type.Null()], { description: "The parent team, or null for a top-level team" }),
  path: Type.Array(Type.String(), { description: "Ids from the top-level team down to and including this one" }),
  created_by: Type.Union([Type.String(), Type.Null()], { description: "usr_… id of the creator (its first maintainer)" }),
  created_at: Timestamp("When the team was created"),
  updated_at: Timestamp("Last change of name, description or place"),
};

export const Team = Type.Object(teamFields);
export const TeamDetail = Type.Object({
  ...teamFields,
  member_count: Type.Integer({ description: "Direct members (maintainers included), not those of sub-teams" }),
  ancestors: Type.Array(Type.Object({ id: Type.String(), name: Type.String() }), { description: "The teams above it, top-level first" }),
});
export const TeamPage = Page(Team);

/**
 * A tree node, spelled out level by level down to MAX_TEAM_DEPTH instead of a recursive $ref: the serializer compiles
 * it to straight-line code and the OpenAPI document needs no shared component.
 */
function treeNode(levels: number): TSchema {
  const children = levels > 1 ? Type.Array(treeNode(levels - 1)) : Type.Array(Type.Unknown());
  return Type.Object({ id: Type.String({ description: "team_… id" }), name: Type.String(), children });
}
export const TeamTree = Type.Object({
  items: Type.Array(treeNode(MAX_TEAM_DEPTH), { description: "The top-level teams, each with its sub-teams nested in children, by name" }),
  total: Type.Integer({ description: "How many teams the organization has" }),
});

export const TeamMember = Type.Object({
  user_id: Type.String({ description: "usr_… id" }),
  name: Type.String(),
  email: Type.String(),
  role: TeamRole,
  added_at: Timestamp("When the user joined the team"),
});
export const TeamMemberPage = Page(TeamMember);

export interface TeamRow {
  id: string;
  name: string;
  description: string | null;
  parent_id: string | null;
  path: string[];
  created_by: string | null;
  created_at: string;
  updated_at: string;
}
export interface TeamDetailRow extends TeamRow {
  member_count: number;
  ancestors: { id: string; name: string }[];
}
export interface TeamNode {
  id: string;
  name: string;
  children: TeamNode[];
}
export interface TeamMemberRow {
  user_id: string;
  name: string;
  email: string;
  role: "maintainer" | "member";
  added_at: string;
}
