import type { Database, Executor } from "../../db/client.ts";
import type { Clock } from "../../lib/clock.ts";
import { newId } from "../../lib/ids.ts";
import type { OrgMembership } from "../access/access.service.ts";
import type { AuditActor, AuditService } from "../audit/audit.service.ts";
import type { OrgSubjects } from "../vault/vault.service.ts";
import { zkError } from "./zk-vaults.errors.ts";
import type { ZkRepo } from "./zk-vaults.repo.ts";
import { invalid, loadOwnVault } from "./zk-vaults.service.ts";

export interface SetSharesInput {
  threshold: number;
  key_version: number;
  shares: { holder_user_id: string; index: number; sealed_share: string }[];
}

/**
 * The one check of a share set (setting shares, and a rotation's new shares): a threshold they can meet, distinct
 * holders who are other members of the org, indexes 1…n once each, of the vault's key version. `at` prefixes the
 * field names (`shares.` inside a rotation).
 */
export async function checkShareSet(
  tx: Executor,
  subjects: Pick<OrgSubjects, "isMember">,
  caller: OrgMembership,
  input: SetSharesInput,
  keyVersion: number,
  at: string,
): Promise<void> {
  const n = input.shares.length;
  if (input.threshold > n) throw invalid(`${at}threshold`, `threshold ${input.threshold} is more than the ${n} shares given.`);
  const seen = { holders: new Set<string>(), indexes: new Set<number>() };
  input.shares.forEach((s, i) => {
    if (s.holder_user_id === caller.userId)
      throw invalid(`${at}shares.${i}.holder_user_id`, "A share cannot be held by the vault's owner: it would not help them recover.");
    if (seen.holders.has(s.holder_user_id)) throw invalid(`${at}shares.${i}.holder_user_id`, "Each share must be held by a different member.");
    if (s.index > n || seen.indexes.has(s.index)) throw invalid(`${at}shares.${i}.index`, `Share indexes are 1…${n}, each once.`);
    seen.holders.add(s.holder_user_id);
    seen.indexes.add(s.index);
  });
  if (input.key_version !== keyVersion) throw invalid(`${at}key_version`, `The shares must be of key version ${keyVersion}.`);
  for (const [i, s] of input.shares.entries()) {
    if (!(await subjects.isMember(tx, caller.orgId, s.holder_user_id)))
      throw invalid(`${at}shares.${i}.holder_user_id`, `No member ${s.holder_user_id.slice(0, 40)} in this organization.`);
  }
}

/**
 * Social recovery, relayed: the owner's client splits the vault key and seals each share to a holder; when the owner
 * has lost their passphrase they open a recovery request with a fresh public key; each holder's client opens its
 * share and seals it again to that key; the owner's client combines them and checks the result. The server stores
 * and forwards sealed shares only: it never holds a share in the clear, nor enough to rebuild the key.
 */
