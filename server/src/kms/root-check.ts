import { sql } from "drizzle-orm";
import type { Database } from "../db/client.ts";
import { ConfigError } from "../config.ts";
import type { KekRow } from "./kek-store.ts";
import type { Kms } from "./kms.ts";

interface StoredKek {
  org_id: string | null;
  version: number;
  wrapped_key: string;
  root_key_id: string;
}

async function present(db: Database, table: string): Promise<boolean> {
  const res = (await db.owner.execute(sql`select to_regclass(${`public.${table}`}) is not null as present`)) as unknown as { rows: { present: boolean }[] };
  return res.rows[0]?.present === true;
}

/** One KEK of each root key some KEK of the table is wrapped under. */
async function canaries(db: Database, query: ReturnType<typeof sql>): Promise<StoredKek[]> {
  return ((await db.owner.execute(query)) as unknown as { rows: StoredKek[] }).rows;
}

/**
 * The boot check of the root key, before anything is written (migrations included): every root key some KEK is
 * wrapped under (an org's, in vault_keks, or the platform's, in kms_platform_keks) must be configured
 * (PLINTH_MASTER_KEY, or PLINTH_MASTER_KEY_PREVIOUS during a root key rotation), and one KEK of each must open under
 * it (a canary). Otherwise the server refuses to start, naming the variable, rather than start and fail each
 * secret's reads (or the token-signing keys'). It reads as the owner: the check spans every org. (An owner role that
 * is neither superuser nor BYPASSRLS sees no org rows through the forced row-level security, and that part passes
 * vacuously; each read then still refuses with KMS_ROOT_KEY_MISMATCH. The platform tier has no RLS.)
 */
export async function assertRootKeyConfigured(db: Database, kms: Pick<Kms, "rootKeyIds" | "checkKek" | "checkPlatformKek">): Promise<void> {
  const keks: { row: StoredKek; check: (row: KekRow) => void }[] = [];
  if (await present(db, "vault_keks")) {
    const rows = await canaries(
      db,
      sql`select distinct on (root_key_id) org_id, version, wrapped_key, root_key_id from vault_keks order by root_key_id, org_id, version`,
    );
    for (const row of rows) keks.push({ row, check: (r) => kms.checkKek(r) });
  }
  if (await present(db, "kms_platform_keks")) {
    const rows = await canaries(
      db,
      sql`select distinct on (root_key_id) null as org_id, version, wrapped_key, root_key_id from kms_platform_keks order by root_key_id, version`,
    );
    for (const row of rows) keks.push({ row, check: (r) => kms.checkPlatformKek(r) });
  }
  for (const { row: r, check } of keks) {
    if (!kms.rootKeyIds.includes(r.root_key_id)) {
      throw new ConfigError(
        "PLINTH_MASTER_KEY",
        `the vault's keys are wrapped under another root key (fingerprint ${r.root_key_id}) than the one configured: start with the master key (or key file) that wrote them, and during a root key rotation set the old one as PLINTH_MASTER_KEY_PREVIOUS. Nothing was changed.`,
      );
    }
    try {
      check({ orgId: r.org_id ?? "", version: r.version, wrappedKey: r.wrapped_key, rootKeyId: r.root_key_id } as KekRow);
    } catch {
      throw new ConfigError(
        "PLINTH_MASTER_KEY",
        `a vault key wrapped under root key ${r.root_key_id} does not open with the configured PLINTH_MASTER_KEY (or PLINTH_MASTER_KEY_PREVIOUS): the key or its row is not what was written. Nothing was changed.`,
      );
    }
  }
}
