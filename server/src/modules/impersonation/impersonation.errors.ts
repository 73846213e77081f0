import { defineErrors } from "../../lib/errors.ts";

/** Error codes of impersonation: starting, ending and listing impersonations. */
export const impersonationError = defineErrors({
  /** Only platform admins, and owners of an org that allows it (`owner_impersonation`), impersonate; an owner only in that org. */
  IMPERSONATION_NOT_ALLOWED: 403,
  /** Platform admins cannot be impersonated. */
  CANNOT_IMPERSONATE_ADMIN: 403,
  CANNOT_IMPERSONATE_SELF: 400,
  /** No such user that the caller may impersonate (or not a member of the org named). */
  USER_NOT_FOUND: 404,
  /** No such impersonation by or of the caller. */
  IMPERSONATION_NOT_FOUND: 404,
  IMPERSONATION_ENDED: 409,
});
