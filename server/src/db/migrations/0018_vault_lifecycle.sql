-- The vault's lifecycle (issue 10): expiry notices, rotation reminders, retention of old versions, purge of ended
-- leases (modules/vault/lifecycle.service.ts). Each secret records which expiry it was warned of and which version it
-- was reminded about, so every notice goes out once; changing expires_at (or writing a version) makes it due again.
ALTER TABLE "vault_secrets" ADD COLUMN "notify_before_days" integer;--> statement-breakpoint
ALTER TABLE "vault_secrets" ADD COLUMN "rotation_reminder_days" integer;--> statement-breakpoint
ALTER TABLE "vault_secrets" ADD COLUMN "expiry_notified_for" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "vault_secrets" ADD COLUMN "expiry_notified_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "vault_secrets" ADD COLUMN "expired_noted_for" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "vault_secrets" ADD COLUMN "rotation_reminded_version" integer;--> statement-breakpoint
ALTER TABLE "vault_secrets" ADD CONSTRAINT "vault_secrets_notify_before_days_check" CHECK ("vault_secrets"."notify_before_days" is null or ("vault_secrets"."notify_before_days" between 1 and 365));--> statement-breakpoint
ALTER TABLE "vault_secrets" ADD CONSTRAINT "vault_secrets_rotation_reminder_days_check" CHECK ("vault_secrets"."rotation_reminder_days" is null or ("vault_secrets"."rotation_reminder_days" between 1 and 3650));--> statement-breakpoint
-- Retention of old versions per org, and when the org's lifecycle pass is next due: writers lower lifecycle_due_at
-- (never raise it), the pass sets it to the next moment anything of the org needs it. The rows stay readable across
-- tenants (0015's open SELECT): the scheduled pass finds the due orgs there, as the key rotation finds its own.
ALTER TABLE "vault_settings" ADD COLUMN "keep_versions" integer;--> statement-breakpoint
ALTER TABLE "vault_settings" ADD COLUMN "keep_days" integer;--> statement-breakpoint
ALTER TABLE "vault_settings" ADD COLUMN "lifecycle_due_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "vault_settings" ADD CONSTRAINT "vault_settings_keep_versions_check" CHECK ("vault_settings"."keep_versions" is null or ("vault_settings"."keep_versions" between 1 and 1000));--> statement-breakpoint
ALTER TABLE "vault_settings" ADD CONSTRAINT "vault_settings_keep_days_check" CHECK ("vault_settings"."keep_days" is null or ("vault_settings"."keep_days" between 1 and 3650));--> statement-breakpoint
CREATE INDEX "vault_settings_lifecycle_due_idx" ON "vault_settings" USING btree ("lifecycle_due_at") WHERE "lifecycle_due_at" is not null;--> statement-breakpoint
-- Orgs that already hold secrets or leases get a first pass (run as the migrator, which reads across tenants).
INSERT INTO "vault_settings" ("org_id", "lifecycle_due_at")
  SELECT "org_id", now() FROM "vault_secrets" UNION SELECT "org_id", now() FROM "secret_leases"
  ON CONFLICT ("org_id") DO UPDATE SET "lifecycle_due_at" = now();
--> statement-breakpoint
-- The retention deletes old rows of vault_secret_versions inside the org's tenant transaction: 0014's restrictive
-- vault_secret_versions_tenant policy is FOR ALL, so its USING already allows (and limits) that DELETE to the tenant.
SELECT 1;
--> statement-breakpoint
-- A rotation's re-wrap walks an org's versions in key order from a cursor, and the retention reads an org's versions
-- secret by secret: both by (org_id, secret_id, version), without passing what they already moved.
CREATE INDEX "vault_secret_versions_org_secret_idx" ON "vault_secret_versions" USING btree ("org_id","secret_id","version");
