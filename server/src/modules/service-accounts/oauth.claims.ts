import { OAuthError } from "./oauth.errors.ts";

/**
 * The one claim that holds what the caller asked for in `claims`: an object, for the receiving service's information
 * only. Caller-supplied claims never sit at the top level, where a service (or Plinth) would read `email`,
 * `email_verified`, `amr`, `acr`, `admin`, `groups` or `tenant_id` as facts Plinth vouches for.
 */
export const EXTRA_CLAIMS_CLAIM = "ext";
/**
 * Names refused inside `ext` too: the registered claims and those Plinth reads as identity or authority, so nothing in
 * it reads like them to a service that flattens it.
 */
export const RESERVED_CLAIMS = new Set([
  "iss",
  "sub",
  "aud",
  "exp",
  "nbf",
  "iat",
  "jti",
  "scope",
  "permissions",
  "roles",
  "org",
  "act",
  "may_act",
  "cnf",
  "sid",
  "client_id",
  "azp",
  "key_id",
]);
/** Refused at any depth: a receiving service that merges `ext` into an object would have its prototype polluted. */
const PROTOTYPE_NAMES = new Set(["__proto__", "constructor", "prototype"]);
const CLAIM_NAME = /^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$/;
const MAX_CLAIMS = 20;
const MAX_CLAIMS_BYTES = 2048;

/**
 * Refuses `__proto__`, `constructor` and `prototype` as member names anywhere in `value` (invalid_request naming it
 * and where it is; `path` is where `value` is, "" for a whole body).
 */
export function refusePrototypeNames(value: unknown, path: string): void {
  if (!value || typeof value !== "object") return;
  const array = Array.isArray(value);
  for (const [name, inner] of Object.entries(value)) {
    const at = array ? `${path}[${name}]` : path ? `${path}.${name}` : name;
    if (!array && PROTOTYPE_NAMES.has(name))
      throw new OAuthError("invalid_request", `The name ${name} is refused (at ${at}): it pollutes the prototype of objects it is merged into.`);
    refusePrototypeNames(inner, at);
  }
}

/** A token request's `claims` (an object, or its JSON text in a form), checked, as the one `ext` claim; {} without. */
export function extraClaimsOf(claims: string | object | undefined): { [EXTRA_CLAIMS_CLAIM]?: Record<string, unknown> } {
  if (claims === undefined) return {};
  let value: unknown = claims;
  if (typeof value === "string") {
    if (value.length > MAX_CLAIMS_BYTES) throw new OAuthError("invalid_request", `claims is over ${MAX_CLAIMS_BYTES} bytes.`);
    try {
      value = JSON.parse(value);
    } catch {
      throw new OAuthError("invalid_request", "claims must be a JSON object.");
    }
  }
  if (!value || typeof value !== "object" || Array.isArray(value)) throw new OAuthError("invalid_request", "claims must be a JSON object.");
  const entries = Object.entries(value);
  if (entries.length > MAX_CLAIMS) throw new OAuthError("invalid_request", `claims has more than ${MAX_CLAIMS} members.`);
  if (JSON.stringify(value).length > MAX_CLAIMS_BYTES) throw new OAuthError("invalid_request", `claims is over ${MAX_CLAIMS_BYTES} bytes.`);
  refusePrototypeNames(value, "claims");
  for (const [name] of entries) {
    if (RESERVED_CLAIMS.has(name))
      throw new OAuthError("invalid_request", `claims may not set ${name}: it names identity or authority, which only Plinth sets.`);
    if (!CLAIM_NAME.test(name))
      throw new OAuthError("invalid_request", `claims has a member name ${JSON.stringify(name.slice(0, 64))} that is not a plain identifier.`);
  }
  return entries.length ? { [EXTRA_CLAIMS_CLAIM]: value as Record<string, unknown> } : {};
}
