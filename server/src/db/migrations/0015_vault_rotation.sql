-- Per-org key rotation settings of the vault (issue 10). Each secret version already records the KEK version that
-- wraps its data key (vault_secret_versions.kek_version) and each KEK its root key (vault_keks.root_key_id).
CREATE TABLE "vault_settings" (
	"org_id" text PRIMARY KEY NOT NULL,
	"rotation_days" integer,
	"next_rotation_at" timestamp with time zone,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "vault_settings_rotation_days_check" CHECK ("vault_settings"."rotation_days" is null or ("vault_settings"."rotation_days" between 1 and 3650))
);
--> statement-breakpoint
ALTER TABLE "vault_settings" ADD CONSTRAINT "vault_settings_org_id_orgs_id_fk" FOREIGN KEY ("org_id") REFERENCES "public"."orgs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "vault_settings_next_rotation_idx" ON "vault_settings" USING btree ("next_rotation_at") WHERE "next_rotation_at" is not null;--> statement-breakpoint
-- Decision 002, split per command as 0012 does: the scheduled rotation finds the orgs that are due across tenants
-- (the rows hold no secret, only a period and a date), so SELECT is open; every write checks the tenant.
ALTER TABLE "vault_settings" ENABLE ROW LEVEL SECURITY;
--> statement-breakpoint
ALTER TABLE "vault_settings" FORCE ROW LEVEL SECURITY;
--> statement-breakpoint
CREATE POLICY vault_settings_open ON "vault_settings" AS PERMISSIVE FOR ALL TO PUBLIC USING (true) WITH CHECK (true);
--> statement-breakpoint
CREATE POLICY vault_settings_tenant_insert ON "vault_settings" AS RESTRICTIVE FOR INSERT TO PUBLIC
  WITH CHECK (org_id = nullif(current_setting('app.org_id', true), ''));
--> statement-breakpoint
CREATE POLICY vault_settings_tenant_update ON "vault_settings" AS RESTRICTIVE FOR UPDATE TO PUBLIC
  USING (org_id = nullif(current_setting('app.org_id', true), ''))
  WITH CHECK (org_id = nullif(current_setting('app.org_id', true), ''));
--> statement-breakpoint
CREATE POLICY vault_settings_tenant_delete ON "vault_settings" AS RESTRICTIVE FOR DELETE TO PUBLIC
  USING (org_id = nullif(current_setting('app.org_id', true), ''));
