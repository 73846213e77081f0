-- Inbound event ingestion (issue 11): the events an org sends (deduplicated by its own id per org), the per-type
-- counts the built-in processor keeps, and the list of orgs that have ingested anything (what the retention purge reads).
CREATE TABLE "ingest_events" (
	"id" text PRIMARY KEY NOT NULL,
	"org_id" text NOT NULL,
	"event_id" text NOT NULL,
	"type" text NOT NULL,
	"occurred_at" timestamp with time zone,
	"data" jsonb NOT NULL,
	"received_at" timestamp with time zone NOT NULL,
	"processed_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "ingest_type_counts" (
	"org_id" text NOT NULL,
	"type" text NOT NULL,
	"processed" bigint DEFAULT 0 NOT NULL,
	"updated_at" timestamp with time zone NOT NULL,
	CONSTRAINT "ingest_type_counts_pk" PRIMARY KEY ("org_id", "type")
);
--> statement-breakpoint
CREATE TABLE "ingest_orgs" (
	"org_id" text PRIMARY KEY NOT NULL,
	"first_event_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
ALTER TABLE "ingest_events" ADD CONSTRAINT "ingest_events_org_id_orgs_id_fk" FOREIGN KEY ("org_id") REFERENCES "public"."orgs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "ingest_type_counts" ADD CONSTRAINT "ingest_type_counts_org_id_orgs_id_fk" FOREIGN KEY ("org_id") REFERENCES "public"."orgs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "ingest_orgs" ADD CONSTRAINT "ingest_orgs_org_id_orgs_id_fk" FOREIGN KEY ("org_id") REFERENCES "public"."orgs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
-- the dedup key: one event per (org, the sender's id)
CREATE UNIQUE INDEX "ingest_events_org_event_idx" ON "ingest_events" USING btree ("org_id","event_id");--> statement-breakpoint
CREATE INDEX "ingest_events_org_id_idx" ON "ingest_events" USING btree ("org_id","id");--> statement-breakpoint
-- what the workers claim and the back-pressure check reads: the unprocessed events only, oldest first
CREATE INDEX "ingest_events_pending_idx" ON "ingest_events" USING btree ("org_id","received_at","id") WHERE "processed_at" is null;--> statement-breakpoint
CREATE INDEX "ingest_events_received_idx" ON "ingest_events" USING btree ("org_id","received_at");--> statement-breakpoint
-- Tenant tables (decision 002), as 0014_vault.sql: a transaction sees and writes only its own org's rows.
ALTER TABLE "ingest_events" ENABLE ROW LEVEL SECURITY;
--> statement-breakpoint
ALTER TABLE "ingest_events" FORCE ROW LEVEL SECURITY;
--> statement-breakpoint
CREATE POLICY ingest_events_open ON "ingest_events" AS PERMISSIVE FOR ALL TO PUBLIC USING (true) WITH CHECK (true);
--> statement-breakpoint
CREATE POLICY ingest_events_tenant ON "ingest_events" AS RESTRICTIVE FOR ALL TO PUBLIC
  USING (org_id = nullif(current_setting('app.org_id', true), ''))
  WITH CHECK (org_id = nullif(current_setting('app.org_id', true), ''));
--> statement-breakpoint
ALTER TABLE "ingest_type_counts" ENABLE ROW LEVEL SECURITY;
--> statement-breakpoint
ALTER TABLE "ingest_type_counts" FORCE ROW LEVEL SECURITY;
--> statement-breakpoint
CREATE POLICY ingest_type_counts_open ON "ingest_type_counts" AS PERMISSIVE FOR ALL TO PUBLIC USING (true) WITH CHECK (true);
--> statement-breakpoint
CREATE POLICY ingest_type_counts_tenant ON "ingest_type_counts" AS RESTRICTIVE FOR ALL TO PUBLIC
  USING (org_id = nullif(current_setting('app.org_id', true), ''))
  WITH CHECK (org_id = nullif(current_setting('app.org_id', true), ''));
--> statement-breakpoint
-- Split per command as 0015_vault_rotation.sql does: the scheduled purge finds the orgs that have events across
-- tenants (a row is an org id and a date, nothing of the events), so SELECT is open; every write checks the tenant.
-- The purge then deletes each org's old events in that org's own transaction, under the tenant-only policies above.
ALTER TABLE "ingest_orgs" ENABLE ROW LEVEL SECURITY;
--> statement-breakpoint
ALTER TABLE "ingest_orgs" FORCE ROW LEVEL SECURITY;
--> statement-breakpoint
CREATE POLICY ingest_orgs_open ON "ingest_orgs" AS PERMISSIVE FOR ALL TO PUBLIC USING (true) WITH CHECK (true);
--> statement-breakpoint
CREATE POLICY ingest_orgs_tenant_insert ON "ingest_orgs" AS RESTRICTIVE FOR INSERT TO PUBLIC
  WITH CHECK (org_id = nullif(current_setting('app.org_id', true), ''));
--> statement-breakpoint
CREATE POLICY ingest_orgs_tenant_update ON "ingest_orgs" AS RESTRICTIVE FOR UPDATE TO PUBLIC
  USING (org_id = nullif(current_setting('app.org_id', true), ''))
  WITH CHECK (org_id = nullif(current_setting('app.org_id', true), ''));
--> statement-breakpoint
CREATE POLICY ingest_orgs_tenant_delete ON "ingest_orgs" AS RESTRICTIVE FOR DELETE TO PUBLIC
  USING (org_id = nullif(current_setting('app.org_id', true), ''));
