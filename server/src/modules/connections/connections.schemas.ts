import { Type } from "typebox";
import { NullableTimestamp, OrgIdParams, Timestamp } from "../../http/schemas.ts";
import { idPattern } from "../../lib/ids.ts";
import { Page, pageQuery } from "../../lib/pagination.ts";
import type { ConnectionRow } from "./connections.repo.ts";

export const PROVIDERS = ["jira", "azure_devops", "github", "google", "custom"] as const;
export type Provider = (typeof PROVIDERS)[number];
export const STATUSES = ["active", "refresh_failed", "revoked"] as const;
export type ConnectionStatus = (typeof STATUSES)[number];

/** Longest token accepted (Entra access tokens run to a few KiB; the whole token set must fit a vault value). */
const MAX_TOKEN = 16_384;
/** Longest lifetime a provider may give an access token, in seconds (one year). */
export const MAX_EXPIRES_IN = 31_536_000;

export const CONNECTION_ID_PATTERN = idPattern("connection");
const Provider = Type.Enum([...PROVIDERS], {
  description: "Whose OAuth server issued the tokens: jira (Atlassian), azure_devops (Microsoft Entra), github, google, or custom",
});
const Status = Type.Enum([...STATUSES], {
  description: "active; refresh_failed (the provider refused the refresh token: connect again); revoked (its tokens are deleted)",
});
const Token = (description: string) => Type.String({ minLength: 1, maxLength: MAX_TOKEN, description });

export const ConnectionParams = Type.Object(
  { orgId: OrgIdParams.properties.orgId, connectionId: Type.String({ pattern: CONNECTION_ID_PATTERN, description: "con_… id" }) },
  { additionalProperties: false },
);

export const CreateConnectionBody = Type.Object(
  {
    provider: Provider,
    name: Type.String({ minLength: 1, maxLength: 100, description: "What the connection is for, shown in lists (never a secret)" }),
    token_url: Type.String({
      format: "uri",
      maxLength: 2000,
      description:
        "The provider's token endpoint, where the refresh_token grant is sent (https; http only to a loopback address); never a loopback, private, link-local or metadata address unless the operator allowlisted it (PLINTH_OUTBOUND_ALLOW)",
    }),
    client_id: Type.String({ minLength: 1, maxLength: 256, description: "The OAuth client the tokens were issued to" }),
    client_secret: Type.Optional(Token("The client's secret, if the provider needs one to refresh (kept in the vault; never returned)")),
    access_token: Token("The current access token (kept in the vault)"),
    refresh_token: Token("The refresh token (kept in the vault; never returned)"),
    token_type: Type.Optional(Type.String({ minLength: 1, maxLength: 40, description: "As the provider sent it (default Bearer)" })),
    expires_in: Type.Optional(
      Type.Integer({ minimum: 1, maximum: MAX_EXPIRES_IN, description: "Seconds the access token lives from now, as the provider sent it" }),
    ),
    expires_at: Type.Optional(Type.String({ format: "date-time", description: "When the access token expires (instead of expires_in)" })),
    scope: Type.Optional(Type.String({ maxLength: 2000, description: "The scopes granted, space-separated, as the provider sent them" })),
  },
  { additionalProperties: false, description: "A token set obtained from the provider (the authorization code flow ran elsewhere)" },
);

export const ListConnectionsQuery = Type.Object(
  { ...pageQuery, provider: Type.Optional(Provider), status: Type.Optional(Status) },
  { additionalProperties: false },
);

export const Connection = Type.Object(
  {
    id: Type.String({ description: "con_… id" }),
    provider: Provider,
    name: Type.String({ description: "What it is for" }),
    token_url: Type.String({ description: "The provider's token endpoint" }),
    client_id: Type.String({ description: "The OAuth client" }),
    secret_id: Type.Union([Type.String(), Type.Null()], {
      description: "sec_… id of the vault secret (kind oauth_connection) holding the token set; null once revoked",
    }),
    status: Status,
    access_token_expires_at: NullableTimestamp("When the current access token expires (null: the provider did not say)"),
    last_refreshed_at: NullableTimestamp("When the tokens were last refreshed"),
    last_error: Type.Union([Type.String(), Type.Null()], { description: "Why the last refresh failed (the provider's error code; never a token)" }),
    created_by: Type.Union([Type.String(), Type.Null()], { description: "Who created it" }),
    created_at: Timestamp("When it was created"),
    updated_at: Timestamp("When it last changed"),
  },
  { description: "An integration's OAuth connection: never its tokens or client secret" },
);
export const ConnectionPage = Page(Connection);

export const ConnectionToken = Type.Object(
  {
    connection_id: Type.String({ description: "con_… id" }),
    access_token: Type.String({ description: "The current access token, for calling the provider's API" }),
    token_type: Type.String({ description: "As the provider sent it (Bearer)" }),
    expires_at: NullableTimestamp("When it expires (null: the provider did not say)"),
    scope: Type.Union([Type.String(), Type.Null()], { description: "The scopes granted" }),
  },
  { description: "A connection's current access token (answered with Cache-Control: no-store); never the refresh token" },
);

export function toConnection(r: ConnectionRow) {
  return {
    id: r.id,
    provider: r.provider as Provider,
    name: r.name,
    token_url: r.tokenUrl,
    client_id: r.clientId,
    secret_id: r.secretId,
    status: r.status as ConnectionStatus,
    access_token_expires_at: r.accessTokenExpiresAt?.toISOString() ?? null,
    last_refreshed_at: r.lastRefreshedAt?.toISOString() ?? null,
    last_error: r.lastError,
    created_by: r.createdBy,
    created_at: r.createdAt.toISOString(),
    updated_at: r.updatedAt.toISOString(),
  };
}
