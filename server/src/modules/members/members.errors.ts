import { defineErrors } from "../../lib/errors.ts";

/** Error codes of members and custom roles. */
export const membersError = defineErrors({
  MEMBER_NOT_FOUND: 404,
  ROLE_NOT_FOUND: 404,
  CANNOT_CHANGE_OWN_ROLE: 403,
  OWNER_ONLY: 403,
  /** Assigning (or touching a member holding) a role with a permission the caller lacks. */
  ROLE_ABOVE_OWN: 403,
  /** Putting into a custom role a permission the caller lacks. */
  PERMISSION_NOT_HELD: 403,
  LAST_OWNER: 409,
  ROLE_NAME_TAKEN: 409,
  ROLE_IN_USE: 409,
  TOO_MANY_ROLES: 409,
});
