import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { sql } from "drizzle-orm";
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeProtectedHeader,
  generateKeyPair,
  importJWK,
  jwtVerify,
  SignJWT,
  type CryptoKey,
  type JWK,
  type JWTPayload,
} from "jose";
import { createManualClock } from "../../lib/clock.ts";
import { createKms } from "../../kms/kms.ts";
import { createSigningKeys, KEY_RELOAD_INTERVAL_MS, MAX_ISSUED_TTL_SECONDS } from "./signing-keys.ts";
import { BACKENDS, createTestApp, problemOf, signUp, type TestApp, type TestUser } from "../../../test/harness.ts";

const MASTER_KEY = randomBytes(32);
const ISSUER = "http://plinth.test";
const AUDIENCE = "plinth";
const TTL = 900;
/** A superseded key stays published while any token it signed may live: session tokens or the token endpoint's. */
const PUBLISHED_TTL = Math.max(TTL, MAX_ISSUED_TTL_SECONDS);
const REPO_ROOT = fileURLToPath(new URL("../../../../", import.meta.url));

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
/** The JWS alg of one of the signing keys' kinds (ES256 by default, EdDSA by choice or from before). */
const algOf = (key: CryptoKey) => (key.algorithm.name === "Ed25519" ? "EdDSA" : "ES256");

