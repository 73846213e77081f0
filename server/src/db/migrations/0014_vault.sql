CREATE TABLE "vault_keks" (
	"org_id" text NOT NULL,
	"version" integer NOT NULL,
	"wrapped_key" text NOT NULL,
	"root_key_id" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"retired_at" timestamp with time zone,
	CONSTRAINT "vault_keks_org_id_version_pk" PRIMARY KEY("org_id","version")
);
--> statement-breakpoint
CREATE TABLE "vault_secret_versions" (
	"org_id" text NOT NULL,
	"secret_id" text NOT NULL,
	"version" integer NOT NULL,
	"ciphertext" text NOT NULL,
	"nonce" text NOT NULL,
	"wrapped_key" text NOT NULL,
	"kek_version" integer NOT NULL,
	"created_by" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "vault_secret_versions_secret_id_version_pk" PRIMARY KEY("secret_id","version")
);
--> statement-breakpoint
CREATE TABLE "vault_secrets" (
	"id" text PRIMARY KEY NOT NULL,
	"org_id" text NOT NULL,
	"scope" text NOT NULL,
	"team_id" text,
	"user_id" text,
	"name" text NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"tags" text[] DEFAULT '{}'::text[] NOT NULL,
	"expires_at" timestamp with time zone,
	"current_version" integer NOT NULL,
	"created_by" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_by" text,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "vault_secrets_scope_check" CHECK (("vault_secrets"."scope" = 'org' and "vault_secrets"."team_id" is null and "vault_secrets"."user_id" is null) or ("vault_secrets"."scope" = 'team' and "vault_secrets"."team_id" is not null and "vault_secrets"."user_id" is null) or ("vault_secrets"."scope" = 'user' and "vault_secrets"."user_id" is not null and "vault_secrets"."team_id" is null))
);
--> statement-breakpoint
ALTER TABLE "vault_keks" ADD CONSTRAINT "vault_keks_org_id_orgs_id_fk" FOREIGN KEY ("org_id") REFERENCES "public"."orgs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "vault_secret_versions" ADD CONSTRAINT "vault_secret_versions_org_id_orgs_id_fk" FOREIGN KEY ("org_id") REFERENCES "public"."orgs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "vault_secret_versions" ADD CONSTRAINT "vault_secret_versions_secret_id_vault_secrets_id_fk" FOREIGN KEY ("secret_id") REFERENCES "public"."vault_secrets"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "vault_secret_versions" ADD CONSTRAINT "vault_secret_versions_kek_fk" FOREIGN KEY ("org_id","kek_version") REFERENCES "public"."vault_keks"("org_id","version") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "vault_secrets" ADD CONSTRAINT "vault_secrets_org_id_orgs_id_fk" FOREIGN KEY ("org_id") REFERENCES "public"."orgs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "vault_secrets" ADD CONSTRAINT "vault_secrets_team_id_teams_id_fk" FOREIGN KEY ("team_id") REFERENCES "public"."teams"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "vault_secrets" ADD CONSTRAINT "vault_secrets_member_fk" FOREIGN KEY ("org_id","user_id") REFERENCES "public"."memberships"("org_id","user_id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "vault_secret_versions_org_idx" ON "vault_secret_versions" USING btree ("org_id","kek_version");--> statement-breakpoint
CREATE UNIQUE INDEX "vault_secrets_scope_name_key" ON "vault_secrets" USING btree ("org_id","scope",coalesce("team_id", "user_id", ''),"name");--> statement-breakpoint
CREATE INDEX "vault_secrets_org_id_idx" ON "vault_secrets" USING btree ("org_id","id");--> statement-breakpoint
-- The vault's tenant tables (decision 002): a transaction sees and writes only its own org's rows. The app role's
-- SELECT/INSERT/UPDATE/DELETE rights come from the migrator's grant on every table after each run.
ALTER TABLE "vault_keks" ENABLE ROW LEVEL SECURITY;
--> statement-breakpoint
ALTER TABLE "vault_keks" FORCE ROW LEVEL SECURITY;
--> statement-breakpoint
CREATE POLICY vault_keks_open ON "vault_keks" AS PERMISSIVE FOR ALL TO PUBLIC USING (true) WITH CHECK (true);
--> statement-breakpoint
CREATE POLICY vault_keks_tenant ON "vault_keks" AS RESTRICTIVE FOR ALL TO PUBLIC
  USING (org_id = nullif(current_setting('app.org_id', true), ''))
  WITH CHECK (org_id = nullif(current_setting('app.org_id', true), ''));
--> statement-breakpoint
ALTER TABLE "vault_secrets" ENABLE ROW LEVEL SECURITY;
--> statement-breakpoint
ALTER TABLE "vault_secrets" FORCE ROW LEVEL SECURITY;
--> statement-breakpoint
CREATE POLICY vault_secrets_open ON "vault_secrets" AS PERMISSIVE FOR ALL TO PUBLIC USING (true) WITH CHECK (true);
--> statement-breakpoint
CREATE POLICY vault_secrets_tenant ON "vault_secrets" AS RESTRICTIVE FOR ALL TO PUBLIC
  USING (org_id = nullif(current_setting('app.org_id', true), ''))
  WITH CHECK (org_id = nullif(current_setting('app.org_id', true), ''));
--> statement-breakpoint
ALTER TABLE "vault_secret_versions" ENABLE ROW LEVEL SECURITY;
--> statement-breakpoint
ALTER TABLE "vault_secret_versions" FORCE ROW LEVEL SECURITY;
--> statement-breakpoint
CREATE POLICY vault_secret_versions_open ON "vault_secret_versions" AS PERMISSIVE FOR ALL TO PUBLIC USING (true) WITH CHECK (true);
--> statement-breakpoint
CREATE POLICY vault_secret_versions_tenant ON "vault_secret_versions" AS RESTRICTIVE FOR ALL TO PUBLIC
  USING (org_id = nullif(current_setting('app.org_id', true), ''))
  WITH CHECK (org_id = nullif(current_setting('app.org_id', true), ''));
