import type { Executor } from "../../db/client.ts";
import type { Clock } from "../../lib/clock.ts";
import type { AuditActor, AuditService } from "../audit/audit.service.ts";
import type { ServiceKeysRepo } from "./service-keys.repo.ts";

/**
 * The service keys a member registered in an org, for what happens when the member leaves: registrations belong to
 * the org and keep working unless the removal asks for them to be revoked. `makers` are the ids a registration's
 * `created_by` may hold for that member: their user id and their API keys' ids. Runs in the caller's (org-scoped)
 * transaction; the caller invalidates the org's access facts after the commit, which drops the verifier's cache
 * and the org's published JWKS everywhere.
 */
export function createServiceKeyMakerOps(deps: { clock: Clock; repo: ServiceKeysRepo; audit: Pick<AuditService, "record"> }) {
  const { clock, repo, audit } = deps;
  return {
    /** The org's live registrations made by any of `makers`, oldest first. */
    async keysCreatedBy(tx: Executor, orgId: string, makers: readonly string[]): Promise<string[]> {
      return (await repo.liveMadeBy(tx, orgId, makers)).map((k) => k.id);
    },

    /** Revokes (soft) the org's live registrations made by any of `makers`, each audited as service_key.revoked; their ids. */
    async revokeCreatedBy(tx: Executor, orgId: string, makers: readonly string[], reason: string, actor: AuditActor): Promise<string[]> {
      const now = clock.now();
      const ids: string[] = [];
      for (const row of await repo.liveMadeBy(tx, orgId, makers)) {
        await repo.revoke(tx, orgId, row, actor.id, now);
        await audit.record(tx, actor, {
          orgId,
          action: "service_key.revoked",
          target: { type: "service_key", id: row.id },
          diff: { revoked: [false, true], kid: row.kid, service: row.service, revoked_reason: [null, reason] },
        });
        ids.push(row.id);
      }
      return ids;
    },
  };
}

export type ServiceKeyMakerOps = ReturnType<typeof createServiceKeyMakerOps>;
