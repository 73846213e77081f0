import { sql } from "drizzle-orm";
import type { Database } from "../db/client.ts";
import { ConfigError } from "../config.ts";
import type { KekRow } from "./kek-store.ts";
import type { Kms } from "./kms.ts";

/**
 * The boot check of the root key, before anything is written (migrations included): every root key some KEK is
 * wrapped under must be configured (PLINTH_MASTER_KEY, or PLINTH_MASTER_KEY_PREVIOUS during a root key rotation),
 * and one KEK of each must open under it (a canary). Otherwise the server refuses to start, naming the variable,
 * rather than start and fail each secret's reads. It reads as the owner: the check spans every org. (An owner role
 * that is neither superuser nor BYPASSRLS sees no rows through the forced row-level security, and the check passes
 * vacuously; each read then still refuses with KMS_ROOT_KEY_MISMATCH.)
 */
export async function assertRootKeyConfigured(db: Database, kms: Pick<Kms, "rootKeyIds" | "checkKek">): Promise<void> {
  const exists = (await db.owner.execute(sql`select to_regclass('public.vault_keks') is not null as present`)) as unknown as { rows: { present: boolean }[] };
  if (!exists.rows[0]?.present) return;
  const res = (await db.owner.execute(
    sql`select distinct on (root_key_id) org_id, version, wrapped_key, root_key_id from vault_keks order by root_key_id, org_id, version`,
  )) as unknown as { rows: { org_id: string; version: number; wrapped_key: string; root_key_id: string }[] };
  for (const r of res.rows) {
    if (!kms.rootKeyIds.includes(r.root_key_id)) {
      throw new ConfigError(
        "PLINTH_MASTER_KEY",
        `the vault's keys are wrapped under another root key (fingerprint ${r.root_key_id}) than the one configured: start with the master key (or key file) that wrote them, and during a root key rotation set the old one as PLINTH_MASTER_KEY_PREVIOUS. Nothing was changed.`,
      );
    }
    const row = { orgId: r.org_id, version: r.version, wrappedKey: r.wrapped_key, rootKeyId: r.root_key_id } as KekRow;
    try {
      kms.checkKek(row);
    } catch {
      throw new ConfigError(
        "PLINTH_MASTER_KEY",
        `a vault key wrapped under root key ${r.root_key_id} does not open with the configured PLINTH_MASTER_KEY (or PLINTH_MASTER_KEY_PREVIOUS): the key or its row is not what was written. Nothing was changed.`,
      );
    }
  }
}
