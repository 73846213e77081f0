import { sql } from "drizzle-orm";
import { check, foreignKey, index, pgTable, text, timestamp } from "drizzle-orm/pg-core";
import { orgs } from "./orgs.ts";
import { vaultSecrets } from "./vault.ts";

const ts = (name: string) => timestamp(name, { withTimezone: true, mode: "date" });

/**
 * An org's OAuth connection to an integration (Jira, Azure DevOps / Entra, GitHub, Google, or another provider): who
 * it is with, where its tokens are refreshed, and the vault secret (kind oauth_connection) that alone holds the token
 * set. No token or client secret is ever in this row: it is readable across tenants so that the scheduled refresh can
 * find the due ones (0019_integration_connections.sql), written by the tenant only.
 */
export const integrationConnections = pgTable(
  "integration_connections",
  {
    id: text("id").primaryKey(),
    orgId: text("org_id")
      .notNull()
      .references(() => orgs.id, { onDelete: "cascade" }),
    /** jira | azure_devops | github | google | custom */
    provider: text("provider").notNull(),
    name: text("name").notNull(),
    tokenUrl: text("token_url").notNull(),
    clientId: text("client_id").notNull(),
    /** The vault secret with the token set; null once revoked (the secret is deleted then). */
    secretId: text("secret_id"),
    accessTokenExpiresAt: ts("access_token_expires_at"),
    /** active | refresh_failed | revoked */
    status: text("status").notNull().default("active"),
    lastRefreshedAt: ts("last_refreshed_at"),
    /** Why the last refresh failed: the provider's error code and a fixed sentence, never text from a token. */
    lastError: text("last_error"),
    /** When the scheduled scan last enqueued a refresh (it does not enqueue another while that one is pending). */
    refreshQueuedAt: ts("refresh_queued_at"),
    /** A refresh under way holds the connection until then: a second one (another worker, the token route) waits its turn. */
    refreshClaimedUntil: ts("refresh_claimed_until"),
    createdBy: text("created_by"),
    createdAt: ts("created_at").notNull().defaultNow(),
    updatedAt: ts("updated_at").notNull().defaultNow(),
  },
  (t) => [
    index("integration_connections_org_id_idx").on(t.orgId, t.id),
    index("integration_connections_due_idx").on(t.accessTokenExpiresAt).where(sql`${t.status} = 'active'`),
    foreignKey({ columns: [t.secretId], foreignColumns: [vaultSecrets.id], name: "integration_connections_secret_id_vault_secrets_id_fk" }),
    check("integration_connections_provider_check", sql`${t.provider} in ('jira', 'azure_devops', 'github', 'google', 'custom')`),
    check("integration_connections_status_check", sql`${t.status} in ('active', 'refresh_failed', 'revoked')`),
    check("integration_connections_secret_check", sql`${t.status} = 'revoked' or ${t.secretId} is not null`),
  ],
);
