import { Type, type Static } from "typebox";
import { NullableTimestamp, OrgIdParams, Timestamp } from "../../http/schemas.ts";
import { Page, pageQuery } from "../../lib/pagination.ts";
import { idPattern } from "../../lib/ids.ts";
import type { ServiceKeyRow } from "./service-keys.repo.ts";
import { SERVICE_KEY_ALGS } from "./service-keys.jwk.ts";

export const ServiceName = Type.String({
  minLength: 1,
  maxLength: 63,
  pattern: "^[a-z0-9][a-z0-9._-]{0,62}$",
  description: "The service's name: lower-case letters, digits, . _ -. Its tokens carry it as iss and sub",
});

const B64u = (maxLength: number, description: string) => Type.String({ minLength: 1, maxLength, pattern: "^[A-Za-z0-9_-]+$", description });
const KID_DESCRIPTION = "Key id, unique across the registry and never reused: the kid of the tokens' header";
const ALG_DESCRIPTION =
  "The one algorithm tokens signed with this key may use: EdDSA/Ed25519 (OKP Ed25519), ES256/384/512 (EC P-256/384/521), RS*/PS* (RSA, at least 2048 bits)";
const Kid = (description = KID_DESCRIPTION) => Type.String({ minLength: 1, maxLength: 128, pattern: "^[A-Za-z0-9._~:+/=-]+$", description });
const Alg = (description = ALG_DESCRIPTION) => Type.Enum([...SERVICE_KEY_ALGS], { description });

/** A public JWK as sent. Private members (d, p, q, dp, dq, qi, oth, k) and symmetric keys are refused by name. */
export const PublicJwkInput = Type.Object(
  {
    kty: Type.Enum(["OKP", "EC", "RSA"], { description: "Key type" }),
    crv: Type.Optional(Type.Enum(["Ed25519", "P-256", "P-384", "P-521"], { description: "Curve (OKP and EC keys)" })),
    x: Type.Optional(B64u(100, "x coordinate (OKP and EC keys)")),
    y: Type.Optional(B64u(100, "y coordinate (EC keys)")),
    n: Type.Optional(B64u(1400, "Modulus (RSA keys, 2048–8192 bits)")),
    e: Type.Optional(B64u(12, "Exponent (RSA keys)")),
    kid: Type.Optional(Kid()),
    alg: Type.Optional(Alg()),
    use: Type.Optional(Type.Enum(["sig"], { description: "sig: the key verifies signatures" })),
    key_ops: Type.Optional(Type.Array(Type.Enum(["verify"]), { maxItems: 1, description: "verify, if given" })),
    ext: Type.Optional(Type.Boolean({ description: "Ignored (WebCrypto exports carry it)" })),
  },
  { additionalProperties: false, description: "The service's PUBLIC key as a JWK (RFC 7517): never its private key" },
);

const RoleName = Type.String({
  minLength: 2,
  maxLength: 40,
  pattern: "^[a-z][a-z0-9_-]{1,39}$",
  description: "A built-in role or (for an organization's key) a custom role's name",
});
const Roles = Type.Array(RoleName, {
  maxItems: 20,
  uniqueItems: true,
  description: "What the service may do: the roles' permissions (none: it is only published, for other services to verify)",
});
const Description = Type.String({ maxLength: 500, description: "What the service is, for people" });

export const RegisterServiceKeyBody = Type.Object(
  {
    service: ServiceName,
    jwk: PublicJwkInput,
    kid: Type.Optional(Kid(`${KID_DESCRIPTION} (or give it as jwk.kid; the same if both)`)),
    alg: Type.Optional(Alg(`${ALG_DESCRIPTION} (or give it as jwk.alg; the same if both)`)),
    roles: Type.Optional(Roles),
    description: Type.Optional(Description),
    expires_at: Type.Optional(Timestamp("The key stops working (and is no longer published) at this time; in the future")),
  },
  { additionalProperties: false },
);
export type RegisterServiceKeyBody = Static<typeof RegisterServiceKeyBody>;

