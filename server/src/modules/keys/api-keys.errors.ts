import { defineErrors } from "../../lib/errors.ts";

/** Error codes of API keys: using one (401/403/429 at the edge) and managing them. */
export const apiKeysError = defineErrors({
  /** The presented key is malformed, fails its checksum, is unknown, revoked, expired, not yet valid or rotated out: `reason` says which. */
  INVALID_API_KEY: 401,
  /** The key has an IP allowlist and the caller's address is not on it. */
  IP_NOT_ALLOWED: 403,
  /** Only an owner or admin (a signed-in user, not a key) may create a key that inherits its owner's permissions. */
  INHERIT_NOT_ALLOWED: 403,
  API_KEY_NOT_FOUND: 404,
  /** Keys belong to a person for now: a service account's token cannot create one (service-account keys come later). */
  KEY_OWNER_NOT_A_USER: 403,
  /** The owner already has a live key of that name. */
  API_KEY_NAME_TAKEN: 409,
  /** Several owners have a live key of that name: name it by its key_… id. */
  API_KEY_NAME_AMBIGUOUS: 409,
  /** A revoked key cannot be changed or rotated. */
  API_KEY_REVOKED: 409,
  /** An inheriting key acts with its owner's permissions and has no roles of its own. */
  API_KEY_INHERITS: 409,
});

/** Why a presented key was refused (the problem's `reason`). */
export type KeyRefusal = "malformed" | "bad_checksum" | "unknown" | "revoked" | "expired" | "not_yet_valid" | "rotated";
