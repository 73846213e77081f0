import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { wordlist } from "@scure/bip39/wordlists/english.js";
import { split } from "shamir-secret-sharing";
import {
  createUserKey,
  createVaultMaterial,
  decryptEntry,
  encryptEntry,
  fromB64,
  HARDWARE_KEY_CHARS,
  isVaultKey,
  keyCheck,
  newKdfParams,
  newKeyPair,
  newRecoveryPhrase,
  OWASP_ARGON2ID,
  parseHardwareKey,
  passphraseKey,
  recoverFromShares,
  recoverWithHardwareKey,
  recoverWithPhrase,
  releaseShare,
  sealTo,
  splitToHolders,
  toB64,
  unlockUserKey,
  unlockWithPassphrase,
  type ReleasedShare,
  type SealedShare,
  type ZkErrorCode,
  unwrapVaultKey,
  wrapWithPassphrase,
  aad,
  openSealedBox,
  openSharedVaultKey,
  prepareRotation,
  sealVaultKeyTo,
  ZkError,
} from "./index.ts";

const PASS = "correct horse battery staple";
const ORG = "org_01hzzzzzzzzzzzzzzzzzzzzzzz";

function rejectsWith(code: ZkErrorCode, pattern?: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof ZkError, `expected a ZkError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (pattern) assert.match(e.message, pattern);
    return true;
  };
}

/** Flips one bit of a Base64 value (a byte at `at`, counted from the end when negative). */
function flip(b64: string, at = -1): string {
  const bytes = fromB64(b64, "x").slice();
  bytes[at < 0 ? bytes.length + at : at] ^= 1;
  return toB64(bytes);
}

let vaultSeq = 0;
/** A vault id as the server assigns them (the library never makes one). */
const vaultId = () => `zkv_test${String(++vaultSeq).padStart(22, "0")}`;

/** Five members with key pairs, and a vault shared 3-of-5 among them. */
async function socialVault() {
  const members = Array.from({ length: 5 }, (_, i) => ({ userId: `usr_member${i}`, keys: newKeyPair() }));
  const holders = members.map((m) => ({ userId: m.userId, publicKey: toB64(m.keys.publicKey) }));
  const created = await createVaultMaterial({ passphrase: PASS });
  const id = vaultId();
  const shares = await splitToHolders(created.vaultKey, id, 1, holders);
  const vault = { ...created.material, id, share_threshold: 3 };
  const requester = newKeyPair();
  const request = { id: "zkr_request1", public_key: toB64(requester.publicKey) };
  const release = (i: number, share: SealedShare = shares[i]): ReleasedShare => ({
    index: share.index,
    sealed_share: releaseShare(members[i].keys, vault, share, request),
  });
  return { ...created, vault, shares, members, requester, request, release };
}

describe("zk: passphrase and vault key", () => {
  it("derives with Argon2id at OWASP parameters and a 16-byte per-vault salt", async () => {
    const a = newKdfParams();
    const b = newKdfParams();
    assert.deepEqual({ m: a.memory_kib, t: a.iterations, p: a.parallelism }, { m: OWASP_ARGON2ID.memory_kib, t: 2, p: 1 });
    assert.equal(a.memory_kib, 19456);
    assert.equal(fromB64(a.salt, "salt").length, 16);
    assert.notEqual(a.salt, b.salt);
    const k1 = await passphraseKey(PASS, a);
    assert.equal(k1.length, 32);
    assert.deepEqual(await passphraseKey(PASS, a), k1);
    assert.notDeepEqual(await passphraseKey(PASS, b), k1);
  });

  it("refuses short passphrases and out-of-bounds or foreign KDF parameters", async () => {
    await assert.rejects(passphraseKey("short", newKdfParams()), rejectsWith("ZK_PASSPHRASE_TOO_SHORT"));
    const p = newKdfParams();
    await assert.rejects(passphraseKey(PASS, { ...p, memory_kib: 8 }), rejectsWith("ZK_KDF_PARAMS_INVALID", /memory_kib/));
    await assert.rejects(passphraseKey(PASS, { ...p, memory_kib: 4_000_000 }), rejectsWith("ZK_KDF_PARAMS_INVALID", /memory_kib/));
    await assert.rejects(passphraseKey(PASS, { ...p, iterations: 1 }), rejectsWith("ZK_KDF_PARAMS_INVALID", /iterations/));
    await assert.rejects(passphraseKey(PASS, { ...p, salt: toB64(new Uint8Array(8)) }), rejectsWith("ZK_KDF_PARAMS_INVALID", /salt/));
    await assert.rejects(passphraseKey(PASS, { ...p, algorithm: "scrypt" as "argon2id" }), rejectsWith("ZK_KDF_PARAMS_INVALID", /Argon2id/));
  });

  it("wraps a random 32-byte vault key; the passphrase unlocks it and a wrong one fails clearly", async () => {
    const { material, vaultKey } = await createVaultMaterial({ passphrase: PASS });
    assert.equal(vaultKey.length, 32);
    assert.deepEqual(await unlockWithPassphrase(material, PASS), vaultKey);
    await assert.rejects(unlockWithPassphrase(material, "not the passphrase"), rejectsWith("ZK_WRONG_PASSPHRASE"));
    // a flipped bit in the wrap, or the wrap of another vault, fails the same way
    await assert.rejects(
      unlockWithPassphrase({ ...material, passphrase_wrapped_key: flip(material.passphrase_wrapped_key) }, PASS),
      rejectsWith("ZK_WRONG_PASSPHRASE"),
    );
    const other = await createVaultMaterial({ passphrase: PASS });
    await assert.rejects(
      unlockWithPassphrase({ ...material, passphrase_wrapped_key: other.material.passphrase_wrapped_key, kdf: other.material.kdf }, PASS),
      rejectsWith("ZK_WRONG_PASSPHRASE"),
    );
    // the key check tells the right key from another
    assert.ok(isVaultKey(vaultKey, material));
    assert.ok(!isVaultKey(other.vaultKey, material));
  });

  it("re-wraps under a new passphrase (after a recovery): the new one opens it, the old wrap is independent", async () => {
    const { material, vaultKey } = await createVaultMaterial({ passphrase: PASS });
    const next = await wrapWithPassphrase(vaultKey, 1, "a brand new passphrase");
    assert.notEqual(next.kdf.salt, material.kdf.salt);
    assert.deepEqual(await unlockWithPassphrase({ ...material, ...next }, "a brand new passphrase"), vaultKey);
    await assert.rejects(unlockWithPassphrase({ ...material, ...next }, PASS), rejectsWith("ZK_WRONG_PASSPHRASE"));
  });

  it("a wrap is bound to its purpose: the passphrase wrap is not accepted as another kind", async () => {
    const { material } = await createVaultMaterial({ passphrase: PASS });
    const kek = await passphraseKey(PASS, material.kdf);
    const fail = () => new ZkError("ZK_DECRYPT_FAILED", "no");
    assert.throws(() => unwrapVaultKey(kek, material.passphrase_wrapped_key, material, "hardware-key", fail), rejectsWith("ZK_DECRYPT_FAILED"));
    assert.throws(
      () => unwrapVaultKey(kek, material.passphrase_wrapped_key, { ...material, key_version: 2 }, "passphrase", fail),
      rejectsWith("ZK_DECRYPT_FAILED"),
    );
  });

  it("another vault's recovery wraps, moved into this one, open to a key the key check refuses", async () => {
    const a = await createVaultMaterial({ passphrase: PASS });
    const b = await createVaultMaterial({ passphrase: PASS });
    assert.throws(() => recoverWithPhrase(a.material, b.material.recovery_phrase_wrapped_key, b.recoveryPhrase), rejectsWith("ZK_RECOVERY_PHRASE_WRONG"));
    assert.throws(() => recoverWithHardwareKey(a.material, b.material.hardware_wrapped_key, b.hardwareKey), rejectsWith("ZK_HARDWARE_KEY_WRONG"));
  });
});

describe("zk: entries", () => {
  it("encrypts with XChaCha20-Poly1305 and a fresh 24-byte nonce; decrypts back", async () => {
    const { vaultKey } = await createVaultMaterial({ passphrase: PASS });
    const place = { vaultId: vaultId(), name: "OPENAI_API_KEY", keyVersion: 1 };
    const a = encryptEntry(vaultKey, place, "sk-secret ünïcode");
    const b = encryptEntry(vaultKey, place, "sk-secret ünïcode");
    assert.equal(fromB64(a.nonce, "n").length, 24);
    assert.notEqual(a.nonce, b.nonce);
    assert.notEqual(a.ciphertext, b.ciphertext);
    assert.equal(decryptEntry(vaultKey, place, a), "sk-secret ünïcode");
  });

  it("a moved, renamed, re-versioned, tampered or wrongly keyed ciphertext fails", async () => {
    const { vaultKey } = await createVaultMaterial({ passphrase: PASS });
    const place = { vaultId: vaultId(), name: "TOKEN", keyVersion: 1 };
    const e = encryptEntry(vaultKey, place, "value");
    const fails = (p: typeof place, entry = e, key = vaultKey) =>
      assert.throws(() => decryptEntry(key, p, entry), rejectsWith("ZK_DECRYPT_FAILED", /TOKEN|OTHER/));
    fails({ ...place, vaultId: vaultId() });
    fails({ ...place, name: "OTHER" });
    fails({ ...place, keyVersion: 2 });
    fails(place, { ...e, ciphertext: flip(e.ciphertext, 0) });
    fails(place, { ...e, ciphertext: flip(e.ciphertext) });
    fails(place, { ...e, nonce: flip(e.nonce) });
    fails(place, e, new Uint8Array(32));
    assert.throws(() => decryptEntry(vaultKey, place, { ...e, nonce: toB64(new Uint8Array(12)) }), rejectsWith("ZK_DECRYPT_FAILED"));
    assert.throws(() => decryptEntry(vaultKey, place, { ...e, nonce: "%%%" }), rejectsWith("ZK_INVALID_INPUT", /nonce/));
  });
});

describe("zk: recovery phrase", () => {
  it("is 12 BIP39 English words that recover the vault key, whatever the case and spacing", async () => {
    const { material, vaultKey, recoveryPhrase } = await createVaultMaterial({ passphrase: PASS });
    const words = recoveryPhrase.split(" ");
    assert.equal(words.length, 12);
    for (const w of words) assert.ok(wordlist.includes(w));
    assert.deepEqual(recoverWithPhrase(material, material.recovery_phrase_wrapped_key, recoveryPhrase), vaultKey);
    assert.deepEqual(recoverWithPhrase(material, material.recovery_phrase_wrapped_key, `  ${recoveryPhrase.toUpperCase().replaceAll(" ", "\n ")} `), vaultKey);
  });

  it("a valid phrase of another vault, a bad checksum, a foreign word or the wrong count each fail clearly", async () => {
    const { material, recoveryPhrase } = await createVaultMaterial({ passphrase: PASS });
    const wrapped = material.recovery_phrase_wrapped_key;
    assert.throws(() => recoverWithPhrase(material, wrapped, newRecoveryPhrase()), rejectsWith("ZK_RECOVERY_PHRASE_WRONG", /not this vault's/));
    const words = recoveryPhrase.split(" ");
    // swapping two distinct words almost always breaks the 4-bit checksum; pick a swap that does
    let bad = "";
    for (let i = 1; i < 12 && !bad; i++) {
      const w = [...words];
      [w[0], w[i]] = [w[i], w[0]];
      if (w[0] === words[0]) continue;
      try {
        recoverWithPhrase(material, wrapped, w.join(" "));
      } catch (e) {
        if ((e as ZkError).code === "ZK_RECOVERY_PHRASE_INVALID") bad = w.join(" ");
      }
    }
    assert.ok(bad, "a word swap that breaks the checksum");
    assert.throws(() => recoverWithPhrase(material, wrapped, bad), rejectsWith("ZK_RECOVERY_PHRASE_INVALID", /checksum/));
    assert.throws(
      () => recoverWithPhrase(material, wrapped, [...words.slice(0, 11), "notaword"].join(" ")),
      rejectsWith("ZK_RECOVERY_PHRASE_INVALID", /word 12/),
    );
    assert.throws(() => recoverWithPhrase(material, wrapped, words.slice(0, 11).join(" ")), rejectsWith("ZK_RECOVERY_PHRASE_INVALID", /11 words/));
    assert.throws(() => recoverWithPhrase(material, flip(wrapped), recoveryPhrase), rejectsWith("ZK_RECOVERY_PHRASE_WRONG"));
  });
});

describe("zk: hardware backup key", () => {
  it("is 20 random bytes as 32 Base32 characters (no padding) that recover the vault key, in groups or lower case", async () => {
    const { material, vaultKey, hardwareKey } = await createVaultMaterial({ passphrase: PASS });
    assert.equal(HARDWARE_KEY_CHARS, 32);
    assert.match(hardwareKey, /^[A-Z2-7]{32}$/);
    assert.ok(hardwareKey.length <= 38, "fits a YubiKey static password");
    assert.equal(parseHardwareKey(hardwareKey).length, 20);
    assert.deepEqual(recoverWithHardwareKey(material, material.hardware_wrapped_key, hardwareKey), vaultKey);
    const grouped = hardwareKey.toLowerCase().match(/.{4}/g)?.join("-") ?? "";
    assert.deepEqual(recoverWithHardwareKey(material, material.hardware_wrapped_key, grouped), vaultKey);
  });

  it("another vault's key, a malformed key or a tampered wrap fail clearly", async () => {
    const a = await createVaultMaterial({ passphrase: PASS });
    const b = await createVaultMaterial({ passphrase: PASS });
    const wrapped = a.material.hardware_wrapped_key;
    assert.throws(() => recoverWithHardwareKey(a.material, wrapped, b.hardwareKey), rejectsWith("ZK_HARDWARE_KEY_WRONG"));
    assert.throws(() => recoverWithHardwareKey(a.material, wrapped, a.hardwareKey.slice(1)), rejectsWith("ZK_HARDWARE_KEY_INVALID", /32/));
    assert.throws(() => recoverWithHardwareKey(a.material, wrapped, `${a.hardwareKey.slice(1)}1`), rejectsWith("ZK_HARDWARE_KEY_INVALID"));
    assert.throws(() => recoverWithHardwareKey(a.material, flip(wrapped), a.hardwareKey), rejectsWith("ZK_HARDWARE_KEY_WRONG"));
  });
});

describe("zk: Shamir social recovery (3 of 5)", () => {
  it("splits into 5 shares sealed to their holders; any 3 released to the requester rebuild the key", async () => {
    const s = await socialVault();
    assert.equal(s.shares.length, 5);
    assert.deepEqual(
      s.shares.map((x) => x.index),
      [1, 2, 3, 4, 5],
    );
    for (const pick of [
      [0, 1, 2],
      [2, 3, 4],
      [0, 2, 4],
    ]) {
      assert.deepEqual(
        await recoverFromShares(
          s.vault,
          s.requester,
          s.request.id,
          pick.map((i) => s.release(i)),
        ),
        s.vaultKey,
      );
    }
    // four, one of them corrupted: the bad one is left out
    const corrupted = { ...s.release(3), sealed_share: "" };
    assert.deepEqual(await recoverFromShares(s.vault, s.requester, s.request.id, [s.release(0), s.release(1), corrupted, s.release(2)]), s.vaultKey);
  });

  it("two shares are too few", async () => {
    const s = await socialVault();
    await assert.rejects(
      recoverFromShares(s.vault, s.requester, s.request.id, [s.release(0), s.release(1)]),
      rejectsWith("ZK_SHARES_TOO_FEW", /needs 3 shares/),
    );
    // and combining two by hand gives a value the key check refuses
    const twoOfThree = await split(s.vaultKey, 5, 3);
    const { combine } = await import("shamir-secret-sharing");
    assert.ok(!isVaultKey(await combine(twoOfThree.slice(0, 2)), s.vault));
  });

  it("a share corrupted in transit does not open, and recovery names it", async () => {
    const s = await socialVault();
    const bad = s.release(2);
    await assert.rejects(
      recoverFromShares(s.vault, s.requester, s.request.id, [s.release(0), s.release(1), { ...bad, sealed_share: flip(bad.sealed_share, 40) }]),
      rejectsWith("ZK_SHARE_UNREADABLE", /Share\(s\) 3 did not open/),
    );
  });

  it("a well-sealed but wrong share (corrupted by its holder, or from another vault) is refused by the key check", async () => {
    const s = await socialVault();
    // a holder who seals garbage of the right size to the requester
    const garbage = new Uint8Array(33).fill(7);
    garbage[32] = 99;
    const forged = { index: 3, sealed_share: toB64(sealTo(s.requester.publicKey, garbage, aad("share-release", s.vault.id, 1, 3, s.request.id))) };
    await assert.rejects(
      recoverFromShares(s.vault, s.requester, s.request.id, [s.release(0), s.release(1), forged]),
      rejectsWith("ZK_SHARES_INVALID", /corrupted or belongs to another vault/),
    );
    // a share of another vault's key, sealed for this request
    const otherShares = await split(new Uint8Array(32).fill(1), 5, 3);
    const substituted = { index: 3, sealed_share: toB64(sealTo(s.requester.publicKey, otherShares[2], aad("share-release", s.vault.id, 1, 3, s.request.id))) };
    await assert.rejects(recoverFromShares(s.vault, s.requester, s.request.id, [s.release(0), s.release(1), substituted]), rejectsWith("ZK_SHARES_INVALID"));
  });

  it("a share moved from another vault, request or holder does not open", async () => {
    const s = await socialVault();
    const other = await socialVault();
    // the server hands a holder another vault's sealed share under this vault's name: the holder's open fails
    const moved = { ...s.shares[0], sealed_share: other.shares[0].sealed_share };
    assert.throws(() => releaseShare(other.members[0].keys, s.vault, moved, s.request), rejectsWith("ZK_SHARE_UNREADABLE"));
    // a share released for another request is not accepted in this one
    const elsewhere = releaseShare(s.members[2].keys, s.vault, s.shares[2], { ...s.request, id: "zkr_other" });
    await assert.rejects(
      recoverFromShares(s.vault, s.requester, s.request.id, [s.release(0), s.release(1), { index: 3, sealed_share: elsewhere }]),
      rejectsWith("ZK_SHARE_UNREADABLE", /3 did not open/),
    );
    // a holder cannot open someone else's share
    assert.throws(() => releaseShare(s.members[1].keys, s.vault, s.shares[0], s.request), rejectsWith("ZK_SHARE_UNREADABLE"));
    // nor a share of this vault presented as another index
    assert.throws(() => releaseShare(s.members[0].keys, s.vault, { ...s.shares[0], index: 2 }, s.request), rejectsWith("ZK_SHARE_UNREADABLE"));
    // released to a different key, the requester cannot read it
    const stranger = newKeyPair();
    await assert.rejects(recoverFromShares(s.vault, stranger, s.request.id, [s.release(0), s.release(1), s.release(2)]), rejectsWith("ZK_SHARE_UNREADABLE"));
  });

  it("refuses duplicate holders, too few holders and bad thresholds", async () => {
    const k = newKeyPair();
    const h = (userId: string) => ({ userId, publicKey: toB64(k.publicKey) });
    const key = new Uint8Array(32);
    await assert.rejects(splitToHolders(key, "zkv_x", 1, [h("a"), h("a"), h("b")]), rejectsWith("ZK_INVALID_INPUT", /different member/));
    await assert.rejects(splitToHolders(key, "zkv_x", 1, [h("a"), h("b")]), rejectsWith("ZK_INVALID_INPUT"));
    await assert.rejects(splitToHolders(key, "zkv_x", 1, [h("a"), h("b"), h("c")], 1), rejectsWith("ZK_INVALID_INPUT"));
    await assert.rejects(
      splitToHolders(key, "zkv_x", 1, [h("a"), h("b"), { userId: "c", publicKey: toB64(new Uint8Array(5)) }]),
      rejectsWith("ZK_INVALID_INPUT", /32 bytes/),
    );
    assert.notEqual(keyCheck(key, 1), keyCheck(key, 2));
  });
});

describe("zk: sealed box", () => {
  it("opens only with the recipient's private key and the same associated data", () => {
    const to = newKeyPair();
    const box = sealTo(to.publicKey, new Uint8Array([1, 2, 3]), aad("test", "a"));
    const fail = () => new ZkError("ZK_DECRYPT_FAILED", "no");
    assert.deepEqual([...openSealedBox(to, box, aad("test", "a"), fail)], [1, 2, 3]);
    assert.throws(() => openSealedBox(to, box, aad("test", "b"), fail), rejectsWith("ZK_DECRYPT_FAILED"));
    assert.throws(() => openSealedBox(newKeyPair(), box, aad("test", "a"), fail), rejectsWith("ZK_DECRYPT_FAILED"));
    assert.throws(() => openSealedBox(to, box.subarray(0, 50), aad("test", "a"), fail), rejectsWith("ZK_DECRYPT_FAILED"));
    // a fresh ephemeral key each time: the same plaintext never seals the same
    assert.notDeepEqual(sealTo(to.publicKey, new Uint8Array([1]), aad("t")), sealTo(to.publicKey, new Uint8Array([1]), aad("t")));
  });

  it("refuses low-order and malformed recipient keys rather than sealing to a known secret", () => {
    const one = new Uint8Array(32);
    one[0] = 1;
    for (const bad of [new Uint8Array(32), one]) assert.throws(() => sealTo(bad, new Uint8Array(1), aad("t")), rejectsWith("ZK_INVALID_INPUT", /not a usable/));
    assert.throws(() => sealTo(new Uint8Array(31), new Uint8Array(1), aad("t")), rejectsWith("ZK_INVALID_INPUT", /32 bytes/));
  });
});

describe("zk: shared vaults", () => {
  it("a member opens their sealed copy of the vault key; nobody else, and not at another version", async () => {
    const { material, vaultKey } = await createVaultMaterial({ passphrase: PASS });
    const id = vaultId();
    const member = { userId: "usr_member", ...newKeyPair() };
    const sealed = sealVaultKeyTo(vaultKey, id, 1, { userId: member.userId, publicKey: toB64(member.publicKey) });
    const vault = { ...material, id };
    assert.deepEqual(openSharedVaultKey(member, vault, sealed), vaultKey);
    assert.throws(() => openSharedVaultKey({ ...member, userId: "usr_other" }, vault, sealed), rejectsWith("ZK_DECRYPT_FAILED"));
    assert.throws(() => openSharedVaultKey({ userId: member.userId, ...newKeyPair() }, vault, sealed), rejectsWith("ZK_DECRYPT_FAILED"));
    assert.throws(() => openSharedVaultKey(member, { ...vault, key_version: 2 }, sealed), rejectsWith("ZK_DECRYPT_FAILED"));
    // a well-sealed copy of another key is refused by the key check
    const wrong = sealVaultKeyTo(new Uint8Array(32).fill(3), id, 1, { userId: member.userId, publicKey: toB64(member.publicKey) });
    assert.throws(() => openSharedVaultKey(member, vault, wrong), rejectsWith("ZK_DECRYPT_FAILED"));
  });

  it("a rotation re-encrypts every entry under a new key and version, with new recovery material; old copies open nothing new", async () => {
    const { material, vaultKey, recoveryPhrase } = await createVaultMaterial({ passphrase: PASS });
    const id = vaultId();
    const vault = { ...material, id };
    const entries = ["A", "B"].map((name) => ({ name, key_version: 1, ...encryptEntry(vaultKey, { vaultId: id, name, keyVersion: 1 }, `value ${name}`) }));
    const stays = { userId: "usr_stays", ...newKeyPair() };
    const r = await prepareRotation({
      vault,
      oldKey: vaultKey,
      passphrase: PASS,
      entries,
      members: [{ userId: stays.userId, publicKey: toB64(stays.publicKey) }],
    });
    assert.equal(r.body.key_version, 2);
    assert.notDeepEqual(r.vaultKey, vaultKey);
    const next = { ...vault, ...r.body };
    assert.deepEqual(await unlockWithPassphrase(next, PASS), r.vaultKey);
    for (const e of r.body.entries) assert.equal(decryptEntry(r.vaultKey, { vaultId: id, name: e.name, keyVersion: 2 }, e), `value ${e.name}`);
    assert.throws(() => decryptEntry(vaultKey, { vaultId: id, name: "A", keyVersion: 2 }, r.body.entries[0]), rejectsWith("ZK_DECRYPT_FAILED"));
    assert.deepEqual(openSharedVaultKey(stays, next, r.body.members[0].sealed_key), r.vaultKey);
    // the new phrase opens the new key; the old phrase does not
    assert.deepEqual(recoverWithPhrase(next, r.body.recovery_phrase_wrapped_key, r.recoveryPhrase), r.vaultKey);
    assert.throws(() => recoverWithPhrase(next, r.body.recovery_phrase_wrapped_key, recoveryPhrase), rejectsWith("ZK_RECOVERY_PHRASE_WRONG"));
    // an entry that does not decrypt, or a key that is not the vault's, stops it before anything is made
    await assert.rejects(
      prepareRotation({ vault, oldKey: vaultKey, passphrase: PASS, entries: [{ ...entries[0], name: "B" }], members: [] }),
      rejectsWith("ZK_DECRYPT_FAILED", /Entry B/),
    );
    await assert.rejects(prepareRotation({ vault, oldKey: new Uint8Array(32), passphrase: PASS, entries, members: [] }), rejectsWith("ZK_DECRYPT_FAILED"));
  });
});

describe("zk: user key pairs", () => {
  it("keeps the X25519 private key under the passphrase; unlocking gives the pair back", async () => {
    const owner = { orgId: ORG, userId: "usr_me" };
    const { record, keys } = await createUserKey(PASS, owner);
    assert.equal(fromB64(record.public_key, "pk").length, 32);
    assert.ok(!record.encrypted_private_key.includes(toB64(keys.privateKey)));
    const back = await unlockUserKey(record, PASS, owner);
    assert.deepEqual(back.privateKey, keys.privateKey);
    assert.deepEqual(back.publicKey, keys.publicKey);
  });

  it("a wrong passphrase, another user's record or a swapped public key fail clearly", async () => {
    const owner = { orgId: ORG, userId: "usr_me" };
    const { record } = await createUserKey(PASS, owner);
    await assert.rejects(unlockUserKey(record, "wrong passphrase", owner), rejectsWith("ZK_WRONG_PASSPHRASE"));
    await assert.rejects(unlockUserKey(record, PASS, { ...owner, userId: "usr_other" }), rejectsWith("ZK_WRONG_PASSPHRASE"));
    await assert.rejects(unlockUserKey({ ...record, public_key: toB64(newKeyPair().publicKey) }, PASS, owner), rejectsWith("ZK_DECRYPT_FAILED", /altered/));
  });
});