for (const backend of BACKENDS) {
  describe(`access tokens and signing keys (${backend})`, () => {
    const clock = createManualClock();
    let t: TestApp;
    let user: TestUser;
    before(async () => {
      t = await createTestApp({ backend, clock, env: { PLINTH_MASTER_KEY: MASTER_KEY.toString("base64") } });
      user = await signUp(t);
    });
    after(() => t.close());

    const nowSec = () => Math.floor(clock.now().getTime() / 1000);
    const me = (authorization?: string) => t.inject({ method: "GET", url: "/v1/me", headers: authorization ? { authorization } : {} });
    const jwks = async () => (await t.call("GET", "/.well-known/jwks.json")).json() as { keys: JWK[] };
    const kidOf = (token: string) => decodeProtectedHeader(token).kid as string;
    async function freshToken(): Promise<string> {
      const res = await t.call("POST", "/v1/auth/login", { email: user.email, password: user.password });
      assert.equal(res.statusCode, 200, res.body);
      return res.json().access_token;
    }
    /** The real private signing key, decrypted through the KMS's platform tier the way signing-keys.ts does it. */
    async function realKey(kid: string): Promise<CryptoKey> {
      const kms = createKms({ masterKey: MASTER_KEY, clock });
      const jwk = await t.db.tx({}, async (tx) => {
        const res = await tx.execute(sql`select ciphertext, nonce, wrapped_key, kek_version, alg from signing_keys where id = ${kid}`);
        const row = (res as unknown as { rows: { ciphertext: string; nonce: string; wrapped_key: string; kek_version: number; alg: string }[] }).rows[0];
        const env = { ciphertext: row.ciphertext, nonce: row.nonce, wrappedKey: row.wrapped_key, kekVersion: row.kek_version };
        return { alg: row.alg, jwk: JSON.parse((await kms.decryptPlatform(tx, env, `signing_key:${kid}`)).toString("utf8")) as JWK };
      });
      return (await importJWK(jwk.jwk, jwk.alg)) as CryptoKey;
    }
    function claims(extra: JWTPayload = {}): JWTPayload {
      const now = nowSec();
      return { iss: ISSUER, aud: AUDIENCE, sub: user.id, iat: now, nbf: now, exp: now + TTL, jti: randomUUID(), ...extra };
    }
    /** Signs like Plinth does, with the key's alg. */
    const sign = (key: CryptoKey, header: Record<string, unknown>, payload: JWTPayload) =>
      new SignJWT(payload).setProtectedHeader({ alg: algOf(key), typ: "at+jwt", ...header } as { alg: string }).sign(key);
    async function refused(authorization: string | undefined, code: string, reason?: string) {
      const res = await me(authorization);
      assert.equal(res.statusCode, 401, res.body);
      const p = problemOf(res);
      assert.equal(p.code, code, res.body);
      if (reason !== undefined) assert.equal(p.reason, reason, res.body);
      assert.match(String(res.headers["www-authenticate"]), /^Bearer\b/);
      return p;
    }

    it("publishes only public keys, and the access token verifies against them with issuer and audience", async () => {
      const res = await t.call("GET", "/.well-known/jwks.json");
      assert.equal(res.statusCode, 200);
      assert.match(String(res.headers["cache-control"]), /max-age/);
      const set = res.json() as { keys: JWK[] };
      assert.equal(set.keys.length, 1);
      const [k] = set.keys;
      // ES256 by default: the alg the widest set of verifiers (jsonwebtoken + jwks-rsa, API gateways) accepts
      assert.deepEqual([k.kty, k.crv, k.alg, k.use], ["EC", "P-256", "ES256", "sig"]);
      assert.equal("d" in k, false, "no private part");
      const token = await freshToken();
      assert.equal(kidOf(token), k.kid);
      const { payload, protectedHeader } = await jwtVerify(token, createLocalJWKSet(set), {
        issuer: ISSUER,
        audience: AUDIENCE,
        algorithms: ["ES256"],
        currentDate: clock.now(),
      });
      assert.equal(payload.sub, user.id);
      assert.equal(protectedHeader.alg, "ES256");
      await assert.rejects(jwtVerify(token, createLocalJWKSet(set), { issuer: "http://elsewhere.test", currentDate: clock.now() }));
      await assert.rejects(jwtVerify(token, createLocalJWKSet(set), { audience: "someone-else", currentDate: clock.now() }));
    });

    it("verifies over a real port with a remote JWKS", async () => {
      await t.app.listen({ port: 0, host: "127.0.0.1" });
      const { port } = t.app.server.address() as AddressInfo;
      const token = await freshToken();
      const remote = createRemoteJWKSet(new URL(`http://127.0.0.1:${port}/.well-known/jwks.json`));
      const { payload } = await jwtVerify(token, remote, { issuer: ISSUER, audience: AUDIENCE, currentDate: clock.now() });
      assert.equal(payload.sub, user.id);
      const live = await fetch(`http://127.0.0.1:${port}/v1/me`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(live.status, 200);
      assert.equal((await live.json()).id, user.id);
    });

    it("accepts a token forged with the real key and correct claims (control for the cases below)", async () => {
      const kid = kidOf(await freshToken());
      const res = await me(`Bearer ${await sign(await realKey(kid), { kid }, claims())}`);
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(res.json().id, user.id);
    });

    it("refuses an unsigned alg:none token", async () => {
      const kid = kidOf(await freshToken());
      await refused(`Bearer ${b64({ alg: "none", kid, typ: "at+jwt" })}.${b64(claims())}.`, "INVALID_TOKEN");
      await refused(`Bearer ${b64({ alg: "none", kid, typ: "at+jwt" })}.${b64(claims())}.c2ln`, "INVALID_TOKEN");
    });

    it("refuses HS256 tokens keyed with the public key (algorithm confusion)", async () => {
      const { keys } = await jwks();
      const pub = keys[0];
      for (const secret of [Buffer.from(JSON.stringify(pub)), Buffer.from(pub.x as string, "base64url"), Buffer.from(pub.x as string)]) {
        const token = await new SignJWT(claims()).setProtectedHeader({ alg: "HS256", kid: pub.kid, typ: "at+jwt" }).sign(secret);
        await refused(`Bearer ${token}`, "INVALID_TOKEN");
      }
    });

    it("refuses a token signed by a key not in the JWKS, with the real kid or an unknown one", async () => {
      const kid = kidOf(await freshToken());
      const { privateKey } = await generateKeyPair("ES256");
      await refused(`Bearer ${await sign(privateKey, { kid }, claims())}`, "INVALID_TOKEN", "bad_signature");
      await refused(`Bearer ${await sign(privateKey, { kid: "sig_01h00000000000000000000000" }, claims())}`, "INVALID_TOKEN", "unknown_key");
      await refused(`Bearer ${await sign(privateKey, {}, claims())}`, "INVALID_TOKEN", "unknown_key");
    });

    it("refuses tokens from the real key with a wrong issuer, audience, future nbf or missing claims", async () => {
      const kid = kidOf(await freshToken());
      const key = await realKey(kid);
      const cases: [string, JWTPayload, string][] = [
        ["wrong iss", { iss: "http://evil.test" }, "bad_claims"],
        ["wrong aud", { aud: "other-service" }, "bad_claims"],
        ["aud list without plinth", { aud: ["a", "b"] }, "bad_claims"],
        ["nbf in the future", { nbf: nowSec() + 3600 }, "not_yet_valid"],
        ["no jti", { jti: undefined }, "bad_claims"],
        ["no sub", { sub: undefined }, "bad_claims"],
        ["no exp", { exp: undefined }, "bad_claims"],
      ];
      for (const [label, extra, reason] of cases) {
        const payload = claims(extra);
        for (const k of Object.keys(payload)) if (payload[k] === undefined) delete payload[k];
        await assert.doesNotReject(refused(`Bearer ${await sign(key, { kid }, payload)}`, "INVALID_TOKEN", reason), label);
      }
    });

    it("refuses a token whose payload was changed after signing", async () => {
      const other = await signUp(t, "Victim");
      const token = await freshToken();
      assert.equal((await me(`Bearer ${token}`)).statusCode, 200);
      const [h, p, s] = token.split(".");
      const payload = JSON.parse(Buffer.from(p, "base64url").toString("utf8"));
      const forged = `${h}.${b64({ ...payload, sub: other.id })}.${s}`;
      await refused(`Bearer ${forged}`, "INVALID_TOKEN", "bad_signature");
      await refused(`Bearer ${h}.${p}.${Buffer.from(s, "base64url").reverse().toString("base64url")}`, "INVALID_TOKEN", "bad_signature");
    });

    it("refuses garbage, other schemes and a missing header", async () => {
      await refused("Bearer abc", "INVALID_TOKEN", "malformed");
      await refused("Bearer a.b.c", "INVALID_TOKEN");
      await refused("Basic xyz", "INVALID_TOKEN");
      await refused(`Bearer ${await freshToken()} extra`, "INVALID_TOKEN");
      await refused(undefined, "UNAUTHENTICATED");
    });

    it("reads the scheme in any case, with spaces around the token, on first sight and from the cache", async () => {
      for (const fresh of [true, false]) {
        const token = await freshToken();
        if (!fresh) assert.equal((await me(`Bearer ${token}`)).statusCode, 200, "now cached");
        for (const header of [`bearer ${token}`, `BEARER   ${token}  `]) assert.equal((await me(header)).statusCode, 200, header.slice(0, 12));
        for (const header of [`Bearer${token}`, `Bearer\t${token}`, `Bearer ${token}\u0000`, `Token ${token}`]) {
          await refused(header, "INVALID_TOKEN");
        }
      }
    });

    it("refuses an expired token: signed in the past, or once the clock passes exp", async () => {
      const real = clock.now();
      clock.set(new Date(real.getTime() - 2 * 3600_000));
      const old = await t.deps.keys.sign({ sub: user.id }, TTL);
      clock.set(real);
      await refused(`Bearer ${old}`, "INVALID_TOKEN", "expired");

      const token = await freshToken();
      assert.equal((await me(`Bearer ${token}`)).statusCode, 200, "valid (and now cached)");
      try {
        clock.advance((TTL - 1) * 1000);
        assert.equal((await me(`Bearer ${token}`)).statusCode, 200, "one second before exp");
        clock.advance(2000);
        const p = await refused(`Bearer ${token}`, "INVALID_TOKEN", "expired");
        assert.match(p.detail, /expired/);
      } finally {
        clock.set(real);
      }
    });

    // Runs last: it rotates the key and moves the clock.
    it("rotates keys: new kid for new tokens, old tokens valid until the old key retires", async () => {
      const before = await freshToken();
      const oldKid = kidOf(before);
      const oldKey = await realKey(oldKid);
      // a token of the old key that outlives its retirement shows the retired key itself is refused, even though
      // the server has seen (and cached) the token while the key was live
      const longLived = await sign(oldKey, { kid: oldKid }, claims({ exp: nowSec() + 10 * TTL }));
      for (const token of [before, longLived]) assert.equal((await me(`Bearer ${token}`)).statusCode, 200);
      assert.equal((await me(`bearer ${before}`)).statusCode, 200, "the scheme name is case-insensitive");

      const { kid, previous } = await t.deps.keys.rotate();
      assert.deepEqual(previous, [oldKid]);
      assert.notEqual(kid, oldKid);
      const after = await freshToken();
      assert.equal(kidOf(after), kid, "new tokens carry the new kid");
      const set = await jwks();
      assert.deepEqual(set.keys.map((k) => k.kid).sort(), [oldKid, kid].sort());
      for (const token of [before, after]) {
        assert.equal((await me(`Bearer ${token}`)).statusCode, 200);
        await jwtVerify(token, createLocalJWKSet(set), { issuer: ISSUER, audience: AUDIENCE, currentDate: clock.now() });
      }
      assert.deepEqual(await t.deps.keys.retireExpired(), [], "nothing retires before its time");

      const real = clock.now();
      try {
        clock.advance((PUBLISHED_TTL + 61) * 1000);
        assert.deepEqual(await t.deps.keys.retireExpired(), [], "still published while other instances may sign with it");
        clock.advance(KEY_RELOAD_INTERVAL_MS);
        assert.deepEqual(await t.deps.keys.retireExpired(), [oldKid]);
        assert.deepEqual(
          (await jwks()).keys.map((k) => k.kid),
          [kid],
        );
        await refused(`Bearer ${longLived}`, "INVALID_TOKEN", "unknown_key");
        await refused(`Bearer ${before}`, "INVALID_TOKEN");
        assert.equal((await me(`Bearer ${await freshToken()}`)).statusCode, 200, "the new key keeps signing");
        const listed = await t.deps.keys.list();
        assert.ok(listed.find((k) => k.kid === oldKid)?.retiredAt, "the old key is marked retired");
        assert.equal(listed.find((k) => k.kid === kid)?.supersededAt, null);
      } finally {
        clock.set(real);
      }
    });

    it("picks up a key rotated, and drops a key retired, by another process at its next maintenance tick", async () => {
      // `plinth keys rotate` and other instances share only the database
      const other = createSigningKeys({
        db: t.db,
        masterKey: MASTER_KEY,
        clock,
        jwt: { issuer: ISSUER, audience: AUDIENCE, alg: "EdDSA" },
        accessTtlSeconds: TTL,
      });
      const oldKid = kidOf(await freshToken());
      const longLived = await sign(await realKey(oldKid), { kid: oldKid }, claims({ exp: nowSec() + 10 * TTL }));
      assert.equal((await me(`Bearer ${longLived}`)).statusCode, 200);
      const { kid } = await other.rotate();
      await t.deps.keys.reload(); // each instance's periodic reload (`plinth serve`)
      assert.equal(kidOf(await freshToken()), kid, "the server now signs with the key rotated elsewhere");
      assert.deepEqual((await jwks()).keys.map((k) => k.kid).sort(), [oldKid, kid].sort());
      const real = clock.now();
      try {
        clock.advance((PUBLISHED_TTL + 61) * 1000 + KEY_RELOAD_INTERVAL_MS);
        assert.deepEqual(await other.retireExpired(), [oldKid], "another instance runs the retirement job");
        await t.deps.keys.reload();
        assert.deepEqual(
          (await jwks()).keys.map((k) => k.kid),
          [kid],
        );
        await refused(`Bearer ${longLived}`, "INVALID_TOKEN", "unknown_key");
        assert.equal(kidOf(await freshToken()), kid);
      } finally {
        clock.set(real);
      }
    });
  });
}

describe("plinth keys CLI (embedded data dir)", () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "plinth-keys-cli-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  function plinth(...args: string[]) {
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) {
      if (v !== undefined && !/^(PLINTH_|DATABASE_|REDIS_URL|SMTP_URL|LOG_LEVEL)/.test(k)) env[k] = v;
    }
    const res = spawnSync(process.execPath, ["bin/plinth.mjs", ...args], {
      cwd: REPO_ROOT,
      env: { ...env, PLINTH_DATA_DIR: dir, LOG_LEVEL: "silent" },
      encoding: "utf8",
      timeout: 120_000,
    });
    assert.equal(res.status, 0, `plinth ${args.join(" ")} failed: ${res.stderr}${res.stdout}`);
    return res.stdout;
  }
  const keyLines = (out: string) => out.split("\n").filter((l) => /^sig_/.test(l));

  it("rotate prints the new kid; list shows it signing and the first key still published", () => {
    // the first run creates the data dir, its master key and the first signing key, then rotates
    const out = plinth("keys", "rotate");
    const kid = /new signing key (sig_[0-9a-z]{26}) is now signing tokens/.exec(out)?.[1];
    assert.ok(kid, out);
    const firstKid = /previous key (sig_[0-9a-z]{26}) stays in the JWKS/.exec(out)?.[1];
    assert.ok(firstKid, out);
    assert.notEqual(kid, firstKid);

    const lines = keyLines(plinth("keys", "list"));
    assert.equal(lines.length, 2, lines.join("\n"));
    const signing = lines.filter((l) => /\ssigning$/.test(l));
    const published = lines.filter((l) => /\spublished until \S+$/.test(l));
    assert.equal(signing.length, 1);
    assert.equal(published.length, 1);
    assert.ok(signing[0].startsWith(`${kid} `));
    assert.ok(published[0].startsWith(`${firstKid} `));

    assert.equal(statSync(join(dir, "master.key")).mode & 0o777, 0o600);
  });
});
