CREATE TABLE "secret_leases" (
	"id" text PRIMARY KEY NOT NULL,
	"org_id" text NOT NULL,
	"holder_type" text NOT NULL,
	"holder_id" text NOT NULL,
	"secret_ids" text[] NOT NULL,
	"created_by" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"max_expires_at" timestamp with time zone NOT NULL,
	"revoked_at" timestamp with time zone,
	"revoked_by" text,
	"last_used_at" timestamp with time zone,
	"use_count" integer DEFAULT 0 NOT NULL,
	CONSTRAINT "secret_leases_holder_type_check" CHECK ("secret_leases"."holder_type" in ('user', 'api_key', 'service_account', 'service')),
	CONSTRAINT "secret_leases_secret_ids_check" CHECK (cardinality("secret_leases"."secret_ids") between 1 and 100),
	CONSTRAINT "secret_leases_expiry_check" CHECK ("secret_leases"."expires_at" <= "secret_leases"."max_expires_at")
);
--> statement-breakpoint
ALTER TABLE "secret_leases" ADD CONSTRAINT "secret_leases_org_id_orgs_id_fk" FOREIGN KEY ("org_id") REFERENCES "public"."orgs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "secret_leases_org_id_idx" ON "secret_leases" USING btree ("org_id","id");--> statement-breakpoint
CREATE INDEX "secret_leases_holder_idx" ON "secret_leases" USING btree ("org_id","holder_type","holder_id","id");--> statement-breakpoint
-- Leases are tenant rows (decision 002): a transaction sees and writes only its own org's leases.
ALTER TABLE "secret_leases" ENABLE ROW LEVEL SECURITY;
--> statement-breakpoint
ALTER TABLE "secret_leases" FORCE ROW LEVEL SECURITY;
--> statement-breakpoint
CREATE POLICY secret_leases_open ON "secret_leases" AS PERMISSIVE FOR ALL TO PUBLIC USING (true) WITH CHECK (true);
--> statement-breakpoint
CREATE POLICY secret_leases_tenant ON "secret_leases" AS RESTRICTIVE FOR ALL TO PUBLIC
  USING (org_id = nullif(current_setting('app.org_id', true), ''))
  WITH CHECK (org_id = nullif(current_setting('app.org_id', true), ''));
