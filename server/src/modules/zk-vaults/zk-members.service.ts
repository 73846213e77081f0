import type { Database } from "../../db/client.ts";
import type { Clock } from "../../lib/clock.ts";
import { newId } from "../../lib/ids.ts";
import type { KdfParams } from "../../zk/zk.kdf.ts";
import type { OrgMembership } from "../access/access.service.ts";
import type { AuditActor, AuditService } from "../audit/audit.service.ts";
import type { OrgSubjects } from "../vault/vault.service.ts";
import { checkShareSet, type SetSharesInput } from "./zk-recovery.service.ts";
import { zkError } from "./zk-vaults.errors.ts";
import type { ZkRepo } from "./zk-vaults.repo.ts";
import { invalid, loadOwnVault } from "./zk-vaults.service.ts";

export interface RotateInput {
  key_version: number;
  kdf: KdfParams;
  passphrase_wrapped_key: string;
  recovery_phrase_wrapped_key: string;
  hardware_wrapped_key: string;
  key_check: string;
  entries: { name: string; nonce: string; ciphertext: string }[];
  members: { user_id: string; sealed_key: string }[];
  shares?: Omit<SetSharesInput, "key_version">;
}

/**
 * Shared zero-knowledge vaults: the owner's client seals the vault key to each member's public key; members then read
 * and write entries. Removing a member is a rotation — the next key version with every wrap, entry, member copy and
 * share made anew by the owner's client — applied in one transaction, so no entry is ever left under a key a removed
 * member holds. The server checks the shape of what it is given, never its content (it cannot).
 */
