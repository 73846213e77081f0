CREATE TABLE "impersonations" (
	"id" text PRIMARY KEY NOT NULL,
	"impersonator_id" text NOT NULL,
	"user_id" text NOT NULL,
	"org_id" text,
	"reason" text NOT NULL,
	"basis" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"ended_at" timestamp with time zone,
	"ip" text,
	"user_agent" text
);
--> statement-breakpoint
CREATE TABLE "service_keys" (
	"id" text PRIMARY KEY NOT NULL,
	"org_id" text,
	"service" text NOT NULL,
	"kid" text NOT NULL,
	"alg" text NOT NULL,
	"public_jwk" jsonb NOT NULL,
	"roles" text[] DEFAULT '{}'::text[] NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"expires_at" timestamp with time zone,
	"created_by" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_used_at" timestamp with time zone,
	"revoked_at" timestamp with time zone,
	"revoked_by" text
);
--> statement-breakpoint
ALTER TABLE "orgs" ADD COLUMN "owner_impersonation" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "service_keys" ADD CONSTRAINT "service_keys_org_id_orgs_id_fk" FOREIGN KEY ("org_id") REFERENCES "public"."orgs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "impersonations_user_idx" ON "impersonations" USING btree ("user_id","created_at");--> statement-breakpoint
CREATE INDEX "impersonations_impersonator_idx" ON "impersonations" USING btree ("impersonator_id","created_at");--> statement-breakpoint
CREATE UNIQUE INDEX "service_keys_kid_key" ON "service_keys" USING btree ("kid");--> statement-breakpoint
CREATE INDEX "service_keys_org_service_idx" ON "service_keys" USING btree ("org_id","service");