-- The service key registry: an org sees and writes only its own registrations; the platform scope (no org set) only
-- the platform-wide ones (org_id null). "is not distinct from" makes the match exact in both directions.
-- impersonations is a platform record about people (read by user id, like sessions), so it has no tenant policy.
ALTER TABLE "service_keys" ENABLE ROW LEVEL SECURITY;
--> statement-breakpoint
ALTER TABLE "service_keys" FORCE ROW LEVEL SECURITY;
--> statement-breakpoint
CREATE POLICY service_keys_open ON "service_keys" AS PERMISSIVE FOR ALL TO PUBLIC USING (true) WITH CHECK (true);
--> statement-breakpoint
CREATE POLICY service_keys_tenant ON "service_keys" AS RESTRICTIVE FOR ALL TO PUBLIC
  USING (org_id IS NOT DISTINCT FROM nullif(current_setting('app.org_id', true), ''))
  WITH CHECK (org_id IS NOT DISTINCT FROM nullif(current_setting('app.org_id', true), ''));
