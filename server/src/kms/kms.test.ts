import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import type { Executor } from "../db/client.ts";
import { systemClock } from "../lib/clock.ts";
import { isAppError } from "../lib/errors.ts";
import type { KekRow, KekStore } from "./kek-store.ts";
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
    const moved = await kms.rewrapDek(tx, org, old, AAD);
    assert.ok(moved);
    assert.equal(moved.kekVersion, 2);
    assert.notEqual(moved.wrappedKey, old.wrappedKey);
    assert.deepEqual(await kms.decrypt(tx, org, { ...old, ...moved }, AAD), Buffer.from("before rotation"), "same ciphertext and nonce");
    assert.equal(await kms.rewrapDek(tx, org, fresh, AAD), undefined, "already on the newest version");
    // a data key wrapped under a tampered KEK fails clearly, naming the version
    const row = store.rows.find((r) => r.orgId === org && r.version === 1)!;
    const saved = row.wrappedKey;
    row.wrappedKey = flipped(saved, 20);
    try {
      await rejectsWith(kms.rewrapDek(tx, org, old, AAD), "KMS_DECRYPT_FAILED", /key-encryption key v1 does not authenticate/);
    } finally {
      row.wrappedKey = saved;
    }
    await rejectsWith(kms.rewrapDek(tx, org, { ...old, wrappedKey: flipped(old.wrappedKey, 20) }, AAD), "KMS_DECRYPT_FAILED", /data key does not authenticate/);
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
