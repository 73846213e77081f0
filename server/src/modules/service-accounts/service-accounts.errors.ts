import { defineErrors } from "../../lib/errors.ts";

/** Error codes of service accounts and their OAuth clients (the token endpoint answers in RFC 6749's format instead). */
export const serviceAccountsError = defineErrors({
  SERVICE_ACCOUNT_NOT_FOUND: 404,
  OAUTH_CLIENT_NOT_FOUND: 404,
  /** Another service account of the org has that name. */
  SERVICE_ACCOUNT_NAME_TAKEN: 409,
  /** A disabled account gets no new credentials; enable it first. */
  SERVICE_ACCOUNT_DISABLED: 409,
});
