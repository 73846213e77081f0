-- Integration OAuth connections (issue 10). A vault secret gets a kind: `generic` (every secret so far) or
-- `oauth_connection` (a connection's token set, written only through the connections module).
ALTER TABLE "vault_secrets" ADD COLUMN "kind" text DEFAULT 'generic' NOT NULL;
--> statement-breakpoint
ALTER TABLE "vault_secrets" ADD CONSTRAINT "vault_secrets_kind_check" CHECK ("vault_secrets"."kind" in ('generic', 'oauth_connection'));
--> statement-breakpoint
CREATE TABLE "integration_connections" (
	"id" text PRIMARY KEY NOT NULL,
	"org_id" text NOT NULL,
	"provider" text NOT NULL,
	"name" text NOT NULL,
	"token_url" text NOT NULL,
	"client_id" text NOT NULL,
	"secret_id" text,
	"access_token_expires_at" timestamp with time zone,
	"status" text DEFAULT 'active' NOT NULL,
	"last_refreshed_at" timestamp with time zone,
	"last_error" text,
	"refresh_queued_at" timestamp with time zone,
	"refresh_claimed_until" timestamp with time zone,
	"created_by" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "integration_connections_provider_check" CHECK ("integration_connections"."provider" in ('jira', 'azure_devops', 'github', 'google', 'custom')),
	CONSTRAINT "integration_connections_status_check" CHECK ("integration_connections"."status" in ('active', 'refresh_failed', 'revoked')),
	CONSTRAINT "integration_connections_secret_check" CHECK ("integration_connections"."status" = 'revoked' or "integration_connections"."secret_id" is not null)
);
--> statement-breakpoint
ALTER TABLE "integration_connections" ADD CONSTRAINT "integration_connections_org_id_orgs_id_fk" FOREIGN KEY ("org_id") REFERENCES "public"."orgs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "integration_connections" ADD CONSTRAINT "integration_connections_secret_id_vault_secrets_id_fk" FOREIGN KEY ("secret_id") REFERENCES "public"."vault_secrets"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "integration_connections_org_id_idx" ON "integration_connections" USING btree ("org_id","id");--> statement-breakpoint
CREATE INDEX "integration_connections_due_idx" ON "integration_connections" USING btree ("access_token_expires_at") WHERE "status" = 'active';--> statement-breakpoint
-- Decision 002, split per command as 0015 does for vault_settings: the scheduled refresh finds the connections that
-- are due across tenants (a row holds no token, only where the token set is kept and when it expires), so SELECT is
-- open; every write checks the tenant.
ALTER TABLE "integration_connections" ENABLE ROW LEVEL SECURITY;
--> statement-breakpoint
ALTER TABLE "integration_connections" FORCE ROW LEVEL SECURITY;
--> statement-breakpoint
CREATE POLICY integration_connections_open ON "integration_connections" AS PERMISSIVE FOR ALL TO PUBLIC USING (true) WITH CHECK (true);
--> statement-breakpoint
CREATE POLICY integration_connections_tenant_insert ON "integration_connections" AS RESTRICTIVE FOR INSERT TO PUBLIC
  WITH CHECK (org_id = nullif(current_setting('app.org_id', true), ''));
--> statement-breakpoint
CREATE POLICY integration_connections_tenant_update ON "integration_connections" AS RESTRICTIVE FOR UPDATE TO PUBLIC
  USING (org_id = nullif(current_setting('app.org_id', true), ''))
  WITH CHECK (org_id = nullif(current_setting('app.org_id', true), ''));
--> statement-breakpoint
CREATE POLICY integration_connections_tenant_delete ON "integration_connections" AS RESTRICTIVE FOR DELETE TO PUBLIC
  USING (org_id = nullif(current_setting('app.org_id', true), ''));
