import type { Database } from "../../db/client.ts";
import type { Clock } from "../../lib/clock.ts";
import type { AuditService } from "../audit/audit.service.ts";
import type { OrgSubjects } from "../vault/vault.service.ts";
import { zkMembersRoutes } from "./zk-members.routes.ts";
import { createZkMembersService } from "./zk-members.service.ts";
import { zkRecoveryRoutes } from "./zk-recovery.routes.ts";
import { createZkRecoveryService } from "./zk-recovery.service.ts";
import { zkRepo } from "./zk-vaults.repo.ts";
import { zkVaultsRoutes } from "./zk-vaults.routes.ts";
import { createZkVaultsService } from "./zk-vaults.service.ts";

/**
 * Zero-knowledge vaults (/v1/orgs/:orgId/zk-vaults, zk-keys, zk-shares): storage and relay for what the client
 * library (server/src/zk/) encrypts. Nothing here can decrypt what it stores.
 */
export function wire(deps: { db: Database; clock: Clock; audit: AuditService; subjects: Pick<OrgSubjects, "isMember"> }) {
  const { db, clock, audit, subjects } = deps;
  const service = createZkVaultsService({ db, clock, repo: zkRepo, audit });
  const recovery = createZkRecoveryService({ db, clock, repo: zkRepo, audit, subjects });
  const members = createZkMembersService({ db, clock, repo: zkRepo, audit, subjects });
  return {
    service,
    recovery,
    members,
    routes: [zkVaultsRoutes({ zk: service }), zkRecoveryRoutes({ recovery }), zkMembersRoutes({ members })],
  };
}
