import type { Database, Executor } from "../../db/client.ts";
import type { JobQueue } from "../../jobs/queue.ts";
import type { KekStore } from "../../kms/kek-store.ts";
import type { Kms } from "../../kms/kms.ts";
import type { Clock } from "../../lib/clock.ts";
import type { OrgMembership } from "../access/access.service.ts";
import type { AuditActor, AuditService } from "../audit/audit.service.ts";
import type { VaultKeysRepo } from "./vault-keys.repo.ts";
import { secretAad } from "./secret-values.ts";

/** The re-wrap job (payload: org_id) and the scheduled rotation of orgs that are due. */
export const REWRAP_JOB = "vault.rewrap";
export const ROTATE_DUE_JOB = "vault.rotate-due";
export const ROTATE_DUE_EVERY_MS = 3600_000;
/** Data keys re-wrapped per transaction: each batch commits on its own, so a crash loses at most one batch's work. */
export const REWRAP_BATCH = 1000;
/** A retired KEK's material is deleted this long after it was retired (a last chance to notice a mistake). */
export const KEK_PURGE_AFTER_MS = 86_400_000;
const DAY_MS = 86_400_000;

export interface VaultKeyStatus {
  kek_version: number;
  rotating: boolean;
  pending_versions: number;
  last_rotated_at: string | null;
  rotation_days: number | null;
  keep_versions: number | null;
  keep_days: number | null;
}

/** PATCH /vault: the fields given change, the others stay. */
export interface VaultSettingsInput {
  rotation_days?: number | null;
  keep_versions?: number | null;
  keep_days?: number | null;
}

export interface RewrapResult {
  rewrapped: number;
  remaining: number;
  retired: number[];
  purged: number;
}

/**
 * Rotation of an org's key-encryption key without downtime: a rotation makes the next KEK version (new writes use it
 * at once) and enqueues a job that re-wraps each data key still on an older version, batch by batch; reads keep
 * working throughout because an old version opens until nothing uses it. The job selects what is still on an old
 * version, so it is idempotent and resumes after a crash where it stopped; then it retires the unused versions and,
 * KEK_PURGE_AFTER_MS later, deletes their key material (the foreign key from secret versions refuses while one is used).
 */
/**
 * A module keeping records of its own under the org's KMS envelopes (webhook signing secrets): an org key rotation
 * re-wraps them too, and an old KEK version is retired only once neither the vault nor any holder still uses it.
 * Holders keep few records per org, so each re-wraps all of its org's in one call.
 */
export interface EnvelopeHolder {
  /** The KEK versions its records of the org still use. */
  kekVersionsInUse(tx: Executor, orgId: string): Promise<Set<number>>;
  /** Re-wraps (kms.rewrapDeks) its records of the org on a version older than `active`; returns how many. */
  rewrap(tx: Executor, orgId: string, active: number): Promise<number>;
}

