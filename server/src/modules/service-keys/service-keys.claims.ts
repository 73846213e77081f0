import { errors as joseErrors, jwtVerify, type importJWK, type JWTPayload } from "jose";
import { platformError, type AppError } from "../../lib/errors.ts";
import { isId } from "../../lib/ids.ts";

/** The longest a service token may live (exp − iat), and how old its iat may be. */
export const MAX_SERVICE_TOKEN_SECONDS = 3600;
/** Clock skew allowed between a service and Plinth. */
export const SERVICE_CLOCK_TOLERANCE_SECONDS = 30;

/** A refused service token: 401 INVALID_TOKEN with the reason (docs/service-keys.md lists them). */
export const refuse = (reason: string, detail: string): AppError => platformError("INVALID_TOKEN", detail, { extra: { reason } });

/** What a token is checked against: its registration's key, alg, service and org (null: platform-wide). */
export interface TokenKey {
  key: Awaited<ReturnType<typeof importJWK>>;
  alg: string;
  service: string;
  orgId: string | null;
}

/**
 * Verifies a service's self-signed token against its registered key: signed with the registration's one alg;
 * `iss` = `sub` = the service; `aud` Plinth's; `iat` and `exp`, at most an hour apart and `iat` at most an hour old
 * (30 s of skew); `org`, when present, an org id and (for an org's key) its own. Its `exp` and `org`, or the refusal.
 */
export async function verifyServiceToken(
  token: string,
  k: TokenKey,
  audience: string,
  now: Date,
): Promise<{ exp: number; org: string | undefined } | AppError> {
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, k.key, {
      algorithms: [k.alg],
      issuer: k.service,
      subject: k.service,
      audience,
      requiredClaims: ["exp", "iat"],
      maxTokenAge: MAX_SERVICE_TOKEN_SECONDS,
      clockTolerance: SERVICE_CLOCK_TOLERANCE_SECONDS,
      currentDate: now,
    }));
  } catch (e) {
    return joseRefusal(e, k, audience);
  }
  const exp = payload.exp as number;
  if (exp - (payload.iat as number) > MAX_SERVICE_TOKEN_SECONDS) {
    return refuse("lifetime_too_long", `A service token may live at most ${MAX_SERVICE_TOKEN_SECONDS} s: exp must be at most that long after iat.`);
  }
  const org = payload.org;
  if (org !== undefined && (typeof org !== "string" || !isId("org", org))) return refuse("bad_claims", "The token's org claim must be an org_… id.");
  if (org !== undefined && k.orgId !== null && org !== k.orgId) {
    return refuse("bad_claims", "The token's org claim names another organization than its key's: an organization's key acts in that organization only.");
  }
  return { exp, org };
}

/** Why jose refused a token, in words a service's developer can act on (the signature checked out before any claim). */
function joseRefusal(e: unknown, k: TokenKey, audience: string): AppError {
  if (e instanceof joseErrors.JWTExpired) {
    return e.claim === "iat"
      ? refuse("expired", `The token was issued more than ${MAX_SERVICE_TOKEN_SECONDS} s ago; sign a new one.`)
      : refuse("expired", "The token has expired; sign a new one.");
  }
  if (e instanceof joseErrors.JWTClaimValidationFailed) {
    if (e.claim === "nbf" || (e.claim === "iat" && e.reason !== "missing"))
      return refuse("not_yet_valid", `The token's ${e.claim} is in the future (check the service's clock).`);
    const want =
      e.claim === "aud" ? `must include ${audience}` : e.claim === "iss" || e.claim === "sub" ? `must be the key's service, ${k.service}` : "is required";
    return refuse("bad_claims", `The token's ${e.claim} claim ${e.reason === "missing" ? "is missing" : "is not accepted"}: it ${want}.`);
  }
  if (e instanceof joseErrors.JOSEAlgNotAllowed) return refuse("bad_algorithm", `This service key's tokens are signed with ${k.alg}, and no other algorithm.`);
  if (e instanceof joseErrors.JWSSignatureVerificationFailed)
    return refuse("bad_signature", "The token's signature does not verify with the service key its kid names.");
  return refuse("malformed", "The access token is not a well-formed JWT.");
}
