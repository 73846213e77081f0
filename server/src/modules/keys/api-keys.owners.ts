import type { Executor } from "../../db/client.ts";
import type { Clock } from "../../lib/clock.ts";
import type { AuditActor, AuditService } from "../audit/audit.service.ts";
import type { ApiKeysRepo } from "./api-keys.repo.ts";

/** Whose keys: a member of the org or one of its service accounts. */
export interface KeyOwnerRef {
  type: "user" | "service_account";
  id: string;
}

/**
 * What other modules do to API keys when something happens to a key's owner or maker (a member removed, a service
 * account deleted). The keys module owns api_keys and credential_index's api_key rows: nobody else writes them. Each
 * function runs in the caller's transaction and audits each key it revokes there (key.revoked with the reason); the
 * caller invalidates the org's access facts after the commit, which drops the keys from every instance's cache.
 */
export function createKeyOwnerOps(deps: { clock: Clock; repo: ApiKeysRepo; audit: Pick<AuditService, "record"> }) {
  const { clock, repo, audit } = deps;

  async function revoke(tx: Executor, orgId: string, ids: readonly string[], reason: string, actor: AuditActor): Promise<string[]> {
    const revoked = await repo.revokeMany(tx, orgId, ids, { reason, by: actor.id, now: clock.now() });
    for (const id of revoked) {
      await audit.record(tx, actor, { orgId, action: "key.revoked", target: { type: "api_key", id }, diff: { revoked_reason: [null, reason] } });
    }
    return revoked;
  }

  return {
    /** Revokes every live key `owner` has in the org; the revoked keys' ids. */
    async revokeAllOf(tx: Executor, orgId: string, owner: KeyOwnerRef, reason: string, actor: AuditActor): Promise<string[]> {
      return revoke(tx, orgId, await repo.liveOwnedBy(tx, orgId, owner), reason, actor);
    },

    /** Every key `owner` has in the org, revoked ones too: the ids that may appear as `created_by` of what it made. */
    idsOf(tx: Executor, orgId: string, owner: KeyOwnerRef): Promise<string[]> {
      return repo.idsOwnedBy(tx, orgId, owner);
    },

    /** The live service-account keys made by any of `makers` (a member's id and their keys' ids). */
    serviceAccountKeysMadeBy(tx: Executor, orgId: string, makers: readonly string[]): Promise<string[]> {
      return repo.liveMadeBy(tx, orgId, makers, "service_account");
    },

    /** Revokes the live service-account keys made by any of `makers`; their ids. */
    async revokeServiceAccountKeysMadeBy(tx: Executor, orgId: string, makers: readonly string[], reason: string, actor: AuditActor): Promise<string[]> {
      return revoke(tx, orgId, await repo.liveMadeBy(tx, orgId, makers, "service_account"), reason, actor);
    },
  };
}

export type KeyOwnerOps = ReturnType<typeof createKeyOwnerOps>;
