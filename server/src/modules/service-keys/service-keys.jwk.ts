import { importJWK, type JWK } from "jose";
import { platformError } from "../../lib/errors.ts";
import { isId } from "../../lib/ids.ts";

/** The signature algorithms a registered key may use, each tied to one key type (and curve). */
export const SERVICE_KEY_ALGS = ["EdDSA", "Ed25519", "ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"] as const;
export type ServiceKeyAlg = (typeof SERVICE_KEY_ALGS)[number];

const CURVE_OF: Partial<Record<ServiceKeyAlg, string>> = { EdDSA: "Ed25519", Ed25519: "Ed25519", ES256: "P-256", ES384: "P-384", ES512: "P-521" };
const KTY_OF = (alg: ServiceKeyAlg): "OKP" | "EC" | "RSA" => (alg.startsWith("E") ? (alg.startsWith("ES") ? "EC" : "OKP") : "RSA");

/** Members that carry private or secret key material (RFC 7518 §6.2.2, §6.3.2, §6.4.1): never accepted, never stored. */
export const PRIVATE_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] as const;

/** The public members each key type has (RFC 7518 §6, RFC 8037 §2). */
const PUBLIC_MEMBERS = { OKP: ["crv", "x"], EC: ["crv", "x", "y"], RSA: ["n", "e"] } as const;
const ALL_KEY_MEMBERS = ["crv", "x", "y", "n", "e"] as const;

/** RSA keys shorter than this are refused (NIST SP 800-131A; jose refuses them too). */
const MIN_RSA_BITS = 2048;

/** The JWK of a registration as stored and published: public members only, with kid, alg and use. */
export interface PublicJwk extends JWK {
  kty: "OKP" | "EC" | "RSA";
  kid: string;
  alg: ServiceKeyAlg;
  use: "sig";
}

export interface JwkInput {
  jwk: Record<string, unknown>;
  kid?: string;
  alg?: ServiceKeyAlg;
}

const invalid = (field: string, detail: string) => platformError("VALIDATION_FAILED", detail, { field });

/**
 * Refuses private or symmetric key material before schema validation, so the answer says what is wrong ("this is a
 * private key") rather than "jwk.d is not a known field". Whoever sent it should treat that key as exposed.
 */
export function refusePrivateKeyMaterial(body: unknown): void {
  if (!body || typeof body !== "object" || Array.isArray(body)) return;
  const jwk = (body as { jwk?: unknown }).jwk;
  if (!jwk || typeof jwk !== "object" || Array.isArray(jwk)) return;
  const j = jwk as Record<string, unknown>;
  if (j.kty === "oct") {
    throw invalid("jwk.kty", "jwk is a symmetric key (kty oct): a shared secret is not a public key and cannot be registered; use an OKP, EC or RSA key pair.");
  }
  const member = PRIVATE_MEMBERS.find((m) => Object.hasOwn(j, m));
  if (member) {
    throw invalid(
      `jwk.${member}`,
      `jwk carries private key material (${member}): register the public key only (kty, crv, x, y or n, e). Treat the private key you sent as exposed and make a new one.`,
    );
  }
}

/**
 * Checks a public JWK as sent (after schema validation): its kid and alg (here or in the JWK, agreeing), the alg
 * matching the key type and curve, the members of that key type and no other, an RSA modulus of at least 2048 bits,
 * and that the key imports (points on the curve). Answers 400 naming the field; returns the key as it is stored.
 */
export async function toPublicJwk(input: JwkInput): Promise<PublicJwk> {
  refusePrivateKeyMaterial({ jwk: input.jwk });
  const j = input.jwk;
  const kty = j.kty as PublicJwk["kty"];
  const jwkKid = typeof j.kid === "string" ? j.kid : undefined;
  if (input.kid !== undefined && jwkKid !== undefined && input.kid !== jwkKid)
    throw invalid("kid", `kid ${input.kid} differs from jwk.kid ${jwkKid}: send one, or the same in both.`);
  const kid = input.kid ?? jwkKid;
  if (kid === undefined) throw invalid("kid", "kid is required (here or as jwk.kid): your tokens name it in their header, and Plinth finds the key by it.");
  // Plinth's own signing keys are named sig_…: a service key of that name could never be reached
  if (isId("signingKey", kid)) throw invalid("kid", "kid names a Plinth signing key (sig_…); choose another.");

  const jwkAlg = typeof j.alg === "string" ? (j.alg as ServiceKeyAlg) : undefined;
  if (input.alg !== undefined && jwkAlg !== undefined && input.alg !== jwkAlg)
    throw invalid("alg", `alg ${input.alg} differs from jwk.alg ${jwkAlg}: send one, or the same in both.`);
  const alg = input.alg ?? jwkAlg;
  if (alg === undefined)
    throw invalid("alg", `alg is required (here or as jwk.alg): one of ${SERVICE_KEY_ALGS.join(", ")}. Tokens signed with any other are refused.`);

  const wantKty = KTY_OF(alg);
  const wantCrv = CURVE_OF[alg];
  if (kty !== wantKty || (wantCrv !== undefined && j.crv !== wantCrv)) {
    const have = `${kty}${typeof j.crv === "string" ? ` ${j.crv}` : ""}`;
    throw invalid("alg", `alg ${alg} needs ${wantKty === "RSA" ? "an RSA key" : `an ${wantKty} key on ${wantCrv}`}; jwk is ${have}.`);
  }
  const members = PUBLIC_MEMBERS[kty];
  for (const m of members) if (j[m] === undefined) throw invalid(`jwk.${m}`, `jwk.${m} is required for a ${kty} key.`);
  for (const m of ALL_KEY_MEMBERS) {
    if (j[m] !== undefined && !(members as readonly string[]).includes(m)) throw invalid(`jwk.${m}`, `jwk.${m} is not a member of a ${kty} key.`);
  }
  if (kty === "RSA" && Buffer.from(String(j.n), "base64url").length * 8 < MIN_RSA_BITS) {
    throw invalid("jwk.n", `The RSA modulus is shorter than ${MIN_RSA_BITS} bits.`);
  }

  const key = Object.fromEntries(members.map((m) => [m, String(j[m])]));
  const publicJwk: PublicJwk = { kty, ...key, kid, alg, use: "sig" };
  try {
    await importJWK({ ...key, kty }, alg);
  } catch {
    const why = kty === "RSA" ? "its modulus or exponent is malformed" : `its coordinates are malformed or not a point on ${wantCrv}`;
    throw invalid("jwk", `jwk is not a valid ${alg} public key: ${why}.`);
  }
  return publicJwk;
}
