CREATE TABLE "zk_user_keys" (
	"org_id" text NOT NULL,
	"user_id" text NOT NULL,
	"public_key" text NOT NULL,
	"encrypted_private_key" text NOT NULL,
	"kdf" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "zk_user_keys_org_id_user_id_pk" PRIMARY KEY("org_id","user_id")
);
--> statement-breakpoint
CREATE TABLE "zk_vaults" (
	"id" text PRIMARY KEY NOT NULL,
	"org_id" text NOT NULL,
	"owner_id" text NOT NULL,
	"name" text NOT NULL,
	"key_version" integer NOT NULL,
	"kdf" jsonb NOT NULL,
	"passphrase_wrapped_key" text NOT NULL,
	"recovery_phrase_wrapped_key" text NOT NULL,
	"hardware_wrapped_key" text NOT NULL,
	"key_check" text NOT NULL,
	"share_threshold" integer,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "zk_vault_entries" (
	"org_id" text NOT NULL,
	"vault_id" text NOT NULL,
	"name" text NOT NULL,
	"ciphertext" text NOT NULL,
	"nonce" text NOT NULL,
	"key_version" integer NOT NULL,
	"version" integer NOT NULL,
	"created_by" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_by" text,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "zk_vault_entries_vault_id_name_pk" PRIMARY KEY("vault_id","name")
);
--> statement-breakpoint
CREATE TABLE "zk_vault_shares" (
	"id" text PRIMARY KEY NOT NULL,
	"org_id" text NOT NULL,
	"vault_id" text NOT NULL,
	"key_version" integer NOT NULL,
	"share_index" integer NOT NULL,
	"holder_id" text NOT NULL,
	"sealed_share" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "zk_recovery_requests" (
	"id" text PRIMARY KEY NOT NULL,
	"org_id" text NOT NULL,
	"vault_id" text NOT NULL,
	"requester_id" text NOT NULL,
	"public_key" text NOT NULL,
	"status" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"closed_at" timestamp with time zone,
	CONSTRAINT "zk_recovery_requests_status_check" CHECK ("zk_recovery_requests"."status" in ('open', 'completed', 'cancelled'))
);
--> statement-breakpoint
CREATE TABLE "zk_share_releases" (
	"org_id" text NOT NULL,
	"request_id" text NOT NULL,
	"share_id" text NOT NULL,
	"share_index" integer NOT NULL,
	"sealed_share" text NOT NULL,
	"released_by" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "zk_share_releases_request_id_share_id_pk" PRIMARY KEY("request_id","share_id")
);
--> statement-breakpoint
CREATE TABLE "zk_vault_members" (
	"org_id" text NOT NULL,
	"vault_id" text NOT NULL,
	"user_id" text NOT NULL,
	"key_version" integer NOT NULL,
	"sealed_key" text NOT NULL,
	"added_by" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "zk_vault_members_vault_id_user_id_pk" PRIMARY KEY("vault_id","user_id")
);
--> statement-breakpoint
ALTER TABLE "zk_user_keys" ADD CONSTRAINT "zk_user_keys_org_id_orgs_id_fk" FOREIGN KEY ("org_id") REFERENCES "public"."orgs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "zk_vaults" ADD CONSTRAINT "zk_vaults_org_id_orgs_id_fk" FOREIGN KEY ("org_id") REFERENCES "public"."orgs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "zk_vault_entries" ADD CONSTRAINT "zk_vault_entries_org_id_orgs_id_fk" FOREIGN KEY ("org_id") REFERENCES "public"."orgs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "zk_vault_shares" ADD CONSTRAINT "zk_vault_shares_org_id_orgs_id_fk" FOREIGN KEY ("org_id") REFERENCES "public"."orgs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "zk_recovery_requests" ADD CONSTRAINT "zk_recovery_requests_org_id_orgs_id_fk" FOREIGN KEY ("org_id") REFERENCES "public"."orgs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "zk_share_releases" ADD CONSTRAINT "zk_share_releases_org_id_orgs_id_fk" FOREIGN KEY ("org_id") REFERENCES "public"."orgs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "zk_user_keys" ADD CONSTRAINT "zk_user_keys_member_fk" FOREIGN KEY ("org_id","user_id") REFERENCES "public"."memberships"("org_id","user_id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "zk_vaults" ADD CONSTRAINT "zk_vaults_owner_fk" FOREIGN KEY ("org_id","owner_id") REFERENCES "public"."memberships"("org_id","user_id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "zk_vault_entries" ADD CONSTRAINT "zk_vault_entries_vault_id_zk_vaults_id_fk" FOREIGN KEY ("vault_id") REFERENCES "public"."zk_vaults"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "zk_vault_shares" ADD CONSTRAINT "zk_vault_shares_vault_id_zk_vaults_id_fk" FOREIGN KEY ("vault_id") REFERENCES "public"."zk_vaults"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "zk_vault_shares" ADD CONSTRAINT "zk_vault_shares_holder_fk" FOREIGN KEY ("org_id","holder_id") REFERENCES "public"."memberships"("org_id","user_id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "zk_recovery_requests" ADD CONSTRAINT "zk_recovery_requests_vault_id_zk_vaults_id_fk" FOREIGN KEY ("vault_id") REFERENCES "public"."zk_vaults"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "zk_share_releases" ADD CONSTRAINT "zk_share_releases_request_id_zk_recovery_requests_id_fk" FOREIGN KEY ("request_id") REFERENCES "public"."zk_recovery_requests"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "zk_share_releases" ADD CONSTRAINT "zk_share_releases_share_id_zk_vault_shares_id_fk" FOREIGN KEY ("share_id") REFERENCES "public"."zk_vault_shares"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "zk_vault_members" ADD CONSTRAINT "zk_vault_members_org_id_orgs_id_fk" FOREIGN KEY ("org_id") REFERENCES "public"."orgs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "zk_vault_members" ADD CONSTRAINT "zk_vault_members_vault_id_zk_vaults_id_fk" FOREIGN KEY ("vault_id") REFERENCES "public"."zk_vaults"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "zk_vault_members" ADD CONSTRAINT "zk_vault_members_member_fk" FOREIGN KEY ("org_id","user_id") REFERENCES "public"."memberships"("org_id","user_id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "zk_vault_members_user_idx" ON "zk_vault_members" USING btree ("org_id","user_id","vault_id");--> statement-breakpoint
CREATE INDEX "zk_vaults_owner_idx" ON "zk_vaults" USING btree ("org_id","owner_id","id");--> statement-breakpoint
CREATE INDEX "zk_vault_entries_org_idx" ON "zk_vault_entries" USING btree ("org_id","vault_id");--> statement-breakpoint
CREATE UNIQUE INDEX "zk_vault_shares_index_key" ON "zk_vault_shares" USING btree ("vault_id","share_index");--> statement-breakpoint
CREATE INDEX "zk_vault_shares_holder_idx" ON "zk_vault_shares" USING btree ("org_id","holder_id","id");--> statement-breakpoint
CREATE INDEX "zk_recovery_requests_vault_idx" ON "zk_recovery_requests" USING btree ("org_id","vault_id","id");--> statement-breakpoint
-- The zero-knowledge vault tables are tenant rows (decision 002): a transaction sees and writes only its own org's rows.
-- They hold ciphertext, wrapped keys, sealed shares, public keys and KDF parameters only (modules/zk-vaults/).
ALTER TABLE "zk_user_keys" ENABLE ROW LEVEL SECURITY;
--> statement-breakpoint
ALTER TABLE "zk_user_keys" FORCE ROW LEVEL SECURITY;
--> statement-breakpoint
CREATE POLICY zk_user_keys_open ON "zk_user_keys" AS PERMISSIVE FOR ALL TO PUBLIC USING (true) WITH CHECK (true);
--> statement-breakpoint
CREATE POLICY zk_user_keys_tenant ON "zk_user_keys" AS RESTRICTIVE FOR ALL TO PUBLIC
  USING (org_id = nullif(current_setting('app.org_id', true), ''))
  WITH CHECK (org_id = nullif(current_setting('app.org_id', true), ''));
--> statement-breakpoint
ALTER TABLE "zk_vaults" ENABLE ROW LEVEL SECURITY;
--> statement-breakpoint
ALTER TABLE "zk_vaults" FORCE ROW LEVEL SECURITY;
--> statement-breakpoint
CREATE POLICY zk_vaults_open ON "zk_vaults" AS PERMISSIVE FOR ALL TO PUBLIC USING (true) WITH CHECK (true);
--> statement-breakpoint
CREATE POLICY zk_vaults_tenant ON "zk_vaults" AS RESTRICTIVE FOR ALL TO PUBLIC
  USING (org_id = nullif(current_setting('app.org_id', true), ''))
  WITH CHECK (org_id = nullif(current_setting('app.org_id', true), ''));
--> statement-breakpoint
ALTER TABLE "zk_vault_entries" ENABLE ROW LEVEL SECURITY;
--> statement-breakpoint
ALTER TABLE "zk_vault_entries" FORCE ROW LEVEL SECURITY;
--> statement-breakpoint
CREATE POLICY zk_vault_entries_open ON "zk_vault_entries" AS PERMISSIVE FOR ALL TO PUBLIC USING (true) WITH CHECK (true);
--> statement-breakpoint
CREATE POLICY zk_vault_entries_tenant ON "zk_vault_entries" AS RESTRICTIVE FOR ALL TO PUBLIC
  USING (org_id = nullif(current_setting('app.org_id', true), ''))
  WITH CHECK (org_id = nullif(current_setting('app.org_id', true), ''));
--> statement-breakpoint
ALTER TABLE "zk_vault_shares" ENABLE ROW LEVEL SECURITY;
--> statement-breakpoint
ALTER TABLE "zk_vault_shares" FORCE ROW LEVEL SECURITY;
--> statement-breakpoint
CREATE POLICY zk_vault_shares_open ON "zk_vault_shares" AS PERMISSIVE FOR ALL TO PUBLIC USING (true) WITH CHECK (true);
--> statement-breakpoint
CREATE POLICY zk_vault_shares_tenant ON "zk_vault_shares" AS RESTRICTIVE FOR ALL TO PUBLIC
  USING (org_id = nullif(current_setting('app.org_id', true), ''))
  WITH CHECK (org_id = nullif(current_setting('app.org_id', true), ''));
--> statement-breakpoint
ALTER TABLE "zk_recovery_requests" ENABLE ROW LEVEL SECURITY;
--> statement-breakpoint
ALTER TABLE "zk_recovery_requests" FORCE ROW LEVEL SECURITY;
--> statement-breakpoint
CREATE POLICY zk_recovery_requests_open ON "zk_recovery_requests" AS PERMISSIVE FOR ALL TO PUBLIC USING (true) WITH CHECK (true);
--> statement-breakpoint
CREATE POLICY zk_recovery_requests_tenant ON "zk_recovery_requests" AS RESTRICTIVE FOR ALL TO PUBLIC
  USING (org_id = nullif(current_setting('app.org_id', true), ''))
  WITH CHECK (org_id = nullif(current_setting('app.org_id', true), ''));
--> statement-breakpoint
ALTER TABLE "zk_share_releases" ENABLE ROW LEVEL SECURITY;
--> statement-breakpoint
ALTER TABLE "zk_share_releases" FORCE ROW LEVEL SECURITY;
--> statement-breakpoint
CREATE POLICY zk_share_releases_open ON "zk_share_releases" AS PERMISSIVE FOR ALL TO PUBLIC USING (true) WITH CHECK (true);
--> statement-breakpoint
CREATE POLICY zk_share_releases_tenant ON "zk_share_releases" AS RESTRICTIVE FOR ALL TO PUBLIC
  USING (org_id = nullif(current_setting('app.org_id', true), ''))
  WITH CHECK (org_id = nullif(current_setting('app.org_id', true), ''));
--> statement-breakpoint
ALTER TABLE "zk_vault_members" ENABLE ROW LEVEL SECURITY;
--> statement-breakpoint
ALTER TABLE "zk_vault_members" FORCE ROW LEVEL SECURITY;
--> statement-breakpoint
CREATE POLICY zk_vault_members_open ON "zk_vault_members" AS PERMISSIVE FOR ALL TO PUBLIC USING (true) WITH CHECK (true);
--> statement-breakpoint
CREATE POLICY zk_vault_members_tenant ON "zk_vault_members" AS RESTRICTIVE FOR ALL TO PUBLIC
  USING (org_id = nullif(current_setting('app.org_id', true), ''))
  WITH CHECK (org_id = nullif(current_setting('app.org_id', true), ''));
