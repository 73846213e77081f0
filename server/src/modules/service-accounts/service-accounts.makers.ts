import type { Executor } from "../../db/client.ts";
import type { Clock } from "../../lib/clock.ts";
import type { AuditActor, AuditService } from "../audit/audit.service.ts";
import type { ServiceAccountsRepo } from "./service-accounts.repo.ts";

/**
 * The OAuth clients a member made, for what happens when the member leaves: clients belong to the org (to their
 * service account) and keep working unless the removal asks for them to be revoked. `makers` are the ids a client's
 * `created_by` may hold for that member: their user id and their API keys' ids. Runs in the caller's transaction;
 * the caller invalidates the org's access facts after the commit, which drops cached client liveness everywhere.
 */
export function createClientMakerOps(deps: { clock: Clock; repo: ServiceAccountsRepo; audit: Pick<AuditService, "record"> }) {
  const { clock, repo, audit } = deps;
  return {
    /** The live clients made by any of `makers`, oldest first, locked until the transaction ends. */
    async clientsCreatedBy(tx: Executor, orgId: string, makers: readonly string[]): Promise<string[]> {
      return (await repo.liveClientsMadeBy(tx, orgId, makers)).map((c) => c.id);
    },

    /** Revokes (soft) the live clients made by any of `makers`, each audited as oauth_client.revoked; their ids. */
    async revokeClientsCreatedBy(tx: Executor, orgId: string, makers: readonly string[], reason: string, actor: AuditActor): Promise<string[]> {
      const now = clock.now();
      const ids: string[] = [];
      for (const c of await repo.liveClientsMadeBy(tx, orgId, makers)) {
        await repo.revokeClient(tx, orgId, c.id, now);
        await audit.record(tx, actor, {
          orgId,
          action: "oauth_client.revoked",
          target: { type: "oauth_client", id: c.id },
          diff: { revoked: [false, true], revoked_reason: [null, reason] },
        });
        ids.push(c.id);
      }
      return ids;
    },
  };
}

export type ClientMakerOps = ReturnType<typeof createClientMakerOps>;
