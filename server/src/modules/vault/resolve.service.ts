import type { Database } from "../../db/client.ts";
import type { Clock } from "../../lib/clock.ts";
import { platformError } from "../../lib/errors.ts";
import type { OrgMembership } from "../access/access.service.ts";
import type { OrgSubjects } from "../access/subjects.ts";
import type { AuditActor, AuditService } from "../audit/audit.service.ts";
import { vaultError } from "./vault.errors.ts";
import type { SecretScope, VaultRepo } from "./vault.repo.ts";
import type { VaultService } from "./vault.service.ts";

/** The most secrets one resolve serves (an environment's worth; more answers 422 RESOLVE_TOO_LARGE). */
export const MAX_RESOLVED = 500;

/** One resolved value and where it came from. */
export interface ResolvedSecret {
  name: string;
  value: string;
  source: { scope: SecretScope; secret_id: string; version: number; team_id?: string; user_id?: string };
}

/** A name clash in a resolve goes to the more specific scope. */
const SCOPE_RANK: Record<SecretScope, number> = { org: 0, team: 1, user: 2 };

/**
 * What a consumer (a runner, `plinth run`) gets for (org, team, user): GET /v1/orgs/{orgId}/secrets/resolve. It adds
 * no rule of its own: who reads what is the vault's `readable`, and every value is opened by the vault's one
 * decryption (vault.service.ts `reading`).
 */
export function createResolveService(deps: {
  db: Database;
  clock: Clock;
  repo: Pick<VaultRepo, "listForResolve">;
  reading: Pick<VaultService["reading"], "readable" | "openValue">;
  audit: Pick<AuditService, "record">;
  subjects: Pick<OrgSubjects, "teamExists">;
}) {
  const { db, clock, repo, reading, audit, subjects } = deps;

  return {
    /**
     * The org's secrets, the team's, and the caller's own personal ones, the more specific winning a name clash (user
     * over team over org), each with its source. Only what the caller reads (`readable`: all, or those shared with
     * them); expired secrets are left out. Audited once as secrets.resolved with the ids served, never the values, in
     * the same transaction.
     */
    async resolve(caller: OrgMembership, q: { teamId?: string; userId?: string }, actor: AuditActor): Promise<ResolvedSecret[]> {
      if (q.userId !== undefined && q.userId !== caller.userId) {
        throw platformError("FORBIDDEN", "A member's personal secrets resolve for that member only: user_id must be your own.", { field: "user_id" });
      }
      const scope = await reading.readable(caller);
      return db.tx({ orgId: caller.orgId }, async (tx) => {
        if (q.teamId !== undefined && !(await subjects.teamExists(tx, caller.orgId, q.teamId)))
          throw platformError("VALIDATION_FAILED", `No team ${q.teamId} in this organization.`, { field: "team_id" });
        const rows = await repo.listForResolve(tx, caller.orgId, caller.userId, {
          teamId: q.teamId,
          userId: q.userId,
          ids: scope.all ? undefined : scope.ids,
          limit: MAX_RESOLVED + 1,
        });
        if (rows.length > MAX_RESOLVED) {
          throw vaultError(
            "RESOLVE_TOO_LARGE",
            `More than ${MAX_RESOLVED} secrets would resolve here; reveal them one by one, or keep an environment's secrets in a team.`,
          );
        }
        const now = clock.now().getTime();
        const winners = new Map<string, (typeof rows)[number]>();
        for (const r of rows) {
          if (!r.version || (r.secret.expiresAt && r.secret.expiresAt.getTime() <= now)) continue;
          const held = winners.get(r.secret.name);
          if (!held || SCOPE_RANK[r.secret.scope as SecretScope] > SCOPE_RANK[held.secret.scope as SecretScope]) winners.set(r.secret.name, r);
        }
        const out: ResolvedSecret[] = [];
        for (const { secret, version } of [...winners.values()].sort((a, b) => (a.secret.name < b.secret.name ? -1 : 1))) {
          const value = await reading.openValue(tx, secret, version!);
          out.push({
            name: secret.name,
            value,
            source: {
              scope: secret.scope as SecretScope,
              secret_id: secret.id,
              version: secret.currentVersion,
              ...(secret.teamId ? { team_id: secret.teamId } : {}),
              ...(secret.userId ? { user_id: secret.userId } : {}),
            },
          });
        }
        await audit.record(tx, actor, {
          orgId: caller.orgId,
          action: "secrets.resolved",
          target: { type: "org", id: caller.orgId },
          diff: { count: out.length, team_id: q.teamId ?? null, user_id: q.userId ?? null, secret_ids: out.map((o) => o.source.secret_id) },
        });
        return out;
      });
    },
  };
}

export type ResolveService = ReturnType<typeof createResolveService>;
