import { defineErrors } from "../../lib/errors.ts";

/** Error codes of the zero-knowledge vaults (the client library's own are ZkError codes in server/src/zk/). */
export const zkError = defineErrors({
  /** No such vault of yours in this organization (another member's vault does not exist for you). */
  ZK_VAULT_NOT_FOUND: 404,
  ZK_ENTRY_NOT_FOUND: 404,
  /** No such member with a published zero-knowledge key in this organization. */
  ZK_KEY_NOT_FOUND: 404,
  /** No such share held by you. */
  ZK_SHARE_NOT_FOUND: 404,
  /** No such recovery request of your vault. */
  ZK_RECOVERY_REQUEST_NOT_FOUND: 404,
  /** The vault already has an entry of that name: update it with PUT (and If-Match). */
  ZK_ENTRY_EXISTS: 409,
  /** If-Match (or the body's version) names a version other than the entry's current one. */
  ZK_ENTRY_VERSION_CONFLICT: 409,
  /** Recovery by shares needs shares: set them first (PUT …/shares). */
  ZK_VAULT_HAS_NO_SHARES: 409,
  /** A rotation names a key version other than the next, or the vault's entries changed since the client read them. */
  ZK_ROTATION_STALE: 409,
  /** The share was already released for this request. */
  ZK_SHARE_ALREADY_RELEASED: 409,
  /** The recovery request was completed or cancelled: no more releases. */
  ZK_RECOVERY_REQUEST_CLOSED: 410,
});
