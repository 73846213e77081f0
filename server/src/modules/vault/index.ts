import type { Database, Executor } from "../../db/client.ts";
import type { JobQueue } from "../../jobs/queue.ts";
import { kekStore } from "../../kms/kek-store.ts";
import { createKms } from "../../kms/kms.ts";
import type { Clock } from "../../lib/clock.ts";
import type { Mailer } from "../../mail/mailer.ts";
import type { AccessService } from "../access/access.service.ts";
import type { GrantOwnerOps } from "../access/grants.owners.ts";
import type { ObjectRegistry } from "../access/grants.service.ts";
import type { AuditService } from "../audit/audit.service.ts";
import { leasesRepo } from "./leases.repo.ts";
import { vaultKeysRepo } from "./vault-keys.repo.ts";
import { vaultKeysRoutes } from "./vault-keys.routes.ts";
import { createVaultKeysService, REWRAP_JOB } from "./vault-keys.service.ts";

export { ROTATE_DUE_EVERY_MS, ROTATE_DUE_JOB } from "./vault-keys.service.ts";
export type { ManagedKind, ManagedSecrets } from "./managed-secrets.ts";
export { LIFECYCLE_EVERY_MS, LIFECYCLE_JOB } from "./lifecycle.service.ts";
import { lifecycleRepo } from "./lifecycle.repo.ts";
import { createLifecycleService, NOTICE_JOB } from "./lifecycle.service.ts";
import { leasesRoutes } from "./leases.routes.ts";
import { createLeasesService, type LeaseHolders } from "./leases.service.ts";
import { createResolveService } from "./resolve.service.ts";
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
  /** Expiry notices and rotation reminders (lifecycle.service.ts) go out through it, with links to PLINTH_PUBLIC_URL. */
  mailer: Mailer;
  publicUrl: string;
}) {
  const kms = createKms({ masterKey: deps.masterKey, previousMasterKeys: deps.previousMasterKeys, clock: deps.clock });
  const { db, clock, audit, subjects, access, grants } = deps;
  const lifecycleDue = (tx: Executor, orgId: string, at?: Date) => lifecycleRepo.markDue(db, tx, orgId, at ?? clock.now());
  const service = createVaultService({ db, clock, repo: vaultRepo, kms, audit, subjects, access, grants, lifecycleDue });
  // secrets are shared through the access module's grants: a grant names only one of the org's sharable secrets
  deps.objects.verify("secret", service.shareable);
  const resolve = createResolveService({ db, clock, repo: vaultRepo, reading: service.reading, audit, subjects });
  const leases = createLeasesService({
    db,
    clock,
    repo: leasesRepo,
    reading: service.reading,
    audit,
    access,
    subjects,
    holders: deps.holders,
    lifecycleDue,
  });
  const lifecycle = createLifecycleService({ db, clock, repo: lifecycleRepo, audit, jobs: deps.jobs, mailer: deps.mailer, publicUrl: deps.publicUrl });
  deps.jobs.register(NOTICE_JOB, async (p) => {
    await lifecycle.sendNotice(p);
  });
  const keys = createVaultKeysService({ db, clock, kms, keks: kekStore, repo: vaultKeysRepo, jobs: deps.jobs, audit });
  deps.jobs.register(REWRAP_JOB, async (p) => {
    await keys.rewrap(String(p.org_id));
  });
  return { service, kms, leases, keys, lifecycle, routes: [vaultRoutes({ vault: service, resolve }), leasesRoutes({ leases }), vaultKeysRoutes({ keys })] };
}
