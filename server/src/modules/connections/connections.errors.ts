import { defineErrors } from "../../lib/errors.ts";

/** Error codes of integration connections (an invalid field is the platform's VALIDATION_FAILED, naming it). */
export const connectionsError = defineErrors({
  CONNECTION_NOT_FOUND: 404,
  /** The connection was revoked: its token set is deleted; create a new connection. */
  CONNECTION_REVOKED: 409,
  /** The provider refused the refresh token (invalid_grant and the like): the integration must be connected again. */
  CONNECTION_REFRESH_FAILED: 409,
  /** Another refresh of this connection is under way and the current access token has expired: retry shortly. */
  CONNECTION_REFRESH_BUSY: 409,
  /** The token endpoint could not be reached or answered out of the protocol: nothing changed; retry later. */
  CONNECTION_PROVIDER_UNAVAILABLE: 502,
});
