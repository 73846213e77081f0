import { defineErrors } from "../lib/errors.ts";

/**
 * Faults of the KMS layer. None is the caller's doing (bad input never reaches it): they mean the stored keys or
 * ciphertexts are not what was written, or the server runs with another root key than the one that wrote them.
 */
export const kmsError = defineErrors({
  /** The org's key-encryption key was wrapped under another root key: PLINTH_MASTER_KEY (or the key file) changed. */
  KMS_ROOT_KEY_MISMATCH: 500,
  /** A stored key or ciphertext does not authenticate under its identity: altered, or moved to another record. */
  KMS_DECRYPT_FAILED: 500,
  /** A ciphertext names a key-encryption key version the org does not have. */
  KMS_KEY_MISSING: 500,
});
