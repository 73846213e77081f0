-- Who invited, of any principal kind: a service account's token or key, or a registered service, can invite too.
-- invited_by stays the person (a foreign key to users), null when no person invited; invited_by_type/_id name the
-- actual inviter (usr_…, sa_…, svk_…). Before this, a machine's invitation broke invited_by's foreign key (a 500).
ALTER TABLE "invitations" ADD COLUMN "invited_by_type" text DEFAULT 'user' NOT NULL;--> statement-breakpoint
ALTER TABLE "invitations" ADD COLUMN "invited_by_id" text;--> statement-breakpoint
UPDATE "invitations" SET "invited_by_id" = "invited_by" WHERE "invited_by" IS NOT NULL;
