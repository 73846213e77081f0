import { defineErrors } from "../../lib/errors.ts";

/** Error codes of teams and team membership. */
export const teamsError = defineErrors({
  TEAM_NOT_FOUND: 404,
  /** The named parent (parent_id) is not a team of this organization. */
  TEAM_PARENT_NOT_FOUND: 400,
  /** The team (or, on a move, its deepest descendant) would sit deeper than MAX_TEAM_DEPTH. */
  TEAM_TOO_DEEP: 400,
  TEAM_NAME_TAKEN: 409,
  /** A team cannot move under itself or one of its own descendants. */
  TEAM_CYCLE: 409,
  TEAM_HAS_CHILDREN: 409,
  /** The user of a team membership change is not a member of the organization. */
  USER_NOT_ORG_MEMBER: 404,
  TEAM_MEMBER_NOT_FOUND: 404,
});

/** Teams nest at most this deep: a root team is depth 1. */
export const MAX_TEAM_DEPTH = 10;
