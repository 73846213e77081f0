import { defineErrors } from "../../lib/errors.ts";

/** Error codes of the service key registry (a refused service token is the platform's INVALID_TOKEN, with a reason). */
export const serviceKeysError = defineErrors({
  SERVICE_KEY_NOT_FOUND: 404,
  /** Some registration (of any organization, live or revoked) already has that kid: kids are never reused. */
  SERVICE_KEY_KID_TAKEN: 409,
  /** A revoked registration cannot be changed. */
  SERVICE_KEY_REVOKED: 409,
  /** The platform-wide registry is for platform admins (users.is_platform_admin), signed in as themselves. */
  PLATFORM_ADMIN_REQUIRED: 403,
});
