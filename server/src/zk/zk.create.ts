import { checkPassphrase, type KdfParams } from "./zk.kdf.ts";
import { newHardwareKey, newRecoveryPhrase, wrapWithHardwareKey, wrapWithPhrase } from "./zk.recovery.ts";
import { keyCheck, newVaultKey, wrapWithPassphrase } from "./zk.vault.ts";

/**
 * Everything a new vault stores on the server: wrapped keys and parameters, nothing that decrypts them. The server
 * assigns the vault's id; the shares, bound to that id, follow in a second request (`splitToHolders`).
 */
export interface VaultMaterial {
  key_version: number;
  kdf: KdfParams;
  passphrase_wrapped_key: string;
  recovery_phrase_wrapped_key: string;
  hardware_wrapped_key: string;
  key_check: string;
}

/**
 * A new vault: a random vault key wrapped under the passphrase, and a fresh recovery phrase and hardware key (shown
 * to the person once, never stored) each wrapping a copy of it.
 */
export async function createVaultMaterial(opts: { passphrase: string }) {
  checkPassphrase(opts.passphrase);
  const vaultKey = newVaultKey();
  const recoveryPhrase = newRecoveryPhrase();
  const hardwareKey = newHardwareKey();
  const material: VaultMaterial = {
    key_version: 1,
    ...(await wrapWithPassphrase(vaultKey, 1, opts.passphrase)),
    recovery_phrase_wrapped_key: wrapWithPhrase(vaultKey, 1, recoveryPhrase),
    hardware_wrapped_key: wrapWithHardwareKey(vaultKey, 1, hardwareKey),
    key_check: keyCheck(vaultKey, 1),
  };
  return { material, vaultKey, recoveryPhrase, hardwareKey };
}