export function createZkMembersService(deps: {
  db: Database;
  clock: Clock;
  repo: ZkRepo;
  audit: Pick<AuditService, "record">;
  subjects: Pick<OrgSubjects, "isMember">;
}) {
  const { db, clock, repo, audit, subjects } = deps;

  async function requireOtherMember(tx: Parameters<OrgSubjects["isMember"]>[0], caller: OrgMembership, userId: string, field: string) {
    if (userId === caller.userId) throw invalid(field, "The owner holds the vault key already: name another member.");
    if (!(await subjects.isMember(tx, caller.orgId, userId))) throw invalid(field, `No member ${userId.slice(0, 40)} in this organization.`);
  }

  return {
    /** Adds a member (or gives them a new copy): the vault key at its current version, sealed to their key. */
    async putMember(caller: OrgMembership, vaultId: string, userId: string, input: { key_version: number; sealed_key: string }, actor: AuditActor) {
      const now = clock.now();
      return db.tx({ orgId: caller.orgId }, async (tx) => {
        const vault = await loadOwnVault(repo, tx, caller, vaultId, true);
        await requireOtherMember(tx, caller, userId, "userId");
        if (input.key_version !== vault.keyVersion)
          throw invalid("key_version", `The vault's key is at version ${vault.keyVersion}: seal that one (key_version ${vault.keyVersion}).`);
        const row = await repo.upsertMember(tx, {
          orgId: caller.orgId,
          vaultId,
          userId,
          keyVersion: vault.keyVersion,
          sealedKey: input.sealed_key,
          addedBy: actor.id,
          createdAt: now,
        });
        await audit.record(tx, actor, {
          orgId: caller.orgId,
          action: "zk.member.added",
          target: { type: "zk_vault", id: vaultId },
          diff: { user_id: userId, key_version: vault.keyVersion },
        });
        return row;
      });
    },

    listMembers(caller: OrgMembership, vaultId: string) {
      return db.tx({ orgId: caller.orgId }, async (tx) => {
        await loadOwnVault(repo, tx, caller, vaultId);
        return repo.listMembers(tx, caller.orgId, vaultId);
      });
    },

    /**
     * The next key version, all at once: members not listed are removed, every entry must be given re-encrypted
     * (one added or deleted since the client read them answers 409 ZK_ROTATION_STALE and nothing changes), the old
     * shares and open recovery requests go, and the new shares, if given, take their place.
     */
    async rotate(caller: OrgMembership, vaultId: string, input: RotateInput, actor: AuditActor) {
      const now = clock.now();
      return db.tx({ orgId: caller.orgId }, async (tx) => {
        const vault = await loadOwnVault(repo, tx, caller, vaultId, true);
        const next = vault.keyVersion + 1;
        if (input.key_version !== next)
          throw zkError("ZK_ROTATION_STALE", `The vault's key is at version ${vault.keyVersion}: a rotation makes version ${next}.`, { field: "key_version" });
        const current = new Set(await repo.entryNames(tx, caller.orgId, vaultId));
        const given = new Set(input.entries.map((e) => e.name));
        if (given.size !== input.entries.length) throw invalid("entries", "Each entry is given once.");
        const missing = [...current].filter((n) => !given.has(n));
        const extra = [...given].filter((n) => !current.has(n));
        if (missing.length || extra.length) {
          const what = [missing.length ? `missing ${missing.slice(0, 10).join(", ")}` : "", extra.length ? `unknown ${extra.slice(0, 10).join(", ")}` : ""];
          throw zkError("ZK_ROTATION_STALE", `The entries changed since you read them (${what.filter(Boolean).join("; ")}): read them again and retry.`, {
            field: "entries",
          });
        }
        const seen = new Set<string>();
        for (const [i, m] of input.members.entries()) {
          if (seen.has(m.user_id)) throw invalid(`members.${i}.user_id`, "Each member is listed once.");
          seen.add(m.user_id);
          await requireOtherMember(tx, caller, m.user_id, `members.${i}.user_id`);
        }
        if (input.shares) await checkShareSet(tx, subjects, caller, { ...input.shares, key_version: next }, next, "shares.");

        await repo.updateVault(tx, caller.orgId, vaultId, {
          keyVersion: next,
          kdf: input.kdf,
          passphraseWrappedKey: input.passphrase_wrapped_key,
          recoveryPhraseWrappedKey: input.recovery_phrase_wrapped_key,
          hardwareWrappedKey: input.hardware_wrapped_key,
          keyCheck: input.key_check,
          shareThreshold: input.shares?.threshold ?? null,
          updatedAt: now,
        });
        for (const e of input.entries) {
          await repo.updateEntry(tx, caller.orgId, vaultId, e.name, undefined, {
            nonce: e.nonce,
            ciphertext: e.ciphertext,
            keyVersion: next,
            updatedBy: actor.id,
            updatedAt: now,
          });
        }
        const removed = await repo.removeMembersExcept(
          tx,
          caller.orgId,
          vaultId,
          input.members.map((m) => m.user_id),
        );
        for (const m of input.members) {
          await repo.upsertMember(tx, {
            orgId: caller.orgId,
            vaultId,
            userId: m.user_id,
            keyVersion: next,
            sealedKey: m.sealed_key,
            addedBy: actor.id,
            createdAt: now,
          });
        }
        const cancelled = await repo.closeOpenRequests(tx, caller.orgId, vaultId, "cancelled", now);
        await repo.replaceShares(
          tx,
          caller.orgId,
          vaultId,
          (input.shares?.shares ?? []).map((s) => ({
            id: newId("zkShare", now.getTime()),
            orgId: caller.orgId,
            vaultId,
            keyVersion: next,
            shareIndex: s.index,
            holderId: s.holder_user_id,
            sealedShare: s.sealed_share,
            createdAt: now,
          })),
        );
        await audit.record(tx, actor, {
          orgId: caller.orgId,
          action: "zk.vault.rotated",
          target: { type: "zk_vault", id: vaultId },
          diff: {
            key_version: [vault.keyVersion, next],
            entries: input.entries.length,
            members: input.members.map((m) => m.user_id),
            removed_members: removed,
            share_holders: (input.shares?.shares ?? []).map((s) => s.holder_user_id),
            cancelled_requests: cancelled,
          },
        });
        return { keyVersion: next, removed };
      });
    },
  };
}

export type ZkMembersService = ReturnType<typeof createZkMembersService>;
