import { asc, eq, isNotNull } from "drizzle-orm";
import { ConfigError } from "../../config.ts";
import type { Database } from "../../db/client.ts";
import { signingKeys } from "../../db/schema/index.ts";
import type { Kms } from "../../kms/kms.ts";
import { deriveKey, open } from "../../lib/crypto.ts";

/** The associated data the legacy seal bound a private JWK to (the envelope that replaces it binds the same). */
const privateAad = (kid: string) => `signing_key:${kid}`;

/**
 * Legacy: how versions before 0020_platform_keks sealed a private JWK (lib/crypto seal under the master key's
 * "signing-keys" derivation). Kept only to convert such rows (and for doctor to check that they will convert).
 * Throws a ConfigError naming PLINTH_MASTER_KEY when none of the configured keys opens it.
 */
export function openLegacySealed(masterKeys: readonly Buffer[], kid: string, sealed: string): Buffer {
  for (const k of masterKeys) {
    try {
      return open(deriveKey(k, "signing-keys"), sealed, privateAad(kid));
    } catch {
      // sealed under another of the keys, or none
    }
  }
  throw new ConfigError(
    "PLINTH_MASTER_KEY",
    `the token-signing key ${kid} was sealed under another master key than the one configured: start with the master key (or key file) that wrote it, and during a root key rotation set the old one as PLINTH_MASTER_KEY_PREVIOUS. Nothing was changed.`,
  );
}

/**
 * Moves signing keys sealed the old way onto the KMS layer: each unretired row's private JWK is opened with the
 * master key (or a previous one), encrypted through the platform tier and its seal cleared; a retired row's seal is
 * cleared alone (a retired key never signs or verifies again, so its private half is only a liability). One
 * transaction, rows locked: of two instances booting at once, the second waits and then finds nothing left to
 * convert. A key that opens under none of the configured keys rolls it all back. Returns how many rows it changed.
 */
export async function convertLegacySigningKeys(db: Database, kms: Pick<Kms, "encryptPlatform">, masterKeys: readonly Buffer[]): Promise<number> {
  return db.tx({}, async (tx) => {
    const rows = await tx
      .select({ id: signingKeys.id, sealed: signingKeys.privateJwkSealed, retiredAt: signingKeys.retiredAt })
      .from(signingKeys)
      .where(isNotNull(signingKeys.privateJwkSealed))
      .orderBy(asc(signingKeys.id))
      .for("update");
    for (const row of rows) {
      if (row.retiredAt || row.sealed === null) {
        await tx.update(signingKeys).set({ privateJwkSealed: null }).where(eq(signingKeys.id, row.id));
        continue;
      }
      const privateJwk = openLegacySealed(masterKeys, row.id, row.sealed);
      try {
        const envelope = await kms.encryptPlatform(tx, privateJwk, privateAad(row.id));
        await tx
          .update(signingKeys)
          .set({ privateJwkSealed: null, ...envelope })
          .where(eq(signingKeys.id, row.id));
      } finally {
        privateJwk.fill(0);
      }
    }
    return rows.length;
  });
}
