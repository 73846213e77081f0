import type { Database } from "../../db/client.ts";
import type { JobQueue } from "../../jobs/queue.ts";
import { kekStore } from "../../kms/kek-store.ts";
import { createKms } from "../../kms/kms.ts";
import type { Clock } from "../../lib/clock.ts";
import type { AccessService } from "../access/access.service.ts";
import type { GrantOwnerOps } from "../access/grants.owners.ts";
import type { ObjectRegistry } from "../access/grants.service.ts";
import type { AuditService } from "../audit/audit.service.ts";
import { leasesRepo } from "./leases.repo.ts";
import { vaultKeysRepo } from "./vault-keys.repo.ts";
import { vaultKeysRoutes } from "./vault-keys.routes.ts";
import { createVaultKeysService, REWRAP_JOB } from "./vault-keys.service.ts";

export { ROTATE_DUE_EVERY_MS, ROTATE_DUE_JOB } from "./vault-keys.service.ts";
import { leasesRoutes } from "./leases.routes.ts";
import { createLeasesService, type LeaseHolders } from "./leases.service.ts";
import { vaultRepo } from "./vault.repo.ts";
import { vaultRoutes } from "./vault.routes.ts";
import { createVaultService, type OrgSubjects } from "./vault.service.ts";

/**
 * The secrets vault (/v1/orgs/:orgId/secrets): secrets per org, team or member, their versions, and the KMS layer
 * (kms/) that keeps every value under envelope encryption rooted in the master key.
 */
export function wire(deps: {
  db: Database;
  clock: Clock;
  masterKey: Buffer;
  /** PLINTH_MASTER_KEY_PREVIOUS: still opens KEKs wrapped under it while a root key rotation runs. */
  previousMasterKeys?: readonly Buffer[];
  jobs: JobQueue;
  audit: AuditService;
  subjects: OrgSubjects;
  access: AccessService;
  grants: GrantOwnerOps;
  objects: ObjectRegistry;
  /** Members and service accounts a lease may be issued to (leases.service.ts). */
  holders: LeaseHolders;
}) {
  const kms = createKms({ masterKey: deps.masterKey, previousMasterKeys: deps.previousMasterKeys, clock: deps.clock });
  const { db, clock, audit, subjects, access, grants } = deps;
  const service = createVaultService({ db, clock, repo: vaultRepo, kms, audit, subjects, access, grants });
  // secrets are shared through the access module's grants: a grant names only one of the org's sharable secrets
  deps.objects.verify("secret", service.shareable);
  const leases = createLeasesService({ db, clock, repo: leasesRepo, reading: service.reading, audit, access, subjects, holders: deps.holders });
  const keys = createVaultKeysService({ db, clock, kms, keks: kekStore, repo: vaultKeysRepo, jobs: deps.jobs, audit });
  deps.jobs.register(REWRAP_JOB, async (p) => {
    await keys.rewrap(String(p.org_id));
  });
  return { service, kms, leases, keys, routes: [vaultRoutes({ vault: service }), leasesRoutes({ leases }), vaultKeysRoutes({ keys })] };
}
