import type { Database, Executor } from "../../db/client.ts";
import type { JobPayload, JobQueue } from "../../jobs/queue.ts";
import type { Clock } from "../../lib/clock.ts";
import { platformError } from "../../lib/errors.ts";
import type { AccessService } from "../access/access.service.ts";
import type { AuditActor, AuditService } from "../audit/audit.service.ts";
import { lifecycleError, orgsError } from "./orgs.errors.ts";
import { deletedOrgsRepo as deletedRepo, orgProfileRepo, type DeletedOrg, type OrgRow } from "./orgs.repo.ts";

/** How long a deleted organization stays restorable before the purge job removes it. */
export const RESTORE_WINDOW_MS = 30 * 24 * 60 * 60 * 1000;
export const PURGE_JOB = "orgs.purge";

const SYSTEM: AuditActor = { type: "system", id: null };

/**
 * An organization's deletion lifecycle. Deleting is a soft delete: the org is unusable at once (access.membership
 * ignores deleted orgs, so every org route answers 404), stays restorable by its owners for 30 days, and is then
 * removed by the `orgs.purge` job enqueued at deletion. Only a role holding org:delete (owners, unless a custom role
 * carries it) may delete, list or restore. The slug stays reserved until the purge.
 *
 * The purge keeps the org's audit log (audit_events and audit_heads have no foreign key to orgs): the log is
 * append-only for the app role, and the record of who did what, ending with org.purged, outlives the tenant.
 */
export function createOrgLifecycleService(deps: {
  db: Database;
  clock: Clock;
  audit: Pick<AuditService, "record">;
  access: Pick<AccessService, "invalidate" | "rolePermissions">;
  jobs: Pick<JobQueue, "enqueue" | "register" | "drain">;
}) {
  const { db, clock, audit, access, jobs } = deps;

  const mayDelete = async (tx: Executor, orgId: string, role: string | undefined) =>
    role !== undefined && !!(await access.rolePermissions(tx, orgId, role))?.has("org:delete");

  async function purge(orgId: string): Promise<boolean> {
    const purged = await db.tx({ orgId }, async (tx) => {
      const org = await deletedRepo.lockDeleted(tx, orgId);
      // restored, purged already, or deleted again later (that deletion's own job purges it): nothing to do
      if (!org?.purgeAfter || org.purgeAfter > clock.now()) return false;
      const removed = await deletedRepo.counts(tx, orgId);
      await audit.record(tx, SYSTEM, { orgId, action: "org.purged", target: { type: "org", id: orgId }, diff: removed });
      await deletedRepo.purge(tx, orgId);
      return true;
    });
    if (purged) await access.invalidate(orgId);
    return purged;
  }

  let purgedByJobs = 0; // what purgeDue reports
  jobs.register(PURGE_JOB, async (payload: JobPayload) => {
    if (await purge(String(payload.org_id))) purgedByJobs++;
  });

  return {
    /** Soft-deletes the org; `confirm` must repeat its slug. Personal orgs go with their user's account instead. */
    async deleteOrg(orgId: string, confirm: string, actor: AuditActor): Promise<OrgRow> {
      const deleted = await db.tx({ orgId }, async (tx) => {
        const org = await orgProfileRepo.lockLive(tx, orgId);
        if (!org) throw orgsError("ORG_NOT_FOUND", "No such organization.");
        if (org.personal) throw lifecycleError("PERSONAL_ORG", "A personal organization cannot be deleted; it goes with its user's account.");
        if (confirm !== org.slug) {
          throw lifecycleError("CONFIRMATION_MISMATCH", "confirm must repeat the organization's slug exactly.", { field: "confirm" });
        }
        const now = clock.now();
        const purgeAfter = new Date(now.getTime() + RESTORE_WINDOW_MS);
        const after = (await orgProfileRepo.update(tx, orgId, { deletedAt: now, deletedBy: actor.id, purgeAfter, updatedAt: now })) as OrgRow;
        await audit.record(tx, actor, {
          orgId,
          action: "org.deleted",
          target: { type: "org", id: orgId },
          diff: { deleted_at: [null, now.toISOString()], purge_after: [null, purgeAfter.toISOString()] },
        });
        await jobs.enqueue(tx, PURGE_JOB, { org_id: orgId }, { runAt: purgeAfter });
        return after;
      });
      await access.invalidate(orgId);
      return deleted;
    },

    /** The deleted orgs the user may restore, while they still can. */
    async listDeleted(userId: string): Promise<DeletedOrg[]> {
      const now = clock.now();
      const rows = await db.tx({ userId }, (tx) => deletedRepo.listForUser(tx, userId));
      const out: DeletedOrg[] = [];
      for (const r of rows) {
        if (!r.org.purgeAfter || r.org.purgeAfter <= now) continue;
        // custom roles are only visible in a transaction scoped to their org
        if (await db.tx({ orgId: r.org.id, userId }, (tx) => mayDelete(tx, r.org.id, r.role))) out.push(r);
      }
      return out;
    },

    /**
     * Brings a deleted org back, for a member whose role holds org:delete, before its purge date. A stranger (or a
     * live org) is 404: the caller learns nothing about orgs they were not in.
     */
    async restoreOrg(orgId: string, userId: string, actor: AuditActor): Promise<OrgRow> {
      const restored = await db.tx({ orgId, userId }, async (tx) => {
        const org = await deletedRepo.lockDeleted(tx, orgId);
        const role = org ? await deletedRepo.roleOf(tx, orgId, userId) : undefined;
        if (!org || role === undefined) throw orgsError("ORG_NOT_FOUND", `No deleted organization ${orgId} that you belong to.`, { field: "orgId" });
        if (!(await mayDelete(tx, orgId, role))) {
          throw platformError("FORBIDDEN", `Restoring needs the org:delete permission, which your role (${role}) does not have.`, {
            extra: { permission: "org:delete" },
          });
        }
        if (!org.purgeAfter || org.purgeAfter <= clock.now()) {
          throw lifecycleError(
            "ORG_PURGE_PASSED",
            `The organization could be restored until ${org.purgeAfter?.toISOString() ?? "its deletion"}; it is being purged.`,
          );
        }
        const now = clock.now();
        const after = await deletedRepo.restore(tx, orgId, now);
        await audit.record(tx, actor, {
          orgId,
          action: "org.restored",
          target: { type: "org", id: orgId },
          diff: { deleted_at: [org.deletedAt?.toISOString() ?? null, null], purge_after: [org.purgeAfter.toISOString(), null] },
        });
        return after;
      });
      await access.invalidate(orgId);
      return restored;
    },

    /** Purges the org if it is still deleted and its restore window has passed (the job's handler; tests). */
    purge,

    /**
     * Maintenance: runs now every purge job (PURGE_JOB, enqueued at deletion) whose org's restore window has passed,
     * so a deployment whose workers were down still purges on time. The jobs stay the one place the purge happens.
     */
    async purgeDue(): Promise<{ orgs: number }> {
      const before = purgedByJobs;
      await jobs.drain(PURGE_JOB);
      return { orgs: purgedByJobs - before };
    },
  };
}

export type OrgLifecycleService = ReturnType<typeof createOrgLifecycleService>;
