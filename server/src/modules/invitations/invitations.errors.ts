import { defineErrors } from "../../lib/errors.ts";

/** Invitation codes. EMAIL_TAKEN is identity's code, with the same status: an account already has the address. */
export const invitationError = defineErrors({
  INVITATION_NOT_FOUND: 404,
  INVITATION_INVALID: 400,
  INVITATION_USED: 409,
  INVITATION_EXPIRED: 410,
  INVITATION_REVOKED: 410,
  INVITATION_PENDING: 409,
  INVITATION_ROLE_GONE: 409,
  INVITATION_EMAIL_MISMATCH: 403,
  EMAIL_NOT_VERIFIED: 403,
  ALREADY_MEMBER: 409,
  ROLE_ABOVE_OWN: 403,
  EMAIL_TAKEN: 409,
});
