import { Type, type Static } from "typebox";
import { NullableTimestamp, OrgIdParams, Timestamp } from "../../http/schemas.ts";
import { Page, pageQuery } from "../../lib/pagination.ts";
import { ALL_PERMISSIONS } from "../access/permissions.ts";
import type { ApiKeyRow } from "./api-keys.repo.ts";
import { MAX_GRACE_SECONDS } from "./api-keys.service.ts";

export const KeyName = Type.String({
  minLength: 1,
  maxLength: 64,
  pattern: "^[A-Za-z0-9](?:[A-Za-z0-9 ._-]{0,62}[A-Za-z0-9._-])?$",
  description: "The key's name, unique among its owner's live keys: letters, digits, space, . _ -; no space at either end",
});

export const KeyParams = Type.Object(
  {
    orgId: OrgIdParams.properties.orgId,
    name: Type.String({
      minLength: 1,
      maxLength: 64,
      pattern: "^[A-Za-z0-9](?:[A-Za-z0-9 ._-]{0,62}[A-Za-z0-9._-])?$",
      description: "The key's key_… id, or its name (your own key of that name first, else the organization's only live one)",
    }),
  },
  { additionalProperties: false },
);

/** As custom roles are named (members/roles.routes.ts), or a built-in role. */
const RoleName = Type.String({ minLength: 2, maxLength: 40, pattern: "^[a-z][a-z0-9_-]{1,39}$", description: "A built-in role or a custom role's name" });
const Roles = Type.Array(RoleName, { maxItems: 20, uniqueItems: true, description: "Built-in or custom roles; the key holds their permissions" });
const Permissions = Type.Array(Type.Enum(ALL_PERMISSIONS, { description: "A permission of the catalog (GET /v1/permissions)" }), {
  maxItems: ALL_PERMISSIONS.length,
  uniqueItems: true,
  description: "Permissions beyond the roles'",
});

export const CreateKeyBody = Type.Object(
  {
    name: KeyName,
    roles: Type.Optional(Roles),
    permissions: Type.Optional(Permissions),
    inherit: Type.Optional(
      Type.Boolean({ description: "Act with the owner's current permissions (for your own key: owners and admins, signed in; no roles or permissions then)" }),
    ),
    not_before: Type.Optional(Timestamp("The key does not work before this time")),
    expires_at: Type.Optional(Timestamp("The key stops working at this time (in the future, after not_before)")),
    ip_allowlist: Type.Optional(
      Type.Array(Type.String({ minLength: 2, maxLength: 49, description: "An IPv4/IPv6 address or CIDR: 203.0.113.0/24, 2001:db8::/32" }), {
        maxItems: 50,
        description: "Addresses the key may be used from; empty or absent: anywhere",
      }),
    ),
    rate_limit_per_minute: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, description: "Requests per minute the key may make (429 beyond)" })),
  },
  { additionalProperties: false },
);
export type CreateKeyBody = Static<typeof CreateKeyBody>;

export const UpdateKeyBody = Type.Object({ name: KeyName }, { additionalProperties: false, minProperties: 1 });
export const PutRolesBody = Type.Object({ roles: Roles }, { additionalProperties: false });
export const RotateBody = Type.Object(
  {
    grace_seconds: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: MAX_GRACE_SECONDS,
        default: 0,
        description: "How long the old secret keeps working (0: stops at once; at most 7 days)",
      }),
    ),
  },
  { additionalProperties: false },
);
export const ListKeysQuery = Type.Object(
  {
    include_revoked: Type.Optional(Type.Boolean({ default: false, description: "List revoked keys too" })),
    ...pageQuery,
  },
  { additionalProperties: false },
);

export const ApiKey = Type.Object({
  id: Type.String({ description: "key_… id" }),
  name: Type.String(),
  prefix: Type.String({ description: "The secret's first characters (plk_live_ and 6 more), to tell keys apart; never the secret" }),
  owner: Type.Object({ type: Type.Union([Type.Literal("user"), Type.Literal("service_account")]), id: Type.String() }, { description: "Whose key it is" }),
  roles: Type.Array(Type.String()),
  permissions: Type.Array(Type.String()),
  inherit: Type.Boolean({ description: "Acts with its owner's current permissions" }),
  state: Type.Union([Type.Literal("active"), Type.Literal("not_yet_valid"), Type.Literal("expired"), Type.Literal("revoked")], {
    description: "Whether it works now",
  }),
  not_before: NullableTimestamp("Not valid before"),
  expires_at: NullableTimestamp("Not valid from"),
  ip_allowlist: Type.Array(Type.String()),
  rate_limit_per_minute: Type.Union([Type.Integer(), Type.Null()]),
  created_by: Type.Union([Type.String(), Type.Null()], { description: "The user or key that created it" }),
  created_at: Timestamp("Created"),
  updated_at: Timestamp("Last change"),
  last_used_at: NullableTimestamp("Last use (written in batches, a few seconds behind)"),
  usage_count: Type.Integer({ description: "Requests made with it (a few seconds behind)" }),
  revoked_at: NullableTimestamp("When it was revoked"),
  revoked_reason: Type.Union([Type.String(), Type.Null()], {
    description: "revoked, owner_removed / owner_left when its owner left the organization, or owner_deleted when its service account was deleted",
  }),
});

export const KeyWithSecret = Type.Object({
  ...ApiKey.properties,
  secret: Type.String({ description: "The key's secret: shown this once, never again" }),
});
export const RotatedKey = Type.Object({
  ...KeyWithSecret.properties,
  previous_secret_expires_at: Timestamp("When the previous secret stops working"),
});
export const KeyPage = Page(ApiKey);
export const KeyRoles = Type.Object({
  roles: Type.Array(Type.String()),
  permissions: Type.Array(Type.String(), { description: "The key's own permissions beyond its roles'" }),
  inherit: Type.Boolean(),
});

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function toKey(row: ApiKeyRow, now: Date) {
  const t = now.getTime();
  const state = row.revokedAt
    ? ("revoked" as const)
    : row.expiresAt && row.expiresAt.getTime() <= t
      ? ("expired" as const)
      : row.notBefore && row.notBefore.getTime() > t
        ? ("not_yet_valid" as const)
        : ("active" as const);
  return {
    id: row.id,
    name: row.name,
    prefix: row.prefix,
    owner: { type: row.ownerType === "service_account" ? ("service_account" as const) : ("user" as const), id: row.ownerId },
    roles: row.roles,
    permissions: row.permissions,
    inherit: row.inherit,
    state,
    not_before: iso(row.notBefore),
    expires_at: iso(row.expiresAt),
    ip_allowlist: row.ipAllowlist,
    rate_limit_per_minute: row.rateLimitPerMinute,
    created_by: row.createdBy,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
    last_used_at: iso(row.lastUsedAt),
    usage_count: Number(row.usageCount),
    revoked_at: iso(row.revokedAt),
    revoked_reason: row.revokedReason,
  };
}
