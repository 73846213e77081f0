import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import type { Executor } from "../db/client.ts";
import { systemClock } from "../lib/clock.ts";
import { isAppError } from "../lib/errors.ts";
import type { KekRow, KekStore } from "./kek-store.ts";
import { createKms, type Envelope } from "./kms.ts";

/** The KEK table in memory: these tests are about the cryptography, not the queries. */
function memoryStore(): KekStore & { rows: KekRow[] } {
  const rows: KekRow[] = [];
  return {
    rows,
    current: async (_ex, orgId) => rows.filter((r) => r.orgId === orgId).sort((a, b) => b.version - a.version)[0],
    find: async (_ex, orgId, version) => rows.find((r) => r.orgId === orgId && r.version === version),
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
});
