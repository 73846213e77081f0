import { randomUUID } from "node:crypto";
import { generateKeyPair, exportJWK, importJWK, jwtVerify, SignJWT, errors as joseErrors, type JWK, type JWTPayload, type CryptoKey } from "jose";
import { and, asc, desc, isNull, lte } from "drizzle-orm";
import type { Database, Executor } from "../../db/client.ts";
import { signingKeys } from "../../db/schema/index.ts";
import { createKms, type Envelope, type Kms } from "../../kms/kms.ts";
import type { Clock } from "../../lib/clock.ts";
import { newId } from "../../lib/ids.ts";
import { convertLegacySigningKeys, openLegacySealed } from "./signing-keys.legacy.ts";

export interface JwtSettings {
  issuer: string;
  audience: string;
  /** The alg of keys made from now on (PLINTH_JWT_ALG, ES256 by default); each existing key keeps its own. */
  alg: "EdDSA" | "ES256";
}

export interface AccessClaims extends JWTPayload {
  sub: string;
  sid?: string;
}

export type VerifyResult =
  | { ok: true; claims: AccessClaims }
  | { ok: false; reason: "malformed" | "expired" | "not_yet_valid" | "bad_signature" | "unknown_key" | "bad_claims" };

interface LoadedKey {
  kid: string;
  alg: string;
  publicJwk: JWK;
  publicKey: CryptoKey;
  privateKey: CryptoKey;
  supersededAt: Date | null;
}

/**
 * The longest life of a token issued by the token endpoint (client credentials, token exchange): a superseded key
 * stays published at least this long, so such a token verifies until it expires.
 */
export const MAX_ISSUED_TTL_SECONDS = 3600;

/**
 * Every instance reloads its keys at least this often (serve's timer calls `reload`), and the retirement job runs
 * this often, once across all instances (a job schedule: deps.ts).
 */
export const KEY_RELOAD_INTERVAL_MS = 600_000;

/**
 * Bounded cache of tokens whose signature already checked out; `exp` is re-checked. Looked up by the token's last
 * characters (~90 random bits of its signature: a short key hashes in a fraction of the time a whole token or its
 * SHA-256 takes) and confirmed by comparing the whole token, so anything else ending alike is a miss, verified afresh.
 */
const VERIFIED_CACHE_MAX = 50_000;
const CACHE_KEY_CHARS = 16;

/** A signing key's private JWK is encrypted with its key id as the associated data: moved to another row, it fails. */
const privateAad = (kid: string) => `signing_key:${kid}`;

type SigningKeyRow = typeof signingKeys.$inferSelect;

function envelopeOf(row: SigningKeyRow): Envelope {
  if (row.ciphertext === null || row.nonce === null || row.wrappedKey === null || row.kekVersion === null) {
    throw new Error(`signing key ${row.id} holds no encrypted private key`);
  }
  return { ciphertext: row.ciphertext, nonce: row.nonce, wrappedKey: row.wrappedKey, kekVersion: row.kekVersion };
}

/** The private JWK of a row, decrypted through the KMS's platform tier. */
async function openPrivateJwk(ex: Executor, kms: Pick<Kms, "decryptPlatform">, row: SigningKeyRow): Promise<JWK> {
  const raw = await kms.decryptPlatform(ex, envelopeOf(row), privateAad(row.id));
  try {
    return JSON.parse(raw.toString("utf8")) as JWK;
  } finally {
    raw.fill(0);
  }
}

/**
 * Token-signing keys: generated on first boot, private halves encrypted through the KMS layer's platform tier (the
 * one way Plinth encrypts at rest), published at the JWKS endpoint until every token they signed has expired.
 * Verification caches results so the hot path skips the signature check for a token it has seen. A key signs and
 * verifies with the alg it was made with, so changing PLINTH_JWT_ALG (or upgrading past the EdDSA default) breaks no
 * token: the new alg arrives with the next rotation.
 */
