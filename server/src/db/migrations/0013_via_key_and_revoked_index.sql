ALTER TABLE "audit_events" ADD COLUMN "via_key_id" text;--> statement-breakpoint
CREATE INDEX "sessions_revoked_at_idx" ON "sessions" USING btree ("revoked_at") WHERE revoked_at is not null;