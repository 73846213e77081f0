CREATE TABLE "audit_events" (
	"id" text PRIMARY KEY NOT NULL,
	"org_id" text NOT NULL,
	"seq" bigint NOT NULL,
	"action" text NOT NULL,
	"actor_type" text NOT NULL,
	"actor_id" text,
	"impersonator_id" text,
	"target_type" text NOT NULL,
	"target_id" text,
	"ip" text,
	"user_agent" text,
	"request_id" text,
	"diff" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"prev_hash" text NOT NULL,
	"hash" text NOT NULL
);
--> statement-breakpoint
ALTER TABLE "orgs" ADD COLUMN "display_name" text;--> statement-breakpoint
ALTER TABLE "orgs" ADD COLUMN "logo_url" text;--> statement-breakpoint
ALTER TABLE "orgs" ADD COLUMN "primary_color" text;--> statement-breakpoint
ALTER TABLE "orgs" ADD COLUMN "address" jsonb;--> statement-breakpoint
ALTER TABLE "orgs" ADD COLUMN "contact_email" text;--> statement-breakpoint
ALTER TABLE "orgs" ADD COLUMN "contact_phone" text;--> statement-breakpoint
ALTER TABLE "orgs" ADD COLUMN "deleted_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "orgs" ADD COLUMN "purge_after" timestamp with time zone;--> statement-breakpoint
CREATE UNIQUE INDEX "audit_events_org_seq_key" ON "audit_events" USING btree ("org_id","seq");--> statement-breakpoint
CREATE INDEX "audit_events_org_created_idx" ON "audit_events" USING btree ("org_id","created_at");--> statement-breakpoint
CREATE INDEX "audit_events_org_action_idx" ON "audit_events" USING btree ("org_id","action");