export function createVaultKeysService(deps: {
  db: Database;
  clock: Clock;
  kms: Kms;
  keks: KekStore;
  repo: VaultKeysRepo;
  jobs: Pick<JobQueue, "enqueue" | "kick">;
  audit: Pick<AuditService, "record">;
}) {
  const { db, clock, kms, keks, repo, jobs, audit } = deps;
  const holders: EnvelopeHolder[] = [];
  const nextRotation = (days: number | null, from: Date) => (days === null ? null : new Date(from.getTime() + days * DAY_MS));

  async function rotateIn(orgId: string, actor: AuditActor, reason: "request" | "schedule") {
    const out = await db.tx({ orgId }, async (tx) => {
      const from = (await keks.current(tx, orgId))?.version ?? 0;
      const version = await kms.rotateKek(tx, orgId);
      const settings = await repo.settings(tx, orgId);
      if (settings) {
        await repo.saveSettings(tx, {
          orgId,
          rotationDays: settings.rotationDays,
          nextRotationAt: nextRotation(settings.rotationDays, clock.now()),
          updatedAt: clock.now(),
        });
      }
      const jobId = await jobs.enqueue(tx, REWRAP_JOB, { org_id: orgId });
      await audit.record(tx, actor, {
        orgId,
        action: "vault.rotated",
        target: { type: "vault", id: orgId },
        diff: { kek_version: [from || null, version], reason },
      });
      return { kek_version: version, job_id: jobId };
    });
    jobs.kick();
    return out;
  }

  return {
    /** A module whose records sit under the org's envelopes (EnvelopeHolder): wired after the vault (deps.ts). */
    addEnvelopeHolder(h: EnvelopeHolder): void {
      holders.push(h);
    },

    async status(caller: OrgMembership): Promise<VaultKeyStatus> {
      return db.tx({ orgId: caller.orgId }, async (tx) => {
        const all = await keks.all(tx, caller.orgId);
        const active = all[0];
        const settings = await repo.settings(tx, caller.orgId);
        const pending = active ? await repo.pendingCount(tx, caller.orgId, active.version) : 0;
        return {
          kek_version: active?.version ?? 0,
          rotating: pending > 0 || all.slice(1).some((k) => k.retiredAt === null),
          pending_versions: pending,
          last_rotated_at: active && active.version > 1 ? active.createdAt.toISOString() : null,
          rotation_days: settings?.rotationDays ?? null,
          keep_versions: settings?.keepVersions ?? null,
          keep_days: settings?.keepDays ?? null,
        };
      });
    },

    rotate(caller: OrgMembership, actor: AuditActor) {
      return rotateIn(caller.orgId, actor, "request");
    },

    async updateSettings(caller: OrgMembership, input: VaultSettingsInput, actor: AuditActor): Promise<VaultKeyStatus> {
      await db.tx({ orgId: caller.orgId }, async (tx) => {
        const before = await repo.settings(tx, caller.orgId);
        const active = await keks.current(tx, caller.orgId);
        const now = clock.now();
        const days = input.rotation_days === undefined ? (before?.rotationDays ?? null) : input.rotation_days;
        const keep = { keepVersions: input.keep_versions, keepDays: input.keep_days };
        const retention = keep.keepVersions !== undefined || keep.keepDays !== undefined;
        await repo.saveSettings(tx, {
          orgId: caller.orgId,
          rotationDays: days,
          nextRotationAt: input.rotation_days === undefined && before ? before.nextRotationAt : nextRotation(days, active?.createdAt ?? now),
          updatedAt: now,
          // a retention change is applied by the next lifecycle pass (lifecycle.service.ts)
          ...(retention ? { ...keep, lifecycleDueAt: now } : {}),
        });
        const diff: Record<string, [unknown, unknown]> = {};
        if (input.rotation_days !== undefined) diff.rotation_days = [before?.rotationDays ?? null, days];
        if (input.keep_versions !== undefined) diff.keep_versions = [before?.keepVersions ?? null, input.keep_versions];
        if (input.keep_days !== undefined) diff.keep_days = [before?.keepDays ?? null, input.keep_days];
        await audit.record(tx, actor, {
          orgId: caller.orgId,
          action: "vault.settings_updated",
          target: { type: "vault", id: caller.orgId },
          diff,
        });
      });
      return this.status(caller);
    },

    /**
     * Re-wraps the org's data keys still on an old KEK version, `batchSize` per transaction, at most `maxBatches`
     * batches (the job runs them all); once none is left, retires unused old versions and purges long-retired ones.
     */
    async rewrap(orgId: string, opts: { batchSize?: number; maxBatches?: number } = {}): Promise<RewrapResult> {
      const batchSize = opts.batchSize ?? REWRAP_BATCH;
      let rewrapped = 0;
      // where the last batch stopped (key order): a run passes over the org's versions once
      let after: { secretId: string; version: number } | undefined;
      for (let batch = 0; batch < (opts.maxBatches ?? Number.POSITIVE_INFINITY); batch++) {
        const n = await db.tx({ orgId }, async (tx) => {
          const active = await keks.current(tx, orgId);
          if (!active) return 0;
          const rows = await repo.pendingBatch(tx, orgId, active.version, batchSize, after);
          const last = rows.at(-1);
          if (last) after = { secretId: last.secretId, version: last.version };
          const wraps = await kms.rewrapDeks(
            tx,
            orgId,
            rows.map((r) => ({ envelope: r, aad: secretAad({ orgId, id: r.secretId, scope: r.scope, teamId: r.teamId, userId: r.userId }, r.version) })),
          );
          const moved = rows.flatMap((r, i) => {
            const w = wraps[i];
            return w ? [{ secretId: r.secretId, version: r.version, from: r.kekVersion, ...w }] : [];
          });
          await repo.setWraps(tx, orgId, moved);
          return rows.length;
        });
        rewrapped += n;
        if (n < batchSize) break;
      }
      return db.tx({ orgId }, async (tx) => {
        const all = await keks.all(tx, orgId);
        const active = all[0];
        if (!active) return { rewrapped, remaining: 0, retired: [], purged: 0 };
        const remaining = await repo.pendingCount(tx, orgId, active.version);
        if (remaining > 0) return { rewrapped, remaining, retired: [], purged: 0 };
        const used = await repo.usedKekVersions(tx, orgId);
        for (const h of holders) {
          await h.rewrap(tx, orgId, active.version);
          for (const v of await h.kekVersionsInUse(tx, orgId)) used.add(v);
        }
        const now = clock.now();
        const retired = all
          .slice(1)
          .filter((k) => k.retiredAt === null && !used.has(k.version))
          .map((k) => k.version);
        await keks.retire(tx, orgId, retired, now);
        const purged = await keks.purgeRetired(tx, orgId, new Date(now.getTime() - KEK_PURGE_AFTER_MS));
        // come back to delete what was just retired, once its grace period is over
        if (retired.length) await jobs.enqueue(tx, REWRAP_JOB, { org_id: orgId }, { runAt: new Date(now.getTime() + KEK_PURGE_AFTER_MS + 1000) });
        return { rewrapped, remaining, retired, purged };
      });
    },

    /** The scheduled job: rotates every org whose KEK is older than its rotation_days. */
    async rotateDue(): Promise<string[]> {
      const due = await db.read((ex) => repo.dueOrgs(ex, clock.now(), 100));
      for (const orgId of due) await rotateIn(orgId, { type: "system", id: null }, "schedule");
      return due;
    },
  };
}

export type VaultKeysService = ReturnType<typeof createVaultKeysService>;
