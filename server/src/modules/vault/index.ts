import type { Database } from "../../db/client.ts";
import { createKms } from "../../kms/kms.ts";
import type { Clock } from "../../lib/clock.ts";
import type { AuditService } from "../audit/audit.service.ts";
import { vaultRepo } from "./vault.repo.ts";
import { vaultRoutes } from "./vault.routes.ts";
import { createVaultService, type OrgSubjects } from "./vault.service.ts";

/**
 * The secrets vault (/v1/orgs/:orgId/secrets): secrets per org, team or member, their versions, and the KMS layer
 * (kms/) that keeps every value under envelope encryption rooted in the master key.
 */
export function wire(deps: { db: Database; clock: Clock; masterKey: Buffer; audit: AuditService; subjects: OrgSubjects }) {
  const kms = createKms({ masterKey: deps.masterKey, clock: deps.clock });
  const service = createVaultService({ db: deps.db, clock: deps.clock, repo: vaultRepo, kms, audit: deps.audit, subjects: deps.subjects });
  return { service, kms, routes: [vaultRoutes({ vault: service })] };
}
