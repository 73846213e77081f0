import type { Executor } from "../../db/client.ts";
import type { Kms } from "../../kms/kms.ts";
import type { Clock } from "../../lib/clock.ts";
import { platformError } from "../../lib/errors.ts";
import type { AuditActor } from "../audit/audit.service.ts";
import type { LifecycleMark } from "./lifecycle.repo.ts";
import type { SecretRow, SecretVersionRow, VaultRepo } from "./vault.repo.ts";
import { MAX_VALUE_BYTES } from "./vault.schemas.ts";

/**
 * The identity a secret version's ciphertext is bound to (the associated data of its encryption): the same bytes
 * under another org, scope, secret or version do not decrypt. The name is left out, so renaming keeps values readable.
 */
export function secretAad(s: Pick<SecretRow, "orgId" | "scope" | "teamId" | "userId" | "id">, version: number): string {
  return `plinth:secret:v1|${s.orgId}|${s.scope}:${s.teamId ?? s.userId ?? ""}|${s.id}|${version}`;
}

/** A value as the bytes to encrypt: 400 naming `value` past MAX_VALUE_BYTES of UTF-8. */
export function valueBytes(value: string): Buffer {
  const bytes = Buffer.from(value, "utf8");
  if (bytes.length > MAX_VALUE_BYTES)
    throw platformError("VALIDATION_FAILED", `value is ${bytes.length} bytes of UTF-8; at most ${MAX_VALUE_BYTES} are allowed.`, { field: "value" });
  return bytes;
}

/**
 * The one encryption and decryption of a secret's versions (kms/), each bound to the secret's identity and version
 * (`secretAad`): the vault's routes, its managed secrets, leases and resolve all go through these. Neither checks
 * access nor audits: the caller has done the one and records the other.
 */
export function createSecretValues(deps: {
  clock: Clock;
  kms: Kms;
  repo: Pick<VaultRepo, "insertVersion">;
  /** Makes the org's lifecycle pass due after a change it must look at (lifecycle.repo.ts markDue). */
  lifecycleDue?: LifecycleMark;
}) {
  const { clock, kms, repo } = deps;

  /** The plaintext bytes of a stored version; the caller zeroes them when done. */
  async function openBytes(tx: Executor, row: SecretRow, stored: SecretVersionRow): Promise<Buffer> {
    return kms.decrypt(tx, row.orgId, stored, secretAad(row, stored.version));
  }

  return {
    /** Encrypts `value` as version `version` of the secret. */
    async writeVersion(tx: Executor, row: SecretRow, version: number, value: Buffer, actor: AuditActor): Promise<void> {
      const envelope = await kms.encrypt(tx, row.orgId, value, secretAad(row, version));
      await repo.insertVersion(tx, { orgId: row.orgId, secretId: row.id, version, ...envelope, createdBy: actor.id, createdAt: clock.now() });
      await deps.lifecycleDue?.(tx, row.orgId); // a new version: retention and rotation reminders look again
    },
    openBytes,
    /** The value of a stored version as text. */
    async openValue(tx: Executor, row: SecretRow, stored: SecretVersionRow): Promise<string> {
      return (await openBytes(tx, row, stored)).toString("utf8");
    },
  };
}
