import { Type } from "typebox";
import { NullableTimestamp, OrgIdParams, Timestamp } from "../../http/schemas.ts";
import { idPattern } from "../../lib/ids.ts";
import { Page, pageQuery } from "../../lib/pagination.ts";
import type { LeaseRow } from "./leases.repo.ts";
import { SecretId } from "./vault.schemas.ts";

/** At most this many secrets in one lease (ids and names together). */
export const MAX_LEASE_SECRETS = 100;
export const DEFAULT_TTL_SECONDS = 300;
export const MAX_TTL_SECONDS = 3600;
export const DEFAULT_MAX_TTL_SECONDS = 3600;
export const MAX_MAX_TTL_SECONDS = 86_400;
export const LEASE_ID_PATTERN = idPattern("secretLease");

const Ttl = (description: string) => Type.Integer({ minimum: 5, maximum: MAX_TTL_SECONDS, description });
const SecretName = Type.String({ minLength: 1, maxLength: 128, pattern: "^[A-Z_][A-Z0-9_]*$", description: "A secret's name" });
const HolderType = Type.Union([Type.Literal("user"), Type.Literal("service_account")], {
  description: "user (a member) or service_account",
});

export const LeaseParams = Type.Object(
  { orgId: OrgIdParams.properties.orgId, leaseId: Type.String({ pattern: LEASE_ID_PATTERN, description: "sls_… id" }) },
  { additionalProperties: false },
);

export const IssueLeaseBody = Type.Object(
  {
    secret_ids: Type.Optional(
      Type.Array(SecretId, { minItems: 1, maxItems: MAX_LEASE_SECRETS, uniqueItems: true, description: "The secrets to lease, by id (sec_…)" }),
    ),
    names: Type.Optional(
      Type.Array(SecretName, {
        minItems: 1,
        maxItems: MAX_LEASE_SECRETS,
        uniqueItems: true,
        description: "The secrets to lease, by name: in team_id's team first, then the organization's (a name found in neither answers 422)",
      }),
    ),
    team_id: Type.Optional(Type.String({ pattern: idPattern("team"), description: "team_… id: the team whose secrets names are looked up in first" })),
    ttl_seconds: Type.Optional(Ttl(`How long the lease lasts before it must be renewed (5–${MAX_TTL_SECONDS} s; default ${DEFAULT_TTL_SECONDS})`)),
    max_ttl_seconds: Type.Optional(
      Type.Integer({
        minimum: 5,
        maximum: MAX_MAX_TTL_SECONDS,
        description: `The renewal cap from now: no renewal extends the lease past it (at least ttl_seconds, at most ${MAX_MAX_TTL_SECONDS} s; default ${DEFAULT_MAX_TTL_SECONDS})`,
      }),
    ),
    holder: Type.Optional(
      Type.Object(
        {
          type: HolderType,
          id: Type.String({ pattern: `^(usr|sa)_[0-9a-hjkmnp-tv-z]{26}$`, description: "The member's usr_… or the service account's sa_… id" }),
        },
        {
          additionalProperties: false,
          description: "Who alone may use the lease (default: you, the credential you call with). It must itself be able to read every secret.",
        },
      ),
    ),
  },
  { additionalProperties: false, description: "At least one secret, by secret_ids or names (at most 100 together)" },
);

export const RenewLeaseBody = Type.Object(
  { ttl_seconds: Type.Optional(Ttl(`How long from now the lease lasts (default ${DEFAULT_TTL_SECONDS} s), never past its max_expires_at`)) },
  { additionalProperties: false },
);

export const ListLeasesQuery = Type.Object(pageQuery, { additionalProperties: false });

export const Lease = Type.Object(
  {
    id: Type.String({ description: "sls_… id" }),
    holder: Type.Object(
      {
        type: Type.String({ description: "user, api_key, service_account or service" }),
        id: Type.String({ description: "Its id (an API key: key_…)" }),
      },
      { description: "The principal that alone uses the lease" },
    ),
    secret_ids: Type.Array(Type.String(), { description: "The leased secrets" }),
    status: Type.Union([Type.Literal("active"), Type.Literal("expired"), Type.Literal("revoked")], { description: "Whether it still serves values" }),
    created_by: Type.Union([Type.String(), Type.Null()], { description: "Who issued it" }),
    created_at: Timestamp("When it was issued"),
    expires_at: Timestamp("When it stops serving unless renewed"),
    max_expires_at: Timestamp("The renewal cap"),
    revoked_at: NullableTimestamp("When it was revoked"),
    revoked_by: Type.Union([Type.String(), Type.Null()], { description: "Who revoked it" }),
    last_used_at: NullableTimestamp("When its values were last read"),
    use_count: Type.Integer({ description: "How many times its values were read" }),
  },
  { description: "A lease of secrets to one principal: ids and times, never values" },
);
export const LeasePage = Page(Lease);
export const IssuedLease = Type.Object(
  {
    ...Lease.properties,
    secrets: Type.Array(
      Type.Object({
        id: Type.String({ description: "sec_… id" }),
        name: Type.String({ description: "Its name" }),
        version: Type.Integer({ description: "Its current version" }),
      }),
      { description: "The leased secrets as they are now (never their values)" },
    ),
  },
  { description: "A new lease" },
);
export const LeaseValues = Type.Object(
  {
    data: Type.Array(
      Type.Object({
        secret_id: Type.String({ description: "sec_… id" }),
        name: Type.String({ description: "Its name" }),
        version: Type.Integer({ description: "The version served (its current one)" }),
        value: Type.String({ description: "The value" }),
      }),
      { description: "Each leased secret's current value, in the lease's order" },
    ),
  },
  { description: "The lease's values (answered with Cache-Control: no-store)" },
);

export function leaseStatus(r: LeaseRow, now: Date): "active" | "expired" | "revoked" {
  return r.revokedAt ? "revoked" : r.expiresAt.getTime() <= now.getTime() ? "expired" : "active";
}

export function toLease(now: Date) {
  return (r: LeaseRow) => ({
    id: r.id,
    holder: { type: r.holderType, id: r.holderId },
    secret_ids: r.secretIds,
    status: leaseStatus(r, now),
    created_by: r.createdBy,
    created_at: r.createdAt.toISOString(),
    expires_at: r.expiresAt.toISOString(),
    max_expires_at: r.maxExpiresAt.toISOString(),
    revoked_at: r.revokedAt?.toISOString() ?? null,
    revoked_by: r.revokedBy,
    last_used_at: r.lastUsedAt?.toISOString() ?? null,
    use_count: r.useCount,
  });
}