export function createSigningKeys(deps: {
  db: Database;
  masterKey: Buffer;
  /** PLINTH_MASTER_KEY_PREVIOUS: opens platform KEKs not yet re-wrapped by a root key rotation (and legacy seals). */
  previousMasterKeys?: readonly Buffer[];
  clock: Clock;
  jwt: JwtSettings;
  accessTtlSeconds: number;
  kms?: Pick<Kms, "encryptPlatform" | "decryptPlatform">;
}) {
  const { db, clock, jwt } = deps;
  const kms = deps.kms ?? createKms({ masterKey: deps.masterKey, previousMasterKeys: deps.previousMasterKeys, clock });
  const masterKeys = [deps.masterKey, ...(deps.previousMasterKeys ?? [])];
  let keys: LoadedKey[] = [];
  let byKid = new Map<string, LoadedKey>();
  let lastReload = 0;
  const verified = new Map<string, { token: string; claims: AccessClaims; kid: string }>();

  async function load(): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const read = await db.read(async (r) => {
        const rows = await r.select().from(signingKeys).where(isNull(signingKeys.retiredAt)).orderBy(desc(signingKeys.createdAt));
        if (rows.some((row) => row.privateJwkSealed !== null)) return undefined;
        const opened: { row: SigningKeyRow; privateJwk: JWK }[] = [];
        for (const row of rows) opened.push({ row, privateJwk: await openPrivateJwk(r, kms, row) });
        return opened;
      });
      if (!read) {
        // a key sealed the old way (by a version before 0020): convert it, then read again
        if (attempt > 0) throw new Error("signing keys sealed the old way remain after their conversion");
        await convertLegacySigningKeys(db, kms, masterKeys);
        continue;
      }
      const loaded: LoadedKey[] = [];
      for (const { row, privateJwk } of read) {
        loaded.push({
          kid: row.id,
          alg: row.alg,
          publicJwk: row.publicJwk as JWK,
          publicKey: (await importJWK(row.publicJwk as JWK, row.alg)) as CryptoKey,
          privateKey: (await importJWK(privateJwk, row.alg)) as CryptoKey,
          supersededAt: row.supersededAt,
        });
      }
      keys = loaded;
      byKid = new Map(loaded.map((k) => [k.kid, k]));
      lastReload = Date.now();
      return;
    }
  }

  async function createKey(): Promise<string> {
    const kid = newId("signingKey");
    // ES256 is P-256 by definition; EdDSA needs its curve named
    const { publicKey, privateKey } = await generateKeyPair(jwt.alg, { extractable: true, crv: jwt.alg === "EdDSA" ? "Ed25519" : undefined });
    const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: jwt.alg, use: "sig" };
    const privateJwk = await exportJWK(privateKey);
    const now = clock.now();
    const retireAfter = new Date(now.getTime() + publishedForMs());
    await db.tx({}, async (tx) => {
      await tx
        .update(signingKeys)
        .set({ supersededAt: now, retireAfter })
        .where(and(isNull(signingKeys.supersededAt), isNull(signingKeys.retiredAt)));
      const envelope = await kms.encryptPlatform(tx, Buffer.from(JSON.stringify(privateJwk)), privateAad(kid));
      await tx.insert(signingKeys).values({ id: kid, alg: jwt.alg, publicJwk, ...envelope, createdAt: now });
    });
    return kid;
  }

  /**
   * How long a superseded key stays published: another instance may keep signing with it until its next scheduled
   * key reload (KEY_RELOAD_INTERVAL_MS), and those tokens live one access-token lifetime (or an issued token's, up to
   * MAX_ISSUED_TTL_SECONDS), plus a minute of clock skew.
   */
  function publishedForMs(): number {
    return KEY_RELOAD_INTERVAL_MS + (Math.max(deps.accessTtlSeconds, MAX_ISSUED_TTL_SECONDS) + 60) * 1000;
  }

  function current(): LoadedKey {
    const k = keys.find((x) => x.supersededAt === null);
    if (!k) throw new Error("no active signing key: call ensureActiveKey() at boot");
    return k;
  }

  /**
   * The verdict on a token this instance verified before, with no signature work: the request spine's fast path.
   * undefined when the token must go through `verify` (never seen, evicted, or its key no longer published).
   */
  function verifyCached(token: string): VerifyResult | undefined {
    const cacheKey = token.slice(-CACHE_KEY_CHARS);
    const hit = verified.get(cacheKey);
    if (!hit || hit.token !== token) return undefined;
    // a hit counts only while its key is still published; a retired key's tokens are checked afresh (and refused)
    if (!byKid.has(hit.kid)) {
      verified.delete(cacheKey);
      return undefined;
    }
    if (typeof hit.claims.exp === "number" && hit.claims.exp > clock.now().getTime() / 1000) return { ok: true, claims: hit.claims };
    verified.delete(cacheKey);
    return { ok: false, reason: "expired" };
  }

  return {
    /**
     * Loads keys (converting any sealed the old way: convertLegacySigningKeys); creates the first one on a new
     * database. Boot calls it.
     */
    async ensureActiveKey(): Promise<{ created: boolean }> {
      await convertLegacySigningKeys(db, kms, masterKeys);
      await load();
      if (keys.some((k) => k.supersededAt === null)) return { created: false };
      await createKey();
      await load();
      return { created: true };
    },

    /** Adds a new signing key; the previous one stays published until its tokens have expired. */
    async rotate(): Promise<{ kid: string; previous: string[] }> {
      await load();
      const previous = keys.filter((k) => k.supersededAt === null).map((k) => k.kid);
      const kid = await createKey();
      await load();
      return { kid, previous };
    },

    /**
     * `plinth doctor`'s check, which writes nothing: how many unretired keys there are, how many of them still wait
     * for the conversion at boot, and that every one opens (through the KMS, or the old way for those waiting).
     * Throws the first that does not.
     */
    async check(): Promise<{ keys: number; legacy: number }> {
      return db.read(async (r) => {
        const rows = await r.select().from(signingKeys).where(isNull(signingKeys.retiredAt));
        let legacy = 0;
        for (const row of rows) {
          if (row.privateJwkSealed === null) await openPrivateJwk(r, kms, row);
          else {
            openLegacySealed(masterKeys, row.id, row.privateJwkSealed).fill(0);
            legacy++;
          }
        }
        return { keys: rows.length, legacy };
      });
    },

    /** Reads the keys again: how an instance picks up a key rotated, or a key retired, elsewhere. */
    reload: () => load(),

    /** Retires superseded keys past their retire time; returns their kids. The scheduled job `keys.retire` calls it. */
    async retireExpired(): Promise<string[]> {
      const now = clock.now();
      const rows = await db.tx({}, (tx) =>
        tx
          .update(signingKeys)
          .set({ retiredAt: now })
          .where(and(isNull(signingKeys.retiredAt), lte(signingKeys.retireAfter, now)))
          .returning({ id: signingKeys.id }),
      );
      // reload even when another instance did the retiring: this periodic call is how a running server picks up a
      // key rotated elsewhere (`plinth keys rotate`) and drops keys retired elsewhere
      await load();
      return rows.map((r) => r.id);
    },

    async list() {
      return db.read((r) =>
        r
          .select({
            kid: signingKeys.id,
            alg: signingKeys.alg,
            createdAt: signingKeys.createdAt,
            supersededAt: signingKeys.supersededAt,
            retireAfter: signingKeys.retireAfter,
            retiredAt: signingKeys.retiredAt,
          })
          .from(signingKeys)
          .orderBy(asc(signingKeys.createdAt)),
      );
    },

    jwks(): { keys: JWK[] } {
      const now = clock.now();
      return {
        keys: keys.filter((k) => !k.supersededAt || k.supersededAt.getTime() + publishedForMs() > now.getTime()).map((k) => k.publicJwk),
      };
    },

    /** Signs an access token for Plinth's audience, or for `audience` (another service: Plinth then refuses it). */
    async sign(claims: Omit<AccessClaims, "iss" | "aud" | "iat" | "exp" | "jti">, ttlSeconds: number, audience?: string): Promise<string> {
      const key = current();
      const now = Math.floor(clock.now().getTime() / 1000);
      return new SignJWT({ ...claims })
        .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: "at+jwt" })
        .setIssuer(jwt.issuer)
        .setAudience(audience ?? jwt.audience)
        .setIssuedAt(now)
        .setNotBefore(now)
        .setExpirationTime(now + ttlSeconds)
        .setJti(randomUUID())
        .sign(key.privateKey);
    },

    verifyCached,

    async verify(token: string): Promise<VerifyResult> {
      const cached = verifyCached(token);
      if (cached) return cached;
      const dot = token.indexOf(".");
      if (dot < 1 || token.length > 8192) return { ok: false, reason: "malformed" };
      let header: { kid?: unknown; alg?: unknown };
      try {
        header = JSON.parse(Buffer.from(token.slice(0, dot), "base64url").toString("utf8"));
      } catch {
        return { ok: false, reason: "malformed" };
      }
      if (typeof header.kid !== "string") return { ok: false, reason: "unknown_key" };
      let key = byKid.get(header.kid);
      // Another instance may have rotated: reload at most every 10 s when an unknown kid appears.
      if (!key && Date.now() - lastReload > 10_000) {
        await load();
        key = byKid.get(header.kid);
      }
      if (!key) return { ok: false, reason: "unknown_key" };
      try {
        const { payload } = await jwtVerify(token, key.publicKey, {
          algorithms: [key.alg],
          issuer: jwt.issuer,
          audience: jwt.audience,
          currentDate: clock.now(),
          requiredClaims: ["sub", "exp", "iat", "jti"],
        });
        const claims = payload as AccessClaims;
        if (verified.size >= VERIFIED_CACHE_MAX) verified.delete(verified.keys().next().value as string);
        verified.set(token.slice(-CACHE_KEY_CHARS), { token, claims, kid: key.kid });
        return { ok: true, claims };
      } catch (e) {
        if (e instanceof joseErrors.JWTExpired) return { ok: false, reason: "expired" };
        if (e instanceof joseErrors.JWTClaimValidationFailed) {
          return { ok: false, reason: e.claim === "nbf" || e.claim === "iat" ? "not_yet_valid" : "bad_claims" };
        }
        if (e instanceof joseErrors.JWSSignatureVerificationFailed) return { ok: false, reason: "bad_signature" };
        return { ok: false, reason: "malformed" };
      }
    },

    /** Drops cached verifications (tests, and after a key is revoked outright). */
    forgetVerified(): void {
      verified.clear();
    },
  };
}

export type SigningKeys = ReturnType<typeof createSigningKeys>;

/** @deprecated see signing-keys.legacy.ts */
