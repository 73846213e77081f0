import { ZkError } from "./zk.errors.ts";
import { checkPassphrase } from "./zk.kdf.ts";
import { aad, fromB64, type KeyPair, openSealedBox, sealTo, toB64 } from "./zk.primitives.ts";
import { newHardwareKey, newRecoveryPhrase, type SealedShare, type ShareHolder, splitToHolders, wrapWithHardwareKey, wrapWithPhrase } from "./zk.recovery.ts";
import { decryptEntry, type EncryptedEntry, encryptEntry, isVaultKey, keyCheck, newVaultKey, type VaultHeader, wrapWithPassphrase } from "./zk.vault.ts";

/**
 * Shared vaults: each member holds the vault key sealed to their own X25519 key pair. Adding a member seals the
 * current key to them; removing one rotates — a new vault key (and key version), every entry re-encrypted and every
 * remaining member's copy re-sealed by the owner's client, uploaded in one request — so the removed member's copy
 * opens nothing written after.
 */

const memberAad = (vaultId: string, keyVersion: number, userId: string) => aad("member", vaultId, keyVersion, userId);

export function sealVaultKeyTo(vaultKey: Uint8Array, vaultId: string, keyVersion: number, member: ShareHolder): string {
  return toB64(sealTo(fromB64(member.publicKey, `public key of ${member.userId}`, 32), vaultKey, memberAad(vaultId, keyVersion, member.userId)));
}

/** A member's copy of the vault key, checked against the vault's key check. */
export function openSharedVaultKey(
  member: KeyPair & { userId: string },
  vault: Pick<VaultHeader, "key_version" | "key_check"> & { id: string },
  sealedKey: string,
): Uint8Array {
  const failure = () =>
    new ZkError("ZK_DECRYPT_FAILED", "Your copy of this vault's key does not open with your key: it was sealed to another key, or altered.");
  const key = openSealedBox(member, fromB64(sealedKey, "sealed_key"), memberAad(vault.id, vault.key_version, member.userId), failure);
  if (!isVaultKey(key, vault)) throw failure();
  return key;
}

/**
 * Everything a rotation uploads: the next key version, its wraps (under the passphrase, and under a NEW recovery
 * phrase and hardware key, shown once again: the old ones open only the old key), the entries re-encrypted, the
 * remaining members' copies and, given holders, new shares. Entries are decrypted with the old key first, so one
 * that does not decrypt stops the rotation before anything is sent.
 */
export async function prepareRotation(opts: {
  vault: Pick<VaultHeader, "key_version" | "key_check"> & { id: string };
  oldKey: Uint8Array;
  passphrase: string;
  entries: (EncryptedEntry & { name: string; key_version: number })[];
  members: ShareHolder[];
  holders?: ShareHolder[];
  threshold?: number;
}) {
  checkPassphrase(opts.passphrase);
  if (!isVaultKey(opts.oldKey, opts.vault)) throw new ZkError("ZK_DECRYPT_FAILED", "The key given is not this vault's current key.");
  const { id } = opts.vault;
  const next = opts.vault.key_version + 1;
  const vaultKey = newVaultKey();
  const recoveryPhrase = newRecoveryPhrase();
  const hardwareKey = newHardwareKey();
  const entries = opts.entries.map((e) => {
    const value = decryptEntry(opts.oldKey, { vaultId: id, name: e.name, keyVersion: e.key_version }, e);
    return { name: e.name, ...encryptEntry(vaultKey, { vaultId: id, name: e.name, keyVersion: next }, value) };
  });
  let shares: { threshold: number; shares: SealedShare[] } | undefined;
  if (opts.holders?.length) {
    const threshold = opts.threshold ?? 3;
    shares = { threshold, shares: await splitToHolders(vaultKey, id, next, opts.holders, threshold) };
  }
  const body = {
    key_version: next,
    ...(await wrapWithPassphrase(vaultKey, next, opts.passphrase)),
    recovery_phrase_wrapped_key: wrapWithPhrase(vaultKey, next, recoveryPhrase),
    hardware_wrapped_key: wrapWithHardwareKey(vaultKey, next, hardwareKey),
    key_check: keyCheck(vaultKey, next),
    entries,
    members: opts.members.map((m) => ({ user_id: m.userId, sealed_key: sealVaultKeyTo(vaultKey, id, next, m) })),
    ...(shares ? { shares } : {}),
  };
  return { body, vaultKey, recoveryPhrase, hardwareKey };
}