export const UpdateServiceKeyBody = Type.Object(
  { description: Type.Optional(Description), roles: Type.Optional(Roles) },
  { additionalProperties: false, minProperties: 1 },
);
export type UpdateServiceKeyBody = Static<typeof UpdateServiceKeyBody>;

const ServiceKeyId = Type.String({ pattern: idPattern("serviceKey"), description: "svk_… id of the registration" });
export const OrgServiceKeyParams = Type.Object({ orgId: OrgIdParams.properties.orgId, serviceKeyId: ServiceKeyId }, { additionalProperties: false });
export const PlatformServiceKeyParams = Type.Object({ serviceKeyId: ServiceKeyId }, { additionalProperties: false });

export const ListServiceKeysQuery = Type.Object(
  {
    service: Type.Optional(ServiceName),
    include_revoked: Type.Optional(Type.Boolean({ default: false, description: "List revoked registrations too" })),
    ...pageQuery,
  },
  { additionalProperties: false },
);

export const JwksQuery = Type.Object(
  {
    org: Type.Optional(Type.String({ pattern: idPattern("org"), description: "org_… id: that organization's keys instead of the platform-wide ones" })),
    service: Type.Optional(ServiceName),
  },
  { additionalProperties: false },
);

const PublishedJwk = Type.Object(
  {
    kty: Type.String({ description: "OKP, EC or RSA" }),
    kid: Type.String({ description: "Key id, as in the token header" }),
    alg: Type.String({ description: "The one algorithm its tokens use" }),
    use: Type.String({ description: "sig" }),
    crv: Type.Optional(Type.String()),
    x: Type.Optional(Type.String()),
    y: Type.Optional(Type.String()),
    n: Type.Optional(Type.String()),
    e: Type.Optional(Type.String()),
  },
  { description: "A registered service's public key" },
);
export const ServiceJwks = Type.Object({ keys: Type.Array(PublishedJwk) }, { description: "JSON Web Key Set (RFC 7517)" });

export const ServiceKey = Type.Object(
  {
    id: Type.String({ description: "svk_… id" }),
    org_id: Type.Union([Type.String(), Type.Null()], { description: "The organization it acts in; null for a platform-wide registration" }),
    service: Type.String({ description: "The service: its tokens' iss and sub" }),
    kid: Type.String(),
    alg: Type.String(),
    jwk: PublishedJwk,
    roles: Type.Array(Type.String()),
    description: Type.String(),
    state: Type.Union([Type.Literal("active"), Type.Literal("expired"), Type.Literal("revoked")], { description: "Whether its tokens are accepted now" }),
    expires_at: NullableTimestamp("Not accepted from"),
    created_by: Type.Union([Type.String(), Type.Null()], { description: "Who registered it" }),
    created_at: Timestamp("Registered"),
    last_used_at: NullableTimestamp("Last accepted token (written in batches, a few seconds behind)"),
    revoked_at: NullableTimestamp("When it was revoked"),
    revoked_by: Type.Union([Type.String(), Type.Null()], { description: "Who revoked it" }),
  },
  { description: "A registered service key (public key only)" },
);
export const ServiceKeyPage = Page(ServiceKey);

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function toServiceKey(row: ServiceKeyRow, now: Date) {
  const state = row.revokedAt ? ("revoked" as const) : row.expiresAt && row.expiresAt.getTime() <= now.getTime() ? ("expired" as const) : ("active" as const);
  return {
    id: row.id,
    org_id: row.orgId,
    service: row.service,
    kid: row.kid,
    alg: row.alg,
    jwk: row.publicJwk as Static<typeof PublishedJwk>,
    roles: row.roles,
    description: row.description,
    state,
    expires_at: iso(row.expiresAt),
    created_by: row.createdBy,
    created_at: row.createdAt.toISOString(),
    last_used_at: iso(row.lastUsedAt),
    revoked_at: iso(row.revokedAt),
    revoked_by: row.revokedBy,
  };
}
