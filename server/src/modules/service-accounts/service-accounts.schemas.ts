import { Type } from "typebox";
import { NullableTimestamp, OrgIdParams, Timestamp } from "../../http/schemas.ts";
import { Page, PageQuery } from "../../lib/pagination.ts";
import { idPattern } from "../../lib/ids.ts";
import type { OAuthClientRow, ServiceAccountRow } from "./service-accounts.repo.ts";

const Name = Type.String({
  minLength: 1,
  maxLength: 64,
  pattern: "^[A-Za-z0-9](?:[A-Za-z0-9 ._-]{0,62}[A-Za-z0-9._-])?$",
  description: "Unique in the organization: letters, digits, space, . _ -; no space at either end",
});
const Description = Type.String({ maxLength: 500, description: "What the account is for" });
/** As custom roles are named (members/roles.routes.ts), or a built-in role. */
const RoleName = Type.String({ minLength: 2, maxLength: 40, pattern: "^[a-z][a-z0-9_-]{1,39}$", description: "A built-in role or a custom role's name" });
const Roles = Type.Array(RoleName, {
  minItems: 1,
  maxItems: 20,
  uniqueItems: true,
  description: "Built-in or custom roles; the account holds their permissions (each one you could grant)",
});

export const ServiceAccountParams = Type.Object(
  { orgId: OrgIdParams.properties.orgId, serviceAccountId: Type.String({ pattern: idPattern("serviceAccount"), description: "sa_… id" }) },
  { additionalProperties: false },
);
export const ClientParams = Type.Object(
  { ...ServiceAccountParams.properties, clientId: Type.String({ pattern: idPattern("oauthClient"), description: "cli_… id (the client_id)" }) },
  { additionalProperties: false },
);

export const CreateServiceAccountBody = Type.Object({ name: Name, description: Type.Optional(Description), roles: Roles }, { additionalProperties: false });
export const UpdateServiceAccountBody = Type.Object(
  { name: Type.Optional(Name), description: Type.Optional(Description), roles: Type.Optional(Roles) },
  { additionalProperties: false, minProperties: 1 },
);
export const ListServiceAccountsQuery = PageQuery;
export const CreateClientBody = Type.Object({ name: Name }, { additionalProperties: false });

export const ServiceAccount = Type.Object(
  {
    id: Type.String({ description: "sa_… id: the `sub` of its access tokens" }),
    name: Type.String({ description: "Unique in the organization" }),
    description: Type.String({ description: "What the account is for" }),
    roles: Type.Array(Type.String(), { description: "Its roles" }),
    state: Type.Union([Type.Literal("active"), Type.Literal("disabled")], { description: "disabled: its tokens and clients do not work" }),
    disabled_at: NullableTimestamp("When it was disabled"),
    created_by: Type.Union([Type.String(), Type.Null()], { description: "Who created it" }),
    created_at: Timestamp("When it was created"),
    updated_at: Timestamp("When it last changed"),
  },
  { description: "A service account" },
);
export const ServiceAccountPage = Page(ServiceAccount);

export const OAuthClient = Type.Object(
  {
    client_id: Type.String({ description: "cli_… id: the client_id of the client_credentials grant" }),
    service_account_id: Type.String({ description: "The account it acts as" }),
    name: Type.String({ description: "Its name" }),
    state: Type.Union([Type.Literal("active"), Type.Literal("revoked")]),
    created_at: Timestamp("When it was created"),
    last_used_at: NullableTimestamp("When it last got a token"),
    revoked_at: NullableTimestamp("When it was revoked"),
  },
  { description: "An OAuth client credential of a service account (never its secret)" },
);
export const OAuthClientWithSecret = Type.Object(
  { ...OAuthClient.properties, client_secret: Type.String({ description: "The secret: shown here only, stored as a hash" }) },
  { description: "A new OAuth client credential, with its secret" },
);
export const OAuthClientList = Type.Object({ items: Type.Array(OAuthClient) });

export function toServiceAccount(r: ServiceAccountRow) {
  return {
    id: r.id,
    name: r.name,
    description: r.description,
    roles: r.roles,
    state: r.disabledAt ? ("disabled" as const) : ("active" as const),
    disabled_at: r.disabledAt?.toISOString() ?? null,
    created_by: r.createdBy,
    created_at: r.createdAt.toISOString(),
    updated_at: r.updatedAt.toISOString(),
  };
}

export function toClient(r: OAuthClientRow) {
  return {
    client_id: r.id,
    service_account_id: r.serviceAccountId,
    name: r.name,
    state: r.revokedAt ? ("revoked" as const) : ("active" as const),
    created_at: r.createdAt.toISOString(),
    last_used_at: r.lastUsedAt?.toISOString() ?? null,
    revoked_at: r.revokedAt?.toISOString() ?? null,
  };
}
