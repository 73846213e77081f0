import { defineErrors } from "../../lib/errors.ts";

/** Error codes of the secrets vault (the KMS layer's own faults are in kms/kms.errors.ts). */
export const vaultError = defineErrors({
  SECRET_NOT_FOUND: 404,
  SECRET_VERSION_NOT_FOUND: 404,
  /** Another secret of the same scope has that name. */
  SECRET_NAME_TAKEN: 409,
  /** If-Match (or the body's version) names a version other than the current one: reload and retry. */
  SECRET_VERSION_CONFLICT: 409,
  /** The secret is past its expires_at: its value is no longer served. */
  SECRET_EXPIRED: 410,
  /** The secret is an integration connection's token set: it changes and is used only through /connections. */
  SECRET_KIND_MANAGED: 409,
  /** A resolve would serve more secrets than one answer carries (resolve.service.ts MAX_RESOLVED): narrow it. */
  RESOLVE_TOO_LARGE: 422,
});
