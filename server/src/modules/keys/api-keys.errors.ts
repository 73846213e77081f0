import { defineErrors } from "../../lib/errors.ts";

/** Error codes of API keys: using one (401/403/429 at the edge) and managing them. */
export const apiKeysError = defineErrors({
  /** The presented key is malformed, fails its checksum, is unknown, revoked, expired, not yet valid or rotated out: `reason` says which. */
  INVALID_API_KEY: 401,
  /** The key has an IP allowlist and the caller's address is not on it. */
  IP_NOT_ALLOWED: 403,
  /**
   * Only a signed-in user (not a key or token) may create a key that inherits its owner's permissions: for their own
   * key an owner or admin; for a service account's, one holding all the account holds.
   */
  INHERIT_NOT_ALLOWED: 403,
  API_KEY_NOT_FOUND: 404,
  /** Keys are owned by members and service accounts: another kind of caller (a registered service) cannot make one. */
  KEY_OWNER_UNSUPPORTED: 403,
  /** The owner already has a live key of that name. */
  API_KEY_NAME_TAKEN: 409,
  /** Several owners have a live key of that name: name it by its key_… id. */
  API_KEY_NAME_AMBIGUOUS: 409,
  /** A revoked key cannot be changed or rotated. */
  API_KEY_REVOKED: 409,
  /** The key's roles, permissions or owner changed while it was being rotated: try again. */
  API_KEY_CHANGED: 409,
  /** An inheriting key acts with its owner's permissions and has no roles of its own. */
  API_KEY_INHERITS: 409,
});

/** Why a presented key was refused (the problem's `reason`). */
export type KeyRefusal = "malformed" | "bad_checksum" | "unknown" | "revoked" | "expired" | "not_yet_valid" | "rotated";
