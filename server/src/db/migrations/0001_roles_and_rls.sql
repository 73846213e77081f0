-- The role every request runs as: it owns nothing and cannot bypass row-level security.
-- On PostgreSQL the server logs in as this role (`plinth migrate` gives it a password); on PGlite each transaction
-- switches to it as its first statement.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'plinth_app') THEN
    CREATE ROLE plinth_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
  END IF;
END
$$;
--> statement-breakpoint
GRANT USAGE ON SCHEMA public TO plinth_app;
--> statement-breakpoint
-- Tenant tables: a restrictive policy on the transaction's tenant (app.org_id) and user (app.user_id), for reads
-- (USING) and writes (WITH CHECK). The permissive policy only opens the table for the restrictive one to narrow.
ALTER TABLE "orgs" ENABLE ROW LEVEL SECURITY;
--> statement-breakpoint
ALTER TABLE "orgs" FORCE ROW LEVEL SECURITY;
--> statement-breakpoint
CREATE POLICY orgs_open ON "orgs" AS PERMISSIVE FOR ALL TO PUBLIC USING (true) WITH CHECK (true);
--> statement-breakpoint
CREATE POLICY orgs_tenant ON "orgs" AS RESTRICTIVE FOR ALL TO PUBLIC
  USING (
    id = nullif(current_setting('app.org_id', true), '')
    OR EXISTS (
      SELECT 1 FROM memberships m
      WHERE m.org_id = orgs.id AND m.user_id = nullif(current_setting('app.user_id', true), '')
    )
  )
  WITH CHECK (id = nullif(current_setting('app.org_id', true), ''));
--> statement-breakpoint
ALTER TABLE "memberships" ENABLE ROW LEVEL SECURITY;
--> statement-breakpoint
ALTER TABLE "memberships" FORCE ROW LEVEL SECURITY;
--> statement-breakpoint
CREATE POLICY memberships_open ON "memberships" AS PERMISSIVE FOR ALL TO PUBLIC USING (true) WITH CHECK (true);
--> statement-breakpoint
CREATE POLICY memberships_tenant ON "memberships" AS RESTRICTIVE FOR ALL TO PUBLIC
  USING (
    org_id = nullif(current_setting('app.org_id', true), '')
    OR user_id = nullif(current_setting('app.user_id', true), '')
  )
  WITH CHECK (org_id = nullif(current_setting('app.org_id', true), ''));