export function createZkRecoveryService(deps: {
  db: Database;
  clock: Clock;
  repo: ZkRepo;
  audit: Pick<AuditService, "record">;
  subjects: Pick<OrgSubjects, "isMember">;
}) {
  const { db, clock, repo, audit, subjects } = deps;
  const requestNotFound = (id: string, field: string) =>
    zkError("ZK_RECOVERY_REQUEST_NOT_FOUND", `No recovery request ${id.slice(0, 40)} of this vault.`, { field });

  return {
    /** Replaces the vault's shares as a set; open requests are cancelled (their shares are gone). */
    async setShares(caller: OrgMembership, vaultId: string, input: SetSharesInput, actor: AuditActor) {
      const now = clock.now();
      return db.tx({ orgId: caller.orgId }, async (tx) => {
        // the vault first: to anyone but its owner it does not exist, whatever the body says
        const vault = await loadOwnVault(repo, tx, caller, vaultId, true);
        await checkShareSet(tx, subjects, caller, input, vault.keyVersion, "");
        const cancelled = await repo.closeOpenRequests(tx, caller.orgId, vaultId, "cancelled", now);
        const rows = await repo.replaceShares(
          tx,
          caller.orgId,
          vaultId,
          input.shares.map((s) => ({
            id: newId("zkShare", now.getTime()),
            orgId: caller.orgId,
            vaultId,
            keyVersion: vault.keyVersion,
            shareIndex: s.index,
            holderId: s.holder_user_id,
            sealedShare: s.sealed_share,
            createdAt: now,
          })),
        );
        await repo.updateVault(tx, caller.orgId, vaultId, { shareThreshold: input.threshold, updatedAt: now });
        await audit.record(tx, actor, {
          orgId: caller.orgId,
          action: "zk.shares.set",
          target: { type: "zk_vault", id: vaultId },
          diff: { threshold: input.threshold, holders: rows.map((r) => r.holderId), cancelled_requests: cancelled },
        });
        return rows;
      });
    },

    /** The shares the caller holds for others, each with its vault's open requests. */
    listHeld(caller: OrgMembership, after: string | undefined, limit: number) {
      return db.tx({ orgId: caller.orgId }, async (tx) => {
        const held = await repo.listHeldShares(tx, caller.orgId, caller.userId, after, limit);
        const requests = await repo.openRequestsOf(tx, caller.orgId, [...new Set(held.map((h) => h.share.vaultId))]);
        const released = new Set(
          (
            await repo.listReleases(
              tx,
              caller.orgId,
              requests.map((r) => r.id),
            )
          ).map((r) => `${r.requestId}|${r.shareId}`),
        );
        return held.map((h) => ({
          ...h,
          openRequests: requests.filter((r) => r.vaultId === h.share.vaultId).map((r) => ({ request: r, released: released.has(`${r.id}|${h.share.id}`) })),
        }));
      });
    },

    /** A new request (any earlier open one is cancelled): holders will seal their shares to `publicKey`. */
    async openRequest(caller: OrgMembership, vaultId: string, publicKey: string, actor: AuditActor) {
      const now = clock.now();
      return db.tx({ orgId: caller.orgId }, async (tx) => {
        const vault = await loadOwnVault(repo, tx, caller, vaultId, true);
        if (vault.shareThreshold === null)
          throw zkError("ZK_VAULT_HAS_NO_SHARES", "This vault has no shares to recover from: recover with the phrase or the hardware key.", {
            field: "vaultId",
          });
        const cancelled = await repo.closeOpenRequests(tx, caller.orgId, vaultId, "cancelled", now);
        const request = await repo.insertRequest(tx, {
          id: newId("zkRecoveryRequest", now.getTime()),
          orgId: caller.orgId,
          vaultId,
          requesterId: caller.userId,
          publicKey,
          status: "open",
          createdAt: now,
        });
        await audit.record(tx, actor, {
          orgId: caller.orgId,
          action: "zk.recovery.requested",
          target: { type: "zk_vault", id: vaultId },
          diff: { request_id: request.id, cancelled_requests: cancelled },
        });
        return { request, threshold: vault.shareThreshold, releases: [] };
      });
    },

    getRequest(caller: OrgMembership, vaultId: string, requestId: string) {
      return db.tx({ orgId: caller.orgId }, async (tx) => {
        const vault = await loadOwnVault(repo, tx, caller, vaultId);
        const request = await repo.findRequest(tx, caller.orgId, vaultId, requestId);
        if (!request) throw requestNotFound(requestId, "recoveryRequestId");
        return { request, threshold: vault.shareThreshold, releases: await repo.listReleases(tx, caller.orgId, [request.id]) };
      });
    },

    /**
     * The holder relays its share, sealed by its client to the request's public key. Only the share's holder may;
     * only for an open request of that share's vault; once per request.
     */
    async release(caller: OrgMembership, vaultId: string, shareId: string, input: { request_id: string; sealed_share: string }, actor: AuditActor) {
      const now = clock.now();
      return db.tx({ orgId: caller.orgId }, async (tx) => {
        const share = await repo.findHeldShare(tx, caller.orgId, caller.userId, vaultId, shareId);
        if (!share) throw zkError("ZK_SHARE_NOT_FOUND", `No share ${shareId.slice(0, 40)} of this vault held by you.`, { field: "shareId" });
        const request = await repo.findRequest(tx, caller.orgId, vaultId, input.request_id, true);
        if (!request) throw requestNotFound(input.request_id, "request_id");
        if (request.status !== "open")
          throw zkError("ZK_RECOVERY_REQUEST_CLOSED", `The recovery request is ${request.status}: nothing more is relayed for it.`, { field: "request_id" });
        const row = await repo.insertRelease(tx, {
          orgId: caller.orgId,
          requestId: request.id,
          shareId,
          shareIndex: share.shareIndex,
          sealedShare: input.sealed_share,
          releasedBy: caller.userId,
          createdAt: now,
        });
        if (!row) throw zkError("ZK_SHARE_ALREADY_RELEASED", "You already released this share for this request.", { field: "shareId" });
        await audit.record(tx, actor, {
          orgId: caller.orgId,
          action: "zk.share.released",
          target: { type: "zk_vault", id: vaultId },
          diff: { request_id: request.id, share_id: shareId, index: share.shareIndex, requester_id: request.requesterId },
        });
        return row;
      });
    },
  };
}

export type ZkRecoveryService = ReturnType<typeof createZkRecoveryService>;
