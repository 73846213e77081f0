import type { Executor } from "../../db/client.ts";
import type { Clock } from "../../lib/clock.ts";
import type { AuditActor } from "../audit/audit.service.ts";
import { vaultError } from "./vault.errors.ts";
import type { SecretKind, SecretRow, SecretVersionRow, VaultRepo } from "./vault.repo.ts";

/** The kinds of secret another module owns the shape of (every kind but generic). */
export type ManagedKind = Exclude<SecretKind, "generic">;

/** Whether the secret is of a managed kind (its value's shape is another module's). */
export const isManaged = (row: Pick<SecretRow, "kind">): boolean => row.kind !== "generic";

/**
 * The guard of the ordinary secret routes: a secret of a managed kind (an integration connection's token set) is
 * changed, served and deleted only by the module owning its shape, so 409 SECRET_KIND_MANAGED naming `field` on every
 * route that would.
 */
export function refuseManaged<R extends Pick<SecretRow, "kind">>(row: R, field = "secretId"): R {
  if (isManaged(row)) {
    throw vaultError(
      "SECRET_KIND_MANAGED",
      `The secret is an integration connection's token set (kind ${row.kind}): use /v1/orgs/{orgId}/connections to refresh, use or revoke it.`,
      { field },
    );
  }
  return row;
}

/**
 * Secrets whose value another module owns the shape of (an integration connection's token set): org secrets of a
 * kind other than generic, written and read only through these functions, inside the owning module's tenant
 * transaction. The secret routes list their metadata but refuse to change, reveal, resolve, lease, share or delete
 * them (`refuseManaged` below). The owning module audits its own events; the value is never in them.
 */
export interface ManagedSecrets {
  /** A new org secret of `kind` holding `value` as version 1. */
  create(
    tx: Executor,
    orgId: string,
    input: { kind: ManagedKind; name: string; description: string; value: string },
    actor: AuditActor,
  ): Promise<{ id: string; version: number }>;
  /** The current value of the org's secret `id` of `kind`; undefined when there is none (deleted, or of another kind). */
  read(tx: Executor, orgId: string, id: string, kind: ManagedKind): Promise<{ value: string; version: number } | undefined>;
  /**
   * `value` as the next version, if the secret (locked first) is still at version `expected`: the new version, or
   * undefined when it moved on (another writer won; nothing is written) or is gone. Versions before the previous
   * one are deleted.
   */
  write(tx: Executor, orgId: string, id: string, kind: ManagedKind, value: string, expected: number, actor: AuditActor): Promise<number | undefined>;
  /** Deletes the secret and its versions; false when there was none of that kind. */
  remove(tx: Executor, orgId: string, id: string, kind: ManagedKind): Promise<boolean>;
}

/** Managed secrets are org-scoped: no member's personal view applies (repo lookups take a viewer). */
const NO_VIEWER = "";

export function createManagedSecrets(deps: {
  clock: Clock;
  repo: Pick<VaultRepo, "insert" | "find" | "findWithVersion" | "update" | "delete" | "deleteVersionsBelow">;
  newId: (now: number) => string;
  /** secret-values.ts: the one size check, encryption and decryption of a value (bound to the secret's identity). */
  valueBytes: (value: string) => Buffer;
  writeVersion: (tx: Executor, row: SecretRow, version: number, value: Buffer, actor: AuditActor) => Promise<void>;
  openValue: (tx: Executor, row: SecretRow, stored: SecretVersionRow) => Promise<string>;
}): ManagedSecrets {
  const { clock, repo } = deps;
  const ofKind = (row: SecretRow | undefined, kind: ManagedKind) => (row && row.kind === kind ? row : undefined);

  return {
    async create(tx, orgId, input, actor) {
      const value = deps.valueBytes(input.value);
      const now = clock.now();
      const row = await repo.insert(tx, {
        id: deps.newId(now.getTime()),
        orgId,
        scope: "org",
        teamId: null,
        userId: null,
        kind: input.kind,
        name: input.name,
        description: input.description,
        tags: [],
        expiresAt: null,
        currentVersion: 1,
        createdBy: actor.id,
        createdAt: now,
        updatedBy: actor.id,
        updatedAt: now,
      });
      await deps.writeVersion(tx, row, 1, value, actor);
      return { id: row.id, version: 1 };
    },

    async read(tx, orgId, id, kind) {
      const found = await repo.findWithVersion(tx, orgId, NO_VIEWER, id, undefined);
      const row = ofKind(found?.secret, kind);
      if (!row || !found?.version) return undefined;
      return { value: await deps.openValue(tx, row, found.version), version: row.currentVersion };
    },

    async write(tx, orgId, id, kind, value, expected, actor) {
      const bytes = deps.valueBytes(value);
      const row = ofKind(await repo.find(tx, orgId, NO_VIEWER, id, true), kind);
      if (!row || row.currentVersion !== expected) return undefined;
      const next = row.currentVersion + 1;
      await deps.writeVersion(tx, row, next, bytes, actor);
      await repo.update(tx, orgId, id, { currentVersion: next, updatedBy: actor.id, updatedAt: clock.now() });
      // an old token set is of no use and still a credential: only the new one and the one before it stay
      await repo.deleteVersionsBelow(tx, orgId, id, next - 1);
      return next;
    },

    async remove(tx, orgId, id, kind) {
      if (!ofKind(await repo.find(tx, orgId, NO_VIEWER, id, true), kind)) return false;
      await repo.delete(tx, orgId, id);
      return true;
    },
  };
}
