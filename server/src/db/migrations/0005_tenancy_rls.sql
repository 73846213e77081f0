-- Anchor every existing audit chain's head (events written before audit_heads existed).
INSERT INTO audit_heads (org_id, seq, hash) SELECT DISTINCT ON (org_id) org_id, seq, hash FROM audit_events ORDER BY org_id, seq DESC;
--> statement-breakpoint
-- Every tenant table of the tenancy issue: a transaction sees and writes only its own org's rows (app.org_id).
ALTER TABLE "teams" ENABLE ROW LEVEL SECURITY;
--> statement-breakpoint
ALTER TABLE "teams" FORCE ROW LEVEL SECURITY;
--> statement-breakpoint
CREATE POLICY teams_open ON "teams" AS PERMISSIVE FOR ALL TO PUBLIC USING (true) WITH CHECK (true);
--> statement-breakpoint
CREATE POLICY teams_tenant ON "teams" AS RESTRICTIVE FOR ALL TO PUBLIC
  USING (org_id = nullif(current_setting('app.org_id', true), ''))
  WITH CHECK (org_id = nullif(current_setting('app.org_id', true), ''));
--> statement-breakpoint
ALTER TABLE "team_members" ENABLE ROW LEVEL SECURITY;
--> statement-breakpoint
ALTER TABLE "team_members" FORCE ROW LEVEL SECURITY;
--> statement-breakpoint
CREATE POLICY team_members_open ON "team_members" AS PERMISSIVE FOR ALL TO PUBLIC USING (true) WITH CHECK (true);
--> statement-breakpoint
CREATE POLICY team_members_tenant ON "team_members" AS RESTRICTIVE FOR ALL TO PUBLIC
  USING (org_id = nullif(current_setting('app.org_id', true), ''))
  WITH CHECK (org_id = nullif(current_setting('app.org_id', true), ''));
--> statement-breakpoint
ALTER TABLE "custom_roles" ENABLE ROW LEVEL SECURITY;
--> statement-breakpoint
ALTER TABLE "custom_roles" FORCE ROW LEVEL SECURITY;
--> statement-breakpoint
CREATE POLICY custom_roles_open ON "custom_roles" AS PERMISSIVE FOR ALL TO PUBLIC USING (true) WITH CHECK (true);
--> statement-breakpoint
CREATE POLICY custom_roles_tenant ON "custom_roles" AS RESTRICTIVE FOR ALL TO PUBLIC
  USING (org_id = nullif(current_setting('app.org_id', true), ''))
  WITH CHECK (org_id = nullif(current_setting('app.org_id', true), ''));
--> statement-breakpoint
ALTER TABLE "invitations" ENABLE ROW LEVEL SECURITY;
--> statement-breakpoint
ALTER TABLE "invitations" FORCE ROW LEVEL SECURITY;
--> statement-breakpoint
CREATE POLICY invitations_open ON "invitations" AS PERMISSIVE FOR ALL TO PUBLIC USING (true) WITH CHECK (true);
--> statement-breakpoint
CREATE POLICY invitations_tenant ON "invitations" AS RESTRICTIVE FOR ALL TO PUBLIC
  USING (org_id = nullif(current_setting('app.org_id', true), ''))
  WITH CHECK (org_id = nullif(current_setting('app.org_id', true), ''));
--> statement-breakpoint
ALTER TABLE "grants" ENABLE ROW LEVEL SECURITY;
--> statement-breakpoint
ALTER TABLE "grants" FORCE ROW LEVEL SECURITY;
--> statement-breakpoint
CREATE POLICY grants_open ON "grants" AS PERMISSIVE FOR ALL TO PUBLIC USING (true) WITH CHECK (true);
--> statement-breakpoint
CREATE POLICY grants_tenant ON "grants" AS RESTRICTIVE FOR ALL TO PUBLIC
  USING (org_id = nullif(current_setting('app.org_id', true), ''))
  WITH CHECK (org_id = nullif(current_setting('app.org_id', true), ''));
--> statement-breakpoint
ALTER TABLE "grant_requests" ENABLE ROW LEVEL SECURITY;
--> statement-breakpoint
ALTER TABLE "grant_requests" FORCE ROW LEVEL SECURITY;
--> statement-breakpoint
CREATE POLICY grant_requests_open ON "grant_requests" AS PERMISSIVE FOR ALL TO PUBLIC USING (true) WITH CHECK (true);
--> statement-breakpoint
CREATE POLICY grant_requests_tenant ON "grant_requests" AS RESTRICTIVE FOR ALL TO PUBLIC
  USING (org_id = nullif(current_setting('app.org_id', true), ''))
  WITH CHECK (org_id = nullif(current_setting('app.org_id', true), ''));
--> statement-breakpoint
ALTER TABLE "audit_heads" ENABLE ROW LEVEL SECURITY;
--> statement-breakpoint
ALTER TABLE "audit_heads" FORCE ROW LEVEL SECURITY;
--> statement-breakpoint
CREATE POLICY audit_heads_open ON "audit_heads" AS PERMISSIVE FOR ALL TO PUBLIC USING (true) WITH CHECK (true);
--> statement-breakpoint
CREATE POLICY audit_heads_tenant ON "audit_heads" AS RESTRICTIVE FOR ALL TO PUBLIC
  USING (org_id = nullif(current_setting('app.org_id', true), ''))
  WITH CHECK (org_id = nullif(current_setting('app.org_id', true), ''));
