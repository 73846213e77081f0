-- Maintenance (server/src/jobs/maintenance.ts): the invitations sweep removes the ended invitations of every org in
-- one statement. The tenant policy of 0005 is split per command, as 0012 did for orgs: INSERT and UPDATE keep the
-- tenant rule; SELECT and DELETE also admit a transaction that declared the sweep (app.sweep = 'invitations', set
-- transaction-locally by invitations.repo.ts purgeEnded only, and only for that statement's transaction).
DROP POLICY invitations_tenant ON "invitations";
--> statement-breakpoint
CREATE POLICY invitations_tenant_read ON "invitations" AS RESTRICTIVE FOR SELECT TO PUBLIC
  USING (org_id = nullif(current_setting('app.org_id', true), '') OR current_setting('app.sweep', true) = 'invitations');
--> statement-breakpoint
CREATE POLICY invitations_tenant_insert ON "invitations" AS RESTRICTIVE FOR INSERT TO PUBLIC
  WITH CHECK (org_id = nullif(current_setting('app.org_id', true), ''));
--> statement-breakpoint
CREATE POLICY invitations_tenant_update ON "invitations" AS RESTRICTIVE FOR UPDATE TO PUBLIC
  USING (org_id = nullif(current_setting('app.org_id', true), ''))
  WITH CHECK (org_id = nullif(current_setting('app.org_id', true), ''));
--> statement-breakpoint
CREATE POLICY invitations_tenant_delete ON "invitations" AS RESTRICTIVE FOR DELETE TO PUBLIC
  USING (org_id = nullif(current_setting('app.org_id', true), '') OR current_setting('app.sweep', true) = 'invitations');
