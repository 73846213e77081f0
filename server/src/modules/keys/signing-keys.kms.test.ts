import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { sql } from "drizzle-orm";
import { decodeProtectedHeader, exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";
import type { Database } from "../../db/client.ts";
import { createKms } from "../../kms/kms.ts";
import { rotatePlatformRootKey, rotateRootKey } from "../../kms/root-rotation.ts";
import { systemClock } from "../../lib/clock.ts";
import { deriveKey, seal } from "../../lib/crypto.ts";
import { newId } from "../../lib/ids.ts";
import { createSigningKeys } from "./signing-keys.ts";
import { BACKENDS, createTestApp, type TestApp } from "../../../test/harness.ts";

async function rows<T>(db: Database, query: ReturnType<typeof sql>): Promise<T[]> {
  return ((await db.owner.execute(query)) as unknown as { rows: T[] }).rows;
}

interface KeyRow {
  id: string;
  private_jwk_sealed: string | null;
  ciphertext: string | null;
  nonce: string | null;
  wrapped_key: string | null;
  kek_version: number | null;
  retired_at: Date | null;
  text: string;
}
const keyRows = (db: Database) =>
  rows<KeyRow>(
    db,
    sql`select id, private_jwk_sealed, ciphertext, nonce, wrapped_key, kek_version, retired_at, k::text as text from signing_keys k order by id`,
  );

/** What a boot may write about signing keys: the keys and the platform KEKs. */
async function keyState(db: Database) {
  return { keys: await keyRows(db), keks: await rows(db, sql`select * from kms_platform_keks order by version`) };
}

/** The private 'd' of a signing key, decrypted through the KMS's platform tier. */
async function privateD(db: Database, masterKey: Buffer, row: KeyRow): Promise<string> {
  const kms = createKms({ masterKey, clock: systemClock });
  const env = { ciphertext: row.ciphertext!, nonce: row.nonce!, wrappedKey: row.wrapped_key!, kekVersion: row.kek_version! };
  const raw = await db.tx({}, (tx) => kms.decryptPlatform(tx, env, `signing_key:${row.id}`));
  return (JSON.parse(raw.toString("utf8")) as JWK).d!;
}

interface LegacyKey {
  kid: string;
  d: string;
  /** A token signed with it the way Plinth signs, before the conversion */
  token: string;
}

/**
 * A signing key as versions before 0020_platform_keks stored it: the private JWK sealed with lib/crypto under the
 * master key's "signing-keys" derivation (the old createKey, kept here as the test's own copy).
 */
async function insertLegacyKey(t: TestApp, state: "active" | "superseded" | "retired"): Promise<LegacyKey> {
  const { issuer, audience } = t.deps.config.jwt;
  const kid = newId("signingKey");
  const { publicKey, privateKey } = await generateKeyPair("ES256", { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: "ES256", use: "sig" };
  const privateJwk = await exportJWK(privateKey);
  const sealed = seal(deriveKey(t.deps.config.masterKey!, "signing-keys"), JSON.stringify(privateJwk), `signing_key:${kid}`);
  const now = new Date();
  const later = new Date(now.getTime() + 86_400_000);
  await t.db.owner.execute(sql`
    insert into signing_keys (id, alg, public_jwk, private_jwk_sealed, created_at, superseded_at, retire_after, retired_at)
    values (${kid}, 'ES256', ${JSON.stringify(publicJwk)}::jsonb, ${sealed}, ${now.toISOString()},
      ${state === "active" ? null : now.toISOString()}, ${state === "active" ? null : later.toISOString()}, ${state === "retired" ? now.toISOString() : null})`);
  const sec = Math.floor(now.getTime() / 1000);
  const token = await new SignJWT({ sub: "usr_legacy" })
    .setProtectedHeader({ alg: "ES256", kid, typ: "at+jwt" })
    .setIssuer(issuer)
    .setAudience(audience)
    .setIssuedAt(sec)
    .setNotBefore(sec)
    .setExpirationTime(sec + 900)
    .setJti(randomBytes(8).toString("hex"))
    .sign(privateKey);
  return { kid, d: privateJwk.d!, token };
}

/** Makes `t`'s database look like a deployment of a version before the KMS tier: legacy seals, no platform KEK. */
async function legacyDeployment(t: TestApp) {
  await t.db.owner.execute(sql`delete from signing_keys`);
  await t.db.owner.execute(sql`delete from kms_platform_keks`);
  return { retired: await insertLegacyKey(t, "retired"), superseded: await insertLegacyKey(t, "superseded"), active: await insertLegacyKey(t, "active") };
}

/** Every signing key row: no legacy seal, an envelope on each unretired one, none of `ds` anywhere. */
function assertNoKeyInClear(keys: KeyRow[], ds: string[]) {
  assert.ok(keys.length > 0);
  for (const k of keys) {
    assert.equal(k.private_jwk_sealed, null, `${k.id} keeps a legacy seal`);
    if (!k.retired_at) assert.ok(k.ciphertext && k.nonce && k.wrapped_key && k.kek_version, `${k.id} holds no envelope`);
    for (const d of ds) assert.ok(!k.text.includes(d), `${k.id} holds a private key in clear`);
    assert.doesNotMatch(k.text, /"d"\s*:/, `${k.id} holds a private JWK`);
  }
}

for (const backend of BACKENDS) {
  describe(`signing keys under the KMS platform tier (${backend})`, () => {
    let t: TestApp;
    before(async () => {
      t = await createTestApp({ backend, worker: false });
    });
    after(() => t.close());
    const masterKey = () => t.deps.config.masterKey!;
    const boot = (key = masterKey(), extra: Record<string, string> = {}) =>
      createTestApp({ backend, worker: false, sameDatabaseAs: t, env: { PLINTH_MASTER_KEY: key.toString("base64"), ...extra } });

    it("stores a new key's private JWK as an envelope under the platform KEK: nothing in clear, no legacy seal", async () => {
      const keys = await keyRows(t.db);
      assert.equal(keys.length, 1);
      const keks = await rows<{ version: number; root_key_id: string }>(t.db, sql`select version, root_key_id from kms_platform_keks`);
      assert.deepEqual(
        keks.map((k) => k.version),
        [1],
      );
      assert.equal(keys[0].kek_version, 1);
      const d = await privateD(t.db, masterKey(), keys[0]);
      assertNoKeyInClear(keys, [d, Buffer.from(d, "base64url").toString("hex"), Buffer.from(d, "base64url").toString("base64")]);
      const token = await t.deps.keys.sign({ sub: "usr_x" }, 60);
      assert.equal((await t.deps.keys.verify(token)).ok, true);
    });

    it("refuses to boot with a wrong master key, by the platform KEK alone, and changes nothing", async () => {
      assert.equal((await rows(t.db, sql`select 1 from vault_keks`)).length, 0, "no org KEK: the platform KEK is the canary");
      const before = await keyState(t.db);
      await assert.rejects(boot(randomBytes(32)), (e: Error) => {
        assert.match(e.message, /^PLINTH_MASTER_KEY: the vault's keys are wrapped under another root key .*PLINTH_MASTER_KEY_PREVIOUS.*Nothing was changed/);
        return true;
      });
      assert.deepEqual(await keyState(t.db), before);
    });

    it("refuses a private key's ciphertext copied onto another signing key's row (its key id is the associated data)", async () => {
      await t.deps.keys.rotate();
      const [a, b] = await keyRows(t.db);
      await t.db.owner.execute(
        sql`update signing_keys set ciphertext = ${a.ciphertext}, nonce = ${a.nonce}, wrapped_key = ${a.wrapped_key}, kek_version = ${a.kek_version} where id = ${b.id}`,
      );
      try {
        await assert.rejects(t.deps.keys.reload(), (e: Error & { code?: string }) => {
          assert.equal(e.code, "KMS_DECRYPT_FAILED");
          assert.match(e.message, /altered or moved to another record/);
          return true;
        });
      } finally {
        await t.db.owner.execute(
          sql`update signing_keys set ciphertext = ${b.ciphertext}, nonce = ${b.nonce}, wrapped_key = ${b.wrapped_key}, kek_version = ${b.kek_version} where id = ${b.id}`,
        );
      }
      await t.deps.keys.reload();
    });

    it("converts keys sealed the old way at boot: tokens they signed still verify, the active one signs, no seal is left", async () => {
      const legacy = await legacyDeployment(t);
      const b = await boot();
      try {
        const keys = await keyRows(t.db);
        assert.equal(keys.length, 3);
        assertNoKeyInClear(keys, [legacy.retired.d, legacy.superseded.d, legacy.active.d]);
        const retired = keys.find((k) => k.id === legacy.retired.kid)!;
        assert.equal(retired.ciphertext, null, "a retired key's private half is dropped, not converted");
        for (const k of [legacy.superseded, legacy.active]) {
          const row = keys.find((r) => r.id === k.kid)!;
          assert.equal(await privateD(t.db, masterKey(), row), k.d, "the same key, now under the KMS");
          assert.equal((await b.deps.keys.verify(k.token)).ok, true, `a token of ${k.kid} verifies`);
        }
        assert.deepEqual(await b.deps.keys.verify(legacy.retired.token), { ok: false, reason: "unknown_key" });
        const fresh = await b.deps.keys.sign({ sub: "usr_after" }, 60);
        assert.equal(decodeProtectedHeader(fresh).kid, legacy.active.kid);
        assert.equal((await b.deps.keys.verify(fresh)).ok, true);
      } finally {
        await b.close();
      }
      // idempotent: another boot finds nothing to convert and changes nothing
      const state = await keyState(t.db);
      const again = await boot();
      await again.close();
      assert.deepEqual(await keyState(t.db), state);
    });

    it("refuses to convert with a wrong master key, naming it, and changes nothing (doctor's check says the same)", async () => {
      await legacyDeployment(t);
      const before = await keyState(t.db);
      const checker = (masterKey: Buffer) =>
        createSigningKeys({ db: t.db, masterKey, clock: systemClock, jwt: t.deps.config.jwt, accessTtlSeconds: 900 }).check();
      assert.deepEqual(await checker(masterKey()), { keys: 2, legacy: 2 }, "two published keys wait for the conversion");
      await assert.rejects(checker(randomBytes(32)), /the token-signing key sig_\w+ was sealed under another master key/);
      assert.deepEqual(await keyState(t.db), before, "the check writes nothing");
      await assert.rejects(boot(randomBytes(32)), (e: Error) => {
        assert.match(e.message, /^PLINTH_MASTER_KEY: the token-signing key sig_\w+ was sealed under another master key .*Nothing was changed/);
        return true;
      });
      assert.deepEqual(await keyState(t.db), before);
      const b = await boot();
      await b.close();
      assertNoKeyInClear(await keyRows(t.db), []);
    });

    it("converts once when two instances boot at once", async () => {
      const legacy = await legacyDeployment(t);
      const [b, c] = await Promise.all([boot(), boot()]);
      try {
        assert.equal((await rows(t.db, sql`select 1 from kms_platform_keks`)).length, 1);
        assertNoKeyInClear(await keyRows(t.db), [legacy.active.d]);
        for (const app of [b, c]) assert.equal((await app.deps.keys.verify(legacy.active.token)).ok, true);
        assert.equal((await c.deps.keys.verify(await b.deps.keys.sign({ sub: "usr_b" }, 60))).ok, true);
        assert.equal((await b.deps.keys.verify(await c.deps.keys.sign({ sub: "usr_c" }, 60))).ok, true);
      } finally {
        await c.close();
        await b.close();
      }
    });

    it("rotates the root key: the platform KEK re-wrapped, a boot with the new key alone verifies old tokens and signs", async () => {
      const oldKey = masterKey();
      const newKey = randomBytes(32);
      const a = await boot();
      const before = await a.deps.keys.sign({ sub: "usr_before" }, 600);
      await a.close();
      const kms = createKms({ masterKey: newKey, previousMasterKeys: [oldKey], clock: systemClock });
      await rotateRootKey(t.db, kms);
      assert.equal(await rotatePlatformRootKey(t.db, kms), 1);
      assert.equal(await rotatePlatformRootKey(t.db, kms), 0, "idempotent");
      const keysBefore = (await keyRows(t.db)).map(({ text: _, ...k }) => k);
      const fresh = await boot(newKey);
      try {
        assert.deepEqual(
          (await keyRows(t.db)).map(({ text: _, ...k }) => k),
          keysBefore,
          "the signing keys' own rows are untouched",
        );
        assert.equal((await fresh.deps.keys.verify(before)).ok, true);
        assert.equal((await fresh.deps.keys.verify(await fresh.deps.keys.sign({ sub: "usr_after" }, 60))).ok, true);
      } finally {
        await fresh.close();
      }
      await assert.rejects(boot(oldKey), (e: Error) => /^PLINTH_MASTER_KEY: the vault's keys are wrapped under another root key/.test(e.message));
    });
  });
}
