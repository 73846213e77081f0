import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import type { Executor } from "../db/client.ts";
import { systemClock } from "../lib/clock.ts";
import { isAppError } from "../lib/errors.ts";
import { type KekRow, type KekStore, PLATFORM_OWNER } from "./kek-store.ts";
import { createKms, rootKeyIdOf, type Envelope } from "./kms.ts";

/** The KEK table in memory: these tests are about the cryptography, not the queries. */
function memoryStore(): KekStore & { rows: KekRow[] } {
  const rows: KekRow[] = [];
  return {
    rows,
    current: async (_ex, orgId) => rows.filter((r) => r.orgId === orgId).sort((a, b) => b.version - a.version)[0],
    find: async (_ex, orgId, version) => rows.find((r) => r.orgId === orgId && r.version === version),
    all: async (_ex, orgId) => rows.filter((r) => r.orgId === orgId).sort((a, b) => b.version - a.version),
    rewrap: async (_tx, orgId, version, wrappedKey, rootKeyId) => {
      const r = rows.find((x) => x.orgId === orgId && x.version === version);
      if (r) Object.assign(r, { wrappedKey, rootKeyId });
    },
    retire: async (_tx, orgId, versions, at) => {
      for (const r of rows) if (r.orgId === orgId && versions.includes(r.version) && !r.retiredAt) r.retiredAt = at;
    },
    purgeRetired: async (_tx, orgId, before) => {
      const gone = rows.filter((r) => r.orgId === orgId && r.retiredAt && r.retiredAt < before);
      for (const g of gone) rows.splice(rows.indexOf(g), 1);
      return gone.length;
    },
    insertIfAbsent: async (_tx, row) => {
      if (!rows.some((r) => r.orgId === row.orgId && r.version === row.version)) rows.push({ createdAt: new Date(), retiredAt: null, ...row } as KekRow);
    },
  };
}

const tx = {} as Executor;
const ORG = "org_01hzzzzzzzzzzzzzzzzzzzzzzz";
const AAD = `secret|${ORG}|org|sec_1|1`;

async function rejectsWith(p: Promise<unknown>, code: string, message: RegExp) {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isAppError(e), String(e));
    assert.equal(e.code, code);
    assert.match(e.message, message);
    return true;
  });
}

/** `s` with one bit flipped in the byte at `at` of its base64url decoding. */
function flipped(s: string, at = 0): string {
  const b = Buffer.from(s, "base64url");
  b[at] ^= 1;
  return b.toString("base64url");
}

