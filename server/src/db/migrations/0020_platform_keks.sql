-- The KMS layer's platform tier (issue 10): key-encryption keys for records that belong to no org, versioned and
-- wrapped under the root key like an org's (vault_keks). Not tenant data, so no row-level security (decision 002);
-- the app role gets SELECT/INSERT/UPDATE/DELETE from the migrator's grant on every table, as on vault_keks.
CREATE TABLE "kms_platform_keks" (
	"version" integer PRIMARY KEY NOT NULL,
	"wrapped_key" text NOT NULL,
	"root_key_id" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"retired_at" timestamp with time zone
);
--> statement-breakpoint
-- A signing key's private JWK becomes a KMS envelope under the platform tier. The sealed column stays, nullable,
-- only until each instance's boot converts its rows (modules/keys/signing-keys.legacy.ts) and clears it.
ALTER TABLE "signing_keys" ALTER COLUMN "private_jwk_sealed" DROP NOT NULL;
--> statement-breakpoint
ALTER TABLE "signing_keys" ADD COLUMN "ciphertext" text;
--> statement-breakpoint
ALTER TABLE "signing_keys" ADD COLUMN "nonce" text;
--> statement-breakpoint
ALTER TABLE "signing_keys" ADD COLUMN "wrapped_key" text;
--> statement-breakpoint
ALTER TABLE "signing_keys" ADD COLUMN "kek_version" integer;
--> statement-breakpoint
-- a platform KEK version is never deleted while a signing key's data key is wrapped under it
ALTER TABLE "signing_keys" ADD CONSTRAINT "signing_keys_kek_fk" FOREIGN KEY ("kek_version") REFERENCES "public"."kms_platform_keks"("version") ON DELETE no action ON UPDATE no action;
--> statement-breakpoint
-- the envelope is whole or absent; a row holds the envelope or the legacy seal, never both; an unretired key holds one
ALTER TABLE "signing_keys" ADD CONSTRAINT "signing_keys_private_check" CHECK (
	("ciphertext" is null) = ("nonce" is null) and ("ciphertext" is null) = ("wrapped_key" is null) and ("ciphertext" is null) = ("kek_version" is null)
	and ("private_jwk_sealed" is null or "ciphertext" is null)
	and ("retired_at" is not null or "private_jwk_sealed" is not null or "ciphertext" is not null)
);
--> statement-breakpoint
CREATE INDEX "signing_keys_kek_version_idx" ON "signing_keys" USING btree ("kek_version");
