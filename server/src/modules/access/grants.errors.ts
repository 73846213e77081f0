import { defineErrors } from "../../lib/errors.ts";

export const grantsError = defineErrors({
  GRANT_NOT_FOUND: 404,
  GRANT_EXISTS: 409,
  GRANT_REQUEST_NOT_FOUND: 404,
  GRANT_REQUEST_DECIDED: 409,
  GRANT_REQUEST_EXPIRED: 409,
  REQUESTER_NOT_MEMBER: 409,
});
