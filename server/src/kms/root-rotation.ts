import { sql } from "drizzle-orm";
import type { Database } from "../db/client.ts";
import type { Kms } from "./kms.ts";

/**
 * Root key rotation (`plinth vault rotate-root`), the org tier: re-wraps every org's KEKs not yet under `kms`'s
 * current root key, one org per transaction. Idempotent: run it again after a crash and it picks up the orgs still
 * on the old key. The KEKs themselves (and so every data key and value below them) stay the same. Finds the orgs as
 * the owner (the scan spans every tenant); each org's KEKs change in that org's own transaction.
 */
export async function rotateRootKey(db: Database, kms: Pick<Kms, "rootKeyIds" | "rewrapKeksUnderRoot">): Promise<{ orgs: number; keks: number }> {
  const [current] = kms.rootKeyIds;
  let orgs = 0;
  let keks = 0;
  let after = "";
  for (;;) {
    const res = (await db.owner.execute(
      sql`select distinct org_id from vault_keks where root_key_id <> ${current} and org_id > ${after} order by org_id limit 100`,
    )) as unknown as { rows: { org_id: string }[] };
    if (!res.rows.length) break;
    for (const { org_id: orgId } of res.rows) {
      keks += await db.tx({ orgId }, (tx) => kms.rewrapKeksUnderRoot(tx, orgId));
      orgs++;
      after = orgId;
    }
  }
  return { orgs, keks };
}

/**
 * Root key rotation, the platform tier: re-wraps the platform's KEKs (under which the token-signing keys' data keys
 * are wrapped) not yet under `kms`'s current root key, in one platform transaction; returns how many. Idempotent.
 */
export async function rotatePlatformRootKey(db: Database, kms: Pick<Kms, "rewrapPlatformKeksUnderRoot">): Promise<number> {
  return db.tx({}, (tx) => kms.rewrapPlatformKeksUnderRoot(tx));
}
