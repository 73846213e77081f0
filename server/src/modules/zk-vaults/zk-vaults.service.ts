import type { Database, Executor } from "../../db/client.ts";
import type { Clock } from "../../lib/clock.ts";
import { platformError } from "../../lib/errors.ts";
import { newId } from "../../lib/ids.ts";
import type { KdfParams } from "../../zk/zk.kdf.ts";
import { TAG_BYTES } from "../../zk/zk.primitives.ts";
import type { OrgMembership } from "../access/access.service.ts";
import type { AuditActor, AuditService } from "../audit/audit.service.ts";
import { zkError } from "./zk-vaults.errors.ts";
import type { EntryRow, VaultRow, ZkRepo } from "./zk-vaults.repo.ts";
import { MAX_ENTRY_BYTES } from "./zk-vaults.schemas.ts";

export interface PutUserKeyInput {
  public_key: string;
  encrypted_private_key: string;
  kdf: KdfParams;
}
export interface CreateVaultInput {
  name: string;
  kdf: KdfParams;
  passphrase_wrapped_key: string;
  recovery_phrase_wrapped_key: string;
  hardware_wrapped_key: string;
  key_check: string;
}
export interface SetPassphraseInput {
  kdf: KdfParams;
  passphrase_wrapped_key: string;
  recovered_with?: "recovery_phrase" | "hardware_key" | "shares";
}
export interface EntryInput {
  nonce: string;
  ciphertext: string;
  key_version: number;
}

export const invalid = (field: string, detail: string) => platformError("VALIDATION_FAILED", detail, { field });

/** The caller's own vault: another member's vault, or another org's, is not found (the same answer as none). */
export async function loadOwnVault(repo: Pick<ZkRepo, "findVault">, tx: Executor, caller: OrgMembership, id: string, lock = false): Promise<VaultRow> {
  const row = await repo.findVault(tx, caller.orgId, caller.userId, id, lock);
  if (!row) throw zkError("ZK_VAULT_NOT_FOUND", `No vault ${id.slice(0, 40)} of yours in this organization.`, { field: "vaultId" });
  return row;
}

/** A vault the caller owns, or is a member of at its current key version (shared vaults); not found otherwise. */
export async function loadUsableVault(repo: Pick<ZkRepo, "findAccessibleVault">, tx: Executor, caller: OrgMembership, id: string, write = false) {
  const found = await repo.findAccessibleVault(tx, caller.orgId, caller.userId, id, write);
  if (!found) throw zkError("ZK_VAULT_NOT_FOUND", `No vault ${id.slice(0, 40)} of yours or shared with you in this organization.`, { field: "vaultId" });
  return found;
}

/** What the client library will accept: whole Base64 of a tagged ciphertext no larger than an entry may be. */
function checkCiphertext(value: string): void {
  const bytes = value.length % 4 === 0 ? Buffer.from(value, "base64").length : -1;
  if (bytes < TAG_BYTES) throw invalid("ciphertext", "ciphertext is not Base64 of an XChaCha20-Poly1305 ciphertext (at least its 16-byte tag).");
  if (bytes > MAX_ENTRY_BYTES + TAG_BYTES) throw invalid("ciphertext", `ciphertext holds more than ${MAX_ENTRY_BYTES} bytes of value.`);
}

function checkKeyVersion(vault: VaultRow, keyVersion: number): void {
  if (keyVersion !== vault.keyVersion) {
    throw invalid("key_version", `The vault's key is at version ${vault.keyVersion}; encrypt under it (key_version ${vault.keyVersion}), not ${keyVersion}.`);
  }
}

/**
 * Zero-knowledge vaults: the server keeps what the client encrypted (server/src/zk/) and nothing that decrypts it.
 * A vault is its owner's, and its members' when shared (zk-members.service.ts): keys, recovery and members are the
 * owner's alone; entries are read and written by owner and members. Entries change under
 * optimistic concurrency (a stale version answers 409, never a lost update). Every change is audited with names and
 * ids only — no ciphertext, wrapped key or share goes into the audit log.
 */