describe("KMS envelope encryption", () => {
  const masterKey = randomBytes(32);
  const store = memoryStore();
  const kms = createKms({ masterKey, clock: systemClock, store });

  it("round-trips a value, with a fresh nonce and data key each time, and makes the org's KEK v1 once", async () => {
    const value = Buffer.from("sk-live-round-trip 🔑");
    const a = await kms.encrypt(tx, ORG, value, AAD);
    const b = await kms.encrypt(tx, ORG, value, AAD);
    assert.equal(a.kekVersion, 1);
    assert.notEqual(a.nonce, b.nonce);
    assert.notEqual(a.ciphertext, b.ciphertext);
    assert.notEqual(a.wrappedKey, b.wrappedKey);
    assert.equal(Buffer.from(a.nonce, "base64url").length, 12);
    assert.deepEqual(await kms.decrypt(tx, ORG, a, AAD), value);
    assert.deepEqual(await kms.decrypt(tx, ORG, b, AAD), value);
    assert.equal(store.rows.filter((r) => r.orgId === ORG).length, 1);
    for (const r of store.rows) assert.ok(!r.wrappedKey.includes(value.toString("base64url")));
    assert.deepEqual(await kms.decrypt(tx, ORG, await kms.encrypt(tx, ORG, Buffer.alloc(0), AAD), AAD), Buffer.alloc(0));
  });

  it("refuses a flipped bit in the ciphertext, the nonce or the wrapped data key", async () => {
    const env = await kms.encrypt(tx, ORG, Buffer.from("flip me"), AAD);
    const tampered: Envelope[] = [
      { ...env, ciphertext: flipped(env.ciphertext) },
      { ...env, ciphertext: flipped(env.ciphertext, Buffer.from(env.ciphertext, "base64url").length - 1) }, // the tag
      { ...env, nonce: flipped(env.nonce) },
      { ...env, wrappedKey: flipped(env.wrappedKey, 20) },
    ];
    for (const t of tampered) await rejectsWith(kms.decrypt(tx, ORG, t, AAD), "KMS_DECRYPT_FAILED", /altered or moved/);
  });

  it("refuses a ciphertext moved to another record (other secret, version, scope or org)", async () => {
    const env = await kms.encrypt(tx, ORG, Buffer.from("stay put"), AAD);
    for (const aad of [AAD.replace("sec_1", "sec_2"), AAD.replace(/\|1$/, "|2"), AAD.replace("|org|", "|team|")]) {
      await rejectsWith(kms.decrypt(tx, ORG, env, aad), "KMS_DECRYPT_FAILED", /moved to another record/);
    }
    // another org's KEK v1 cannot open it either
    const other = "org_01hyyyyyyyyyyyyyyyyyyyyyyy";
    await kms.encrypt(tx, other, Buffer.from("x"), AAD);
    await rejectsWith(kms.decrypt(tx, other, env, AAD), "KMS_DECRYPT_FAILED", /altered or moved/);
  });

  it("names a wrong root key (another master key) clearly, and a tampered KEK row or a missing KEK version", async () => {
    const env = await kms.encrypt(tx, ORG, Buffer.from("root"), AAD);
    const wrong = createKms({ masterKey: randomBytes(32), clock: systemClock, store });
    await rejectsWith(wrong.decrypt(tx, ORG, env, AAD), "KMS_ROOT_KEY_MISMATCH", /different PLINTH_MASTER_KEY/);
    await rejectsWith(wrong.encrypt(tx, ORG, Buffer.from("new"), AAD), "KMS_ROOT_KEY_MISMATCH", /another root key/);
    await rejectsWith(kms.decrypt(tx, ORG, { ...env, kekVersion: 7 }, AAD), "KMS_KEY_MISSING", /v7/);
    const row = store.rows.find((r) => r.orgId === ORG)!;
    const saved = row.wrappedKey;
    row.wrappedKey = flipped(saved, 20);
    try {
      await rejectsWith(kms.decrypt(tx, ORG, env, AAD), "KMS_DECRYPT_FAILED", /key-encryption key v1 does not authenticate/);
    } finally {
      row.wrappedKey = saved;
    }
    assert.deepEqual(await kms.decrypt(tx, ORG, env, AAD), Buffer.from("root"));
  });

  it("rotates the KEK: new writes use the new version, old data keys still open, and re-wrap moves only the data key", async () => {
    const org = "org_01hrotatezzzzzzzzzzzzzzzzz";
    const old = await kms.encrypt(tx, org, Buffer.from("before rotation"), AAD);
    assert.equal(old.kekVersion, 1);
    assert.equal(await kms.rotateKek(tx, org), 2);
    const fresh = await kms.encrypt(tx, org, Buffer.from("after rotation"), AAD);
    assert.equal(fresh.kekVersion, 2);
    assert.deepEqual(await kms.decrypt(tx, org, old, AAD), Buffer.from("before rotation"));
    const rewrap = async (e: typeof old) => (await kms.rewrapDeks(tx, org, [{ envelope: e, aad: AAD }]))[0];
    const moved = await rewrap(old);
    assert.ok(moved);
    assert.equal(moved.kekVersion, 2);
    assert.notEqual(moved.wrappedKey, old.wrappedKey);
    assert.deepEqual(await kms.decrypt(tx, org, { ...old, ...moved }, AAD), Buffer.from("before rotation"), "same ciphertext and nonce");
    assert.equal(await rewrap(fresh), undefined, "already on the newest version");
    // a data key wrapped under a tampered KEK fails clearly, naming the version
    const row = store.rows.find((r) => r.orgId === org && r.version === 1)!;
    const saved = row.wrappedKey;
    row.wrappedKey = flipped(saved, 20);
    try {
      await rejectsWith(rewrap(old), "KMS_DECRYPT_FAILED", /key-encryption key v1 does not authenticate/);
    } finally {
      row.wrappedKey = saved;
    }
    await rejectsWith(rewrap({ ...old, wrappedKey: flipped(old.wrappedKey, 20) }), "KMS_DECRYPT_FAILED", /data key does not authenticate/);
  });

  it("rotates the root key: KEKs re-wrapped under the new one, the previous key accepted meanwhile, the old one alone refused", async () => {
    const org = "org_01hrootrotatezzzzzzzzzzzzz";
    const oldKey = randomBytes(32);
    const newKey = randomBytes(32);
    const before = createKms({ masterKey: oldKey, clock: systemClock, store });
    const env = await before.encrypt(tx, org, Buffer.from("root rotation"), AAD);
    const both = createKms({ masterKey: newKey, previousMasterKeys: [oldKey], clock: systemClock, store });
    assert.deepEqual(both.rootKeyIds, [rootKeyIdOf(newKey), rootKeyIdOf(oldKey)]);
    assert.deepEqual(await both.decrypt(tx, org, env, AAD), Buffer.from("root rotation"), "the previous key opens KEKs not yet re-wrapped");
    assert.equal(await both.rewrapKeksUnderRoot(tx, org), 1);
    assert.equal(await both.rewrapKeksUnderRoot(tx, org), 0, "idempotent");
    assert.equal(store.rows.find((r) => r.orgId === org)!.rootKeyId, rootKeyIdOf(newKey));
    const after = createKms({ masterKey: newKey, clock: systemClock, store });
    assert.deepEqual(await after.decrypt(tx, org, env, AAD), Buffer.from("root rotation"));
    await rejectsWith(before.decrypt(tx, org, env, AAD), "KMS_ROOT_KEY_MISMATCH", /PLINTH_MASTER_KEY_PREVIOUS/);
  });
});

