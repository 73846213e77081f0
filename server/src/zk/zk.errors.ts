/**
 * Every failure of the zero-knowledge client library is a ZkError with a stable code and a sentence a person can act
 * on. A wrong passphrase, phrase, key or share never yields a key: it throws one of these.
 */
export type ZkErrorCode =
  | "ZK_INVALID_INPUT"
  | "ZK_PASSPHRASE_TOO_SHORT"
  | "ZK_KDF_PARAMS_INVALID"
  | "ZK_WRONG_PASSPHRASE"
  | "ZK_DECRYPT_FAILED"
  | "ZK_RECOVERY_PHRASE_INVALID"
  | "ZK_RECOVERY_PHRASE_WRONG"
  | "ZK_HARDWARE_KEY_INVALID"
  | "ZK_HARDWARE_KEY_WRONG"
  | "ZK_SHARES_TOO_FEW"
  | "ZK_SHARE_UNREADABLE"
  | "ZK_SHARES_INVALID";

export class ZkError extends Error {
  readonly code: ZkErrorCode;
  constructor(code: ZkErrorCode, message: string) {
    super(message);
    this.name = "ZkError";
    this.code = code;
  }
}