export function createZkVaultsService(deps: { db: Database; clock: Clock; repo: ZkRepo; audit: Pick<AuditService, "record"> }) {
  const { db, clock, repo, audit } = deps;
  const entryNotFound = (name: string) => zkError("ZK_ENTRY_NOT_FOUND", `No entry ${name} in this vault.`, { field: "entryName" });
  const conflict = (current: number, expected: number) =>
    zkError("ZK_ENTRY_VERSION_CONFLICT", `The entry is at version ${current}, not ${expected}: it changed since you read it. Read it again and retry.`, {
      field: "version",
      extra: { current_version: current },
    });

  return {
    async putMyKey(caller: OrgMembership, input: PutUserKeyInput, actor: AuditActor) {
      const now = clock.now();
      return db.tx({ orgId: caller.orgId }, async (tx) => {
        const before = await repo.findUserKey(tx, caller.orgId, caller.userId);
        const row = await repo.upsertUserKey(tx, {
          orgId: caller.orgId,
          userId: caller.userId,
          publicKey: input.public_key,
          encryptedPrivateKey: input.encrypted_private_key,
          kdf: input.kdf,
          createdAt: now,
          updatedAt: now,
        });
        await audit.record(tx, actor, {
          orgId: caller.orgId,
          action: before ? "zk.key.replaced" : "zk.key.created",
          target: { type: "user", id: caller.userId },
        });
        return row;
      });
    },

    getMyKey(caller: OrgMembership) {
      return db.tx({ orgId: caller.orgId }, async (tx) => (await repo.findUserKey(tx, caller.orgId, caller.userId)) ?? null);
    },

    async getPublicKey(caller: OrgMembership, userId: string) {
      const row = await db.tx({ orgId: caller.orgId }, (tx) => repo.findUserKey(tx, caller.orgId, userId));
      if (!row) throw zkError("ZK_KEY_NOT_FOUND", `No member ${userId.slice(0, 40)} with a zero-knowledge key in this organization.`, { field: "userId" });
      return row;
    },

    async createVault(caller: OrgMembership, input: CreateVaultInput, actor: AuditActor): Promise<VaultRow> {
      const now = clock.now();
      return db.tx({ orgId: caller.orgId }, async (tx) => {
        const row = await repo.insertVault(tx, {
          id: newId("zkVault", now.getTime()),
          orgId: caller.orgId,
          ownerId: caller.userId,
          name: input.name,
          keyVersion: 1,
          kdf: input.kdf,
          passphraseWrappedKey: input.passphrase_wrapped_key,
          recoveryPhraseWrappedKey: input.recovery_phrase_wrapped_key,
          hardwareWrappedKey: input.hardware_wrapped_key,
          keyCheck: input.key_check,
          shareThreshold: null,
          createdAt: now,
          updatedAt: now,
        });
        await audit.record(tx, actor, { orgId: caller.orgId, action: "zk.vault.created", target: { type: "zk_vault", id: row.id }, diff: { name: row.name } });
        return row;
      });
    },

    listVaults(caller: OrgMembership, after: string | undefined, limit: number): Promise<VaultRow[]> {
      return db.tx({ orgId: caller.orgId }, (tx) => repo.listVaults(tx, caller.orgId, caller.userId, after, limit));
    },

    /** The owner's view (wraps, shares, members), or a member's (their sealed copy of the key). */
    getVault(caller: OrgMembership, id: string) {
      return db.tx({ orgId: caller.orgId }, async (tx) => {
        const { vault, member } = await loadUsableVault(repo, tx, caller, id);
        if (member) return { vault, member, shares: [], members: [] };
        return { vault, member, shares: await repo.listVaultShares(tx, caller.orgId, id), members: await repo.listMembers(tx, caller.orgId, id) };
      });
    },

    /**
     * A new passphrase wrap (a change, or the end of a recovery): the client re-wrapped the key it holds. Open
     * recovery requests are completed by it, so released shares stop being relayed.
     */
    async setPassphrase(caller: OrgMembership, id: string, input: SetPassphraseInput, actor: AuditActor): Promise<VaultRow> {
      const now = clock.now();
      return db.tx({ orgId: caller.orgId }, async (tx) => {
        await loadOwnVault(repo, tx, caller, id, true);
        const row = await repo.updateVault(tx, caller.orgId, id, { kdf: input.kdf, passphraseWrappedKey: input.passphrase_wrapped_key, updatedAt: now });
        const completed = await repo.closeOpenRequests(tx, caller.orgId, id, "completed", now);
        await audit.record(tx, actor, {
          orgId: caller.orgId,
          action: input.recovered_with ? "zk.vault.recovered" : "zk.vault.passphrase_changed",
          target: { type: "zk_vault", id },
          diff: { ...(input.recovered_with ? { recovered_with: input.recovered_with } : {}), completed_requests: completed },
        });
        return row;
      });
    },

    async deleteVault(caller: OrgMembership, id: string, actor: AuditActor): Promise<void> {
      await db.tx({ orgId: caller.orgId }, async (tx) => {
        const row = await loadOwnVault(repo, tx, caller, id, true);
        await repo.deleteVault(tx, caller.orgId, id);
        await audit.record(tx, actor, { orgId: caller.orgId, action: "zk.vault.deleted", target: { type: "zk_vault", id }, diff: { name: row.name } });
      });
    },

    async createEntry(caller: OrgMembership, vaultId: string, input: EntryInput & { name: string }, actor: AuditActor): Promise<EntryRow> {
      checkCiphertext(input.ciphertext);
      const now = clock.now();
      return db.tx({ orgId: caller.orgId }, async (tx) => {
        const { vault } = await loadUsableVault(repo, tx, caller, vaultId, true);
        checkKeyVersion(vault, input.key_version);
        const row = await repo.insertEntry(tx, {
          orgId: caller.orgId,
          vaultId,
          name: input.name,
          ciphertext: input.ciphertext,
          nonce: input.nonce,
          keyVersion: input.key_version,
          version: 1,
          createdBy: actor.id,
          createdAt: now,
          updatedBy: actor.id,
          updatedAt: now,
        });
        if (!row) throw zkError("ZK_ENTRY_EXISTS", `The vault already has an entry ${input.name}: change it with PUT.`, { field: "name" });
        await audit.record(tx, actor, {
          orgId: caller.orgId,
          action: "zk.entry.created",
          target: { type: "zk_vault", id: vaultId },
          diff: { name: input.name },
        });
        return row;
      });
    },

    listEntries(caller: OrgMembership, vaultId: string, after: string | undefined, limit: number): Promise<EntryRow[]> {
      return db.tx({ orgId: caller.orgId }, async (tx) => {
        await loadUsableVault(repo, tx, caller, vaultId);
        return repo.listEntries(tx, caller.orgId, vaultId, after, limit);
      });
    },

    getEntry(caller: OrgMembership, vaultId: string, name: string): Promise<EntryRow> {
      return db.tx({ orgId: caller.orgId }, async (tx) => {
        await loadUsableVault(repo, tx, caller, vaultId);
        const row = await repo.findEntry(tx, caller.orgId, vaultId, name);
        if (!row) throw entryNotFound(name);
        return row;
      });
    },

    async updateEntry(caller: OrgMembership, vaultId: string, name: string, input: EntryInput, expected: number | undefined, actor: AuditActor) {
      checkCiphertext(input.ciphertext);
      const now = clock.now();
      return db.tx({ orgId: caller.orgId }, async (tx) => {
        const { vault } = await loadUsableVault(repo, tx, caller, vaultId, true);
        checkKeyVersion(vault, input.key_version);
        const set = { ciphertext: input.ciphertext, nonce: input.nonce, keyVersion: input.key_version, updatedBy: actor.id, updatedAt: now };
        const row = await repo.updateEntry(tx, caller.orgId, vaultId, name, expected, set);
        if (!row) {
          const current = await repo.findEntry(tx, caller.orgId, vaultId, name);
          throw current && expected !== undefined ? conflict(current.version, expected) : entryNotFound(name);
        }
        await audit.record(tx, actor, {
          orgId: caller.orgId,
          action: "zk.entry.updated",
          target: { type: "zk_vault", id: vaultId },
          diff: { name, version: [row.version - 1, row.version] },
        });
        return row;
      });
    },

    async deleteEntry(caller: OrgMembership, vaultId: string, name: string, expected: number | undefined, actor: AuditActor): Promise<void> {
      await db.tx({ orgId: caller.orgId }, async (tx) => {
        await loadUsableVault(repo, tx, caller, vaultId, true);
        if (!(await repo.deleteEntry(tx, caller.orgId, vaultId, name, expected))) {
          const current = await repo.findEntry(tx, caller.orgId, vaultId, name);
          throw current && expected !== undefined ? conflict(current.version, expected) : entryNotFound(name);
        }
        await audit.record(tx, actor, { orgId: caller.orgId, action: "zk.entry.deleted", target: { type: "zk_vault", id: vaultId }, diff: { name } });
      });
    },
  };
}

export type ZkVaultsService = ReturnType<typeof createZkVaultsService>;