describe("KMS platform tier (records of no org)", () => {
  const masterKey = randomBytes(32);
  const orgs = memoryStore();
  const platform = memoryStore();
  const kms = createKms({ masterKey, clock: systemClock, store: orgs, platformStore: platform });
  const KEY_AAD = "signing_key:sgk_1";

  it("round-trips under the platform KEK v1, made once, through the same wrapping as an org's", async () => {
    const value = Buffer.from('{"kty":"OKP","d":"private"}');
    const a = await kms.encryptPlatform(tx, value, KEY_AAD);
    const b = await kms.encryptPlatform(tx, value, KEY_AAD);
    assert.equal(a.kekVersion, 1);
    assert.notEqual(a.ciphertext, b.ciphertext);
    assert.deepEqual(await kms.decryptPlatform(tx, a, KEY_AAD), value);
    assert.deepEqual(await kms.decryptPlatform(tx, b, KEY_AAD), value);
    assert.equal(platform.rows.length, 1);
    assert.equal(platform.rows[0].orgId, PLATFORM_OWNER);
    assert.equal(orgs.rows.length, 0, "no org KEK made");
    assert.doesNotThrow(() => kms.checkPlatformKek(platform.rows[0]));
  });

  it("refuses an envelope moved to another record, tampered, or opened as an org's", async () => {
    const env = await kms.encryptPlatform(tx, Buffer.from("stay put"), KEY_AAD);
    await rejectsWith(kms.decryptPlatform(tx, env, "signing_key:sgk_2"), "KMS_DECRYPT_FAILED", /moved to another record/);
    await rejectsWith(kms.decryptPlatform(tx, { ...env, wrappedKey: flipped(env.wrappedKey, 20) }, KEY_AAD), "KMS_DECRYPT_FAILED", /altered or moved/);
    await rejectsWith(kms.decryptPlatform(tx, { ...env, kekVersion: 9 }, KEY_AAD), "KMS_KEY_MISSING", /platform has no key-encryption key v9/);
    await kms.encrypt(tx, ORG, Buffer.from("x"), KEY_AAD); // the org's own KEK v1
    await rejectsWith(kms.decrypt(tx, ORG, env, KEY_AAD), "KMS_DECRYPT_FAILED", /altered or moved/);
    // a platform KEK row copied into an org's place does not open there (its identity is the tier's)
    const copy = { ...platform.rows[0], orgId: ORG };
    assert.throws(() => kms.checkKek(copy), /organization's key-encryption key v1 does not authenticate/);
  });

  it("names a wrong root key, and re-wraps the platform KEK under a new root key (idempotent)", async () => {
    const env = await kms.encryptPlatform(tx, Buffer.from("root"), KEY_AAD);
    const wrong = createKms({ masterKey: randomBytes(32), clock: systemClock, store: orgs, platformStore: platform });
    await rejectsWith(wrong.decryptPlatform(tx, env, KEY_AAD), "KMS_ROOT_KEY_MISMATCH", /platform's key-encryption key v1 was wrapped under another root key/);
    assert.throws(() => wrong.checkPlatformKek(platform.rows[0]), /another root key/);
    const newKey = randomBytes(32);
    const both = createKms({ masterKey: newKey, previousMasterKeys: [masterKey], clock: systemClock, store: orgs, platformStore: platform });
    assert.deepEqual(await both.decryptPlatform(tx, env, KEY_AAD), Buffer.from("root"));
    assert.equal(await both.rewrapPlatformKeksUnderRoot(tx), 1);
    assert.equal(await both.rewrapPlatformKeksUnderRoot(tx), 0, "idempotent");
    assert.equal(platform.rows[0].rootKeyId, rootKeyIdOf(newKey));
    assert.equal(orgs.rows[0].rootKeyId, rootKeyIdOf(masterKey), "the org tier is rotated on its own");
    const after = createKms({ masterKey: newKey, clock: systemClock, store: orgs, platformStore: platform });
    assert.deepEqual(await after.decryptPlatform(tx, env, KEY_AAD), Buffer.from("root"));
    const oldAlone = createKms({ masterKey, clock: systemClock, store: orgs, platformStore: platform });
    await rejectsWith(oldAlone.decryptPlatform(tx, env, KEY_AAD), "KMS_ROOT_KEY_MISMATCH", /PLINTH_MASTER_KEY_PREVIOUS/);
  });
});
