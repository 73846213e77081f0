import { equalBytes } from "@noble/ciphers/utils.js";
import { x25519 } from "@noble/curves/ed25519.js";
import { ZkError } from "./zk.errors.ts";
import { type KdfParams, newKdfParams, passphraseKey } from "./zk.kdf.ts";
import { aad, fromB64, type KeyPair, newKeyPair, open, packSealed, seal, toB64, unpackSealed } from "./zk.primitives.ts";

/**
 * A member's zero-knowledge key pair (X25519): the public part is published so others can seal shares and vault keys
 * to them; the private part is stored only under the member's passphrase (Argon2id, its own salt).
 */
export interface UserKeyRecord {
  public_key: string;
  encrypted_private_key: string;
  kdf: KdfParams;
}

const userKeyAad = (orgId: string, userId: string) => aad("user-key", orgId, userId);

export async function createUserKey(passphrase: string, owner: { orgId: string; userId: string }): Promise<{ record: UserKeyRecord; keys: KeyPair }> {
  const keys = newKeyPair();
  const kdf = newKdfParams();
  const kek = await passphraseKey(passphrase, kdf);
  const encrypted = packSealed(seal(kek, keys.privateKey, userKeyAad(owner.orgId, owner.userId)));
  return { keys, record: { public_key: toB64(keys.publicKey), encrypted_private_key: encrypted, kdf } };
}

/** The key pair, checked against the published public key (a swapped public key is refused, not trusted). */
export async function unlockUserKey(record: UserKeyRecord, passphrase: string, owner: { orgId: string; userId: string }): Promise<KeyPair> {
  const kek = await passphraseKey(passphrase, record.kdf);
  const failure = () => new ZkError("ZK_WRONG_PASSPHRASE", "Wrong passphrase for your zero-knowledge key.");
  const privateKey = open(kek, unpackSealed(record.encrypted_private_key, "encrypted_private_key"), userKeyAad(owner.orgId, owner.userId), failure);
  const publicKey = x25519.getPublicKey(privateKey);
  if (!equalBytes(publicKey, fromB64(record.public_key, "public_key", 32))) {
    throw new ZkError("ZK_DECRYPT_FAILED", "Your stored public key does not match your private key: the record was altered.");
  }
  return { privateKey, publicKey };
}
