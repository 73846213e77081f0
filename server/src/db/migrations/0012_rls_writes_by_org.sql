-- orgs and memberships admit, for reading, the rows of the transaction's user as well as its tenant's ("my orgs"
-- without a tenant). Their policies were FOR ALL, so the user rule governed UPDATE and DELETE too: a transaction of
-- org A run for a user who also belongs to org B could update or delete B's org row and memberships. Split per
-- command: SELECT keeps the user-or-tenant rule; INSERT, UPDATE and DELETE check the tenant (app.org_id) only.
-- (SELECT … FOR UPDATE/SHARE is held to the UPDATE policy as well, so locks follow the tenant rule too.)
DROP POLICY orgs_tenant ON "orgs";
--> statement-breakpoint
CREATE POLICY orgs_tenant_read ON "orgs" AS RESTRICTIVE FOR SELECT TO PUBLIC
  USING (
    id = nullif(current_setting('app.org_id', true), '')
    OR EXISTS (
      SELECT 1 FROM memberships m
      WHERE m.org_id = orgs.id AND m.user_id = nullif(current_setting('app.user_id', true), '')
    )
  );
--> statement-breakpoint
CREATE POLICY orgs_tenant_insert ON "orgs" AS RESTRICTIVE FOR INSERT TO PUBLIC
  WITH CHECK (id = nullif(current_setting('app.org_id', true), ''));
--> statement-breakpoint
CREATE POLICY orgs_tenant_update ON "orgs" AS RESTRICTIVE FOR UPDATE TO PUBLIC
  USING (id = nullif(current_setting('app.org_id', true), ''))
  WITH CHECK (id = nullif(current_setting('app.org_id', true), ''));
--> statement-breakpoint
CREATE POLICY orgs_tenant_delete ON "orgs" AS RESTRICTIVE FOR DELETE TO PUBLIC
  USING (id = nullif(current_setting('app.org_id', true), ''));
--> statement-breakpoint
DROP POLICY memberships_tenant ON "memberships";
--> statement-breakpoint
CREATE POLICY memberships_tenant_read ON "memberships" AS RESTRICTIVE FOR SELECT TO PUBLIC
  USING (
    org_id = nullif(current_setting('app.org_id', true), '')
    OR user_id = nullif(current_setting('app.user_id', true), '')
  );
--> statement-breakpoint
CREATE POLICY memberships_tenant_insert ON "memberships" AS RESTRICTIVE FOR INSERT TO PUBLIC
  WITH CHECK (org_id = nullif(current_setting('app.org_id', true), ''));
--> statement-breakpoint
CREATE POLICY memberships_tenant_update ON "memberships" AS RESTRICTIVE FOR UPDATE TO PUBLIC
  USING (org_id = nullif(current_setting('app.org_id', true), ''))
  WITH CHECK (org_id = nullif(current_setting('app.org_id', true), ''));
--> statement-breakpoint
CREATE POLICY memberships_tenant_delete ON "memberships" AS RESTRICTIVE FOR DELETE TO PUBLIC
  USING (org_id = nullif(current_setting('app.org_id', true), ''));
