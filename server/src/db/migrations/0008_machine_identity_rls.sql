-- Machine identity's tenant tables: a transaction sees and writes only its own org's rows. credential_index is
-- platform routing (hashes and ids, no secrets), read before a tenant is known, so it has no tenant policy.
ALTER TABLE "service_accounts" ENABLE ROW LEVEL SECURITY;
--> statement-breakpoint
ALTER TABLE "service_accounts" FORCE ROW LEVEL SECURITY;
--> statement-breakpoint
CREATE POLICY service_accounts_open ON "service_accounts" AS PERMISSIVE FOR ALL TO PUBLIC USING (true) WITH CHECK (true);
--> statement-breakpoint
CREATE POLICY service_accounts_tenant ON "service_accounts" AS RESTRICTIVE FOR ALL TO PUBLIC
  USING (org_id = nullif(current_setting('app.org_id', true), ''))
  WITH CHECK (org_id = nullif(current_setting('app.org_id', true), ''));
--> statement-breakpoint
ALTER TABLE "api_keys" ENABLE ROW LEVEL SECURITY;
--> statement-breakpoint
ALTER TABLE "api_keys" FORCE ROW LEVEL SECURITY;
--> statement-breakpoint
CREATE POLICY api_keys_open ON "api_keys" AS PERMISSIVE FOR ALL TO PUBLIC USING (true) WITH CHECK (true);
--> statement-breakpoint
CREATE POLICY api_keys_tenant ON "api_keys" AS RESTRICTIVE FOR ALL TO PUBLIC
  USING (org_id = nullif(current_setting('app.org_id', true), ''))
  WITH CHECK (org_id = nullif(current_setting('app.org_id', true), ''));
--> statement-breakpoint
ALTER TABLE "oauth_clients" ENABLE ROW LEVEL SECURITY;
--> statement-breakpoint
ALTER TABLE "oauth_clients" FORCE ROW LEVEL SECURITY;
--> statement-breakpoint
CREATE POLICY oauth_clients_open ON "oauth_clients" AS PERMISSIVE FOR ALL TO PUBLIC USING (true) WITH CHECK (true);
--> statement-breakpoint
CREATE POLICY oauth_clients_tenant ON "oauth_clients" AS RESTRICTIVE FOR ALL TO PUBLIC
  USING (org_id = nullif(current_setting('app.org_id', true), ''))
  WITH CHECK (org_id = nullif(current_setting('app.org_id', true), ''));
