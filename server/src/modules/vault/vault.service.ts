import type { Database, Executor } from "../../db/client.ts";
import type { Kms } from "../../kms/kms.ts";
import type { Clock } from "../../lib/clock.ts";
import { platformError } from "../../lib/errors.ts";
import { isId, newId } from "../../lib/ids.ts";
import { isUniqueViolation } from "../../lib/pg-errors.ts";
import type { AccessService, OrgMembership } from "../access/access.service.ts";
import type { GrantOwnerOps } from "../access/grants.owners.ts";
import type { ObjectVerifier } from "../access/grants.service.ts";
import type { Permission } from "../access/permissions.ts";
import type { OrgSubjects } from "../access/subjects.ts";
import type { AuditActor, AuditService } from "../audit/audit.service.ts";
import { createManagedSecrets, isManaged, refuseManaged } from "./managed-secrets.ts";
import type { LifecycleMark } from "./lifecycle.repo.ts";
import { vaultError } from "./vault.errors.ts";
import { isVisibleTo, type SecretFilter, type SecretRow, type SecretScope, type VaultRepo } from "./vault.repo.ts";
import { createSecretValues, valueBytes } from "./secret-values.ts";

export interface CreateSecretInput {
  name: string;
  value: string;
  description?: string;
  tags?: string[];
  expires_at?: string | null;
  /** Lifecycle (lifecycle.service.ts): days before expiry to warn (null: 7), days after which to remind of rotation. */
  notify_before_days?: number | null;
  rotation_reminder_days?: number | null;
  team_id?: string;
  user_id?: string;
}

export interface UpdateSecretInput {
  value?: string;
  description?: string;
  tags?: string[];
  expires_at?: string | null;
  notify_before_days?: number | null;
  rotation_reminder_days?: number | null;
}

const invalid = (field: string, detail: string) => platformError("VALIDATION_FAILED", detail, { field });
/** A version below the current one is missing only because the org's retention pruned it (lifecycle.service.ts). */
const missingVersion = (row: SecretRow, v: number) =>
  vaultError(
    "SECRET_VERSION_NOT_FOUND",
    v < row.currentVersion
      ? `Version ${v} of the secret was deleted by the organization's version retention (keep_versions / keep_days); its value is gone.`
      : `The secret has no version ${v}.`,
    { field: "version" },
  );
const notFound = (id: string) => vaultError("SECRET_NOT_FOUND", `No secret ${id.slice(0, 40)} in this organization.`, { field: "secretId" });

function expiry(value: string | null | undefined, now: Date): Date | null | undefined {
  if (value === undefined || value === null) return value;
  const at = new Date(value);
  if (Number.isNaN(at.getTime())) throw invalid("expires_at", "expires_at is not a valid date-time.");
  if (at.getTime() <= now.getTime()) throw invalid("expires_at", "expires_at must be in the future.");
  return at;
}

/** What a relation on a secret asks of the engine, and the org-wide permission that gives it on every secret. */
export type SecretRelation = "read" | "write" | "delete";
const ORG_WIDE: Record<SecretRelation, Permission> = { read: "secrets:read", write: "secrets:write", delete: "secrets:write" };

/** Which secrets a caller reads: every one visible to them (`secrets:read`), or only those shared with them. */
export type ReadableSecrets = { all: true } | { all: false; ids: readonly string[] };

/** Whether an id names one of the org's members or teams (the access module's `subjects`). */
export type { OrgSubjects };

/**
 * The secrets vault: secrets of an org, one of its teams, or one member within it, each value kept as versions under
 * envelope encryption (kms/). Metadata reads never touch a value; a value leaves only through `reveal`, audited in the
 * same transaction. Changes lock the secret's row, so concurrent writers line up (each becomes its own version) and
 * a writer naming a stale version gets 409, never a lost update. A member's personal secrets exist only for them.
 */
export function createVaultService(deps: {
  db: Database;
  clock: Clock;
  repo: VaultRepo;
  kms: Kms;
  audit: Pick<AuditService, "record">;
  subjects: OrgSubjects;
  access: Pick<AccessService, "require" | "decide" | "grantedObjectIds" | "invalidate">;
  /** The access module's grants: a deleted secret's go through it. */
  grants: Pick<GrantOwnerOps, "removeGrantsOn">;
  /** Makes the org's lifecycle pass due after a change it must look at (lifecycle.repo.ts markDue). */
  lifecycleDue?: LifecycleMark;
}) {
  const { db, clock, repo, audit, subjects, access, grants } = deps;
  // the one encryption and decryption of a value (secret-values.ts)
  const { writeVersion, openBytes, openValue } = createSecretValues(deps);

  /**
   * The one access rule of a secret: the org-wide permission (`secrets:read`, or `secrets:write` for changes), or the
   * relation on this secret through a grant to the caller, a team they are in, or the org (the access engine decides;
   * `write` and `delete` grants each include `read`). 403 naming the permission otherwise, whether or not the secret
   * exists. Runs before the caller's transaction: the engine reads outside it.
   */
  function authorize(caller: OrgMembership, relation: SecretRelation, id: string): Promise<void> {
    return access.require(caller, ORG_WIDE[relation], { ref: { type: "secret", id }, relation });
  }

  /** The one read check every path to a secret's metadata or value goes through (get, versions, reveal, resolve). */
  function requireRead(caller: OrgMembership, id: string): Promise<void> {
    return authorize(caller, "read", id);
  }

  /**
   * The secrets the caller reads, for lists: all (`secrets:read`), or the ids shared with them (the access module's
   * answer; a narrowed credential has none). 403 naming secrets:read when neither: nothing to list.
   */
  async function readable(caller: OrgMembership): Promise<ReadableSecrets> {
    if (access.decide(caller, "secrets:read").allowed) return { all: true };
    const ids = (await access.grantedObjectIds(caller, "secret", "read")).filter((id) => isId("secret", id));
    if (!ids.length) await access.require(caller, "secrets:read");
    return { all: false, ids };
  }

  async function load(tx: Executor, caller: OrgMembership, id: string, lock = false): Promise<SecretRow> {
    const row = await repo.find(tx, caller.orgId, caller.userId, id, lock);
    if (!row) throw notFound(id);
    return row;
  }

  function requireVersion(row: SecretRow, expected: number | undefined): void {
    if (expected !== undefined && expected !== row.currentVersion) {
      throw vaultError(
        "SECRET_VERSION_CONFLICT",
        `The secret is at version ${row.currentVersion}, not ${expected}: it changed since you read it. Read it again and retry.`,
        { field: "version", extra: { current_version: row.currentVersion } },
      );
    }
  }

  /** A secret whose value may be served to the caller (in their transaction, after `requireRead`): 404 unseen, 409 managed, 410 expired. */
  async function liveIn(tx: Executor, caller: OrgMembership, id: string): Promise<SecretRow> {
    return servable(await load(tx, caller, id));
  }

  /** The one gate before a value is served (reveal, leases): 409 of a managed kind, 410 past its expiry. */
  function servable(row: SecretRow): SecretRow {
    refuseManaged(row);
    if (row.expiresAt && row.expiresAt.getTime() <= clock.now().getTime()) {
      throw vaultError("SECRET_EXPIRED", `The secret expired at ${row.expiresAt.toISOString()}; give it a new value or expiry to use it again.`, {
        field: "secretId",
      });
    }
    return row;
  }

  /** The one decrypt path of a value (reveal, leases); not audited here: each caller records its own event. */
  async function valueIn(tx: Executor, caller: OrgMembership, id: string, version: number | undefined) {
    // the secret and its version in one round trip
    const found = await repo.findWithVersion(tx, caller.orgId, caller.userId, id, version);
    if (!found) throw notFound(id);
    const row = servable(found.secret);
    const v = version ?? row.currentVersion;
    const stored = found.version;
    if (!stored) throw missingVersion(row, v);
    const value = await openValue(tx, row, stored);
    return { row, version: v, value };
  }

  /**
   * The current values of several secrets in one query (a lease's), in the order of `ids`, undefined for one the
   * caller does not see (deleted, say: the caller decides what that means); 410 for an expired one. Decrypted in the
   * caller's transaction, after `requireRead` on each.
   */
  async function valuesIn(tx: Executor, caller: OrgMembership, ids: readonly string[]) {
    const found = new Map((await repo.findManyWithVersion(tx, caller.orgId, caller.userId, ids)).map((r) => [r.secret.id, r]));
    const out: ({ row: SecretRow; version: number; value: string } | undefined)[] = [];
    for (const id of ids) {
      const r = found.get(id);
      if (!r) {
        out.push(undefined);
        continue;
      }
      const row = servable(r.secret);
      if (!r.version) throw missingVersion(row, row.currentVersion);
      const value = await openValue(tx, row, r.version);
      out.push({ row, version: row.currentVersion, value });
    }
    return out;
  }

  async function revealIn(tx: Executor, caller: OrgMembership, id: string, version: number | undefined, actor: AuditActor) {
    const { row, version: v, value } = await valueIn(tx, caller, id, version);
    await audit.record(tx, actor, {
      orgId: caller.orgId,
      action: "secret.revealed",
      target: { type: "secret", id: row.id },
      diff: { name: row.name, version: v },
    });
    return { id: row.id, name: row.name, version: v, value };
  }

  return {
    async create(caller: OrgMembership, input: CreateSecretInput, actor: AuditActor): Promise<SecretRow> {
      const now = clock.now();
      const value = valueBytes(input.value);
      const expiresAt = expiry(input.expires_at, now);
      if (input.team_id !== undefined && input.user_id !== undefined)
        throw invalid("user_id", "A secret belongs to a team or to a member, not both: give team_id or user_id.");
      const scope: SecretScope = input.team_id !== undefined ? "team" : input.user_id !== undefined ? "user" : "org";
      try {
        return await db.tx({ orgId: caller.orgId }, async (tx) => {
          if (input.team_id !== undefined && !(await subjects.teamExists(tx, caller.orgId, input.team_id))) {
            throw invalid("team_id", `No team ${input.team_id} in this organization.`);
          }
          if (input.user_id !== undefined) {
            if (!(await subjects.isMember(tx, caller.orgId, input.user_id))) throw invalid("user_id", `No member ${input.user_id} in this organization.`);
            // a personal secret is its member's alone: nobody makes (and so reads) one in another's name
            if (input.user_id !== caller.userId)
              throw platformError("FORBIDDEN", "A personal secret can only be made by its member: user_id must be your own.", { field: "user_id" });
          }
          const row = await repo.insert(tx, {
            id: newId("secret", now.getTime()),
            orgId: caller.orgId,
            scope,
            teamId: input.team_id ?? null,
            userId: input.user_id ?? null,
            name: input.name,
            description: input.description ?? "",
            tags: input.tags ?? [],
            expiresAt: expiresAt ?? null,
            notifyBeforeDays: input.notify_before_days ?? null,
            rotationReminderDays: input.rotation_reminder_days ?? null,
            currentVersion: 1,
            createdBy: actor.id,
            createdAt: now,
            updatedBy: actor.id,
            updatedAt: now,
          });
          await writeVersion(tx, row, 1, value, actor);
          await audit.record(tx, actor, {
            orgId: caller.orgId,
            action: "secret.created",
            target: { type: "secret", id: row.id },
            diff: {
              name: [null, row.name],
              scope: [null, scope],
              team_id: [null, row.teamId],
              user_id: [null, row.userId],
              description: [null, row.description],
              tags: [null, row.tags],
              expires_at: [null, row.expiresAt?.toISOString() ?? null],
              notify_before_days: [null, row.notifyBeforeDays],
              rotation_reminder_days: [null, row.rotationReminderDays],
              version: [null, 1],
            },
          });
          return row;
        });
      } catch (e) {
        if (isUniqueViolation(e))
          throw vaultError("SECRET_NAME_TAKEN", `This ${scope === "org" ? "organization" : scope} already has a secret named ${input.name}.`, {
            field: "name",
          });
        throw e;
      }
    },

    requireRead,
    readable,

    /** Metadata of the secrets the caller reads (`readable`): with secrets:read all they see, else those shared with them. */
    async list(caller: OrgMembership, filter: SecretFilter): Promise<SecretRow[]> {
      const scope = await readable(caller);
      const f = scope.all ? filter : { ...filter, ids: scope.ids };
      return db.read({ orgId: caller.orgId }, (ex) => repo.list(ex, caller.orgId, caller.userId, f));
    },

    async get(caller: OrgMembership, id: string): Promise<SecretRow> {
      await requireRead(caller, id);
      return db.read({ orgId: caller.orgId }, (ex) => load(ex, caller, id));
    },

    /** A new value makes version current+1; metadata changes keep the version. `expected`: If-Match / body version. */
    async update(caller: OrgMembership, id: string, input: UpdateSecretInput, expected: number | undefined, actor: AuditActor): Promise<SecretRow> {
      await authorize(caller, "write", id);
      const value = input.value === undefined ? undefined : valueBytes(input.value);
      const now = clock.now();
      const expiresAt = expiry(input.expires_at, now);
      return db.tx({ orgId: caller.orgId }, async (tx) => {
        const row = await load(tx, caller, id, true);
        if (value !== undefined) refuseManaged(row, "value");
        if (expiresAt !== undefined) refuseManaged(row, "expires_at");
        requireVersion(row, expected);
        const diff: Record<string, [unknown, unknown]> = {};
        const set: Partial<SecretRow> = {};
        if (input.description !== undefined && input.description !== row.description) {
          diff.description = [row.description, input.description];
          set.description = input.description;
        }
        if (input.tags !== undefined && input.tags.join("\u0000") !== row.tags.join("\u0000")) {
          diff.tags = [row.tags, input.tags];
          set.tags = input.tags;
        }
        if (expiresAt !== undefined && (expiresAt?.getTime() ?? null) !== (row.expiresAt?.getTime() ?? null)) {
          diff.expires_at = [row.expiresAt?.toISOString() ?? null, expiresAt?.toISOString() ?? null];
          set.expiresAt = expiresAt;
        }
        for (const [field, key] of [
          ["notify_before_days", "notifyBeforeDays"],
          ["rotation_reminder_days", "rotationReminderDays"],
        ] as const) {
          if (input[field] !== undefined && input[field] !== row[key]) {
            diff[field] = [row[key], input[field]];
            set[key] = input[field];
          }
        }
        if (value !== undefined) {
          const next = row.currentVersion + 1;
          await writeVersion(tx, row, next, value, actor);
          diff.version = [row.currentVersion, next];
          set.currentVersion = next;
        }
        if (!Object.keys(diff).length) return row;
        if (value === undefined) await deps.lifecycleDue?.(tx, caller.orgId); // an expiry or reminder may have moved
        const updated = await repo.update(tx, caller.orgId, id, { ...set, updatedBy: actor.id, updatedAt: now });
        await audit.record(tx, actor, { orgId: caller.orgId, action: "secret.updated", target: { type: "secret", id }, diff: { name: row.name, ...diff } });
        return updated;
      });
    },

    /** The secret, its versions and (through the access module) every grant on it. */
    async delete(caller: OrgMembership, id: string, expected: number | undefined, actor: AuditActor): Promise<void> {
      await authorize(caller, "delete", id);
      const removed = await db.tx({ orgId: caller.orgId }, async (tx) => {
        const row = refuseManaged(await load(tx, caller, id, true));
        requireVersion(row, expected);
        await repo.delete(tx, caller.orgId, id);
        const grantIds = await grants.removeGrantsOn(tx, caller.orgId, { type: "secret", ids: [id] });
        await audit.record(tx, actor, {
          orgId: caller.orgId,
          action: "secret.deleted",
          target: { type: "secret", id },
          diff: { name: [row.name, null], version: [row.currentVersion, null], ...(grantIds.length ? { grant_ids: [grantIds, null] } : {}) },
        });
        return grantIds.length;
      });
      if (removed) await access.invalidate(caller.orgId);
    },

    /** The value of the current version (or `version`); audited as secret.revealed in the same transaction. */
    async reveal(caller: OrgMembership, id: string, version: number | undefined, actor: AuditActor) {
      await requireRead(caller, id);
      return db.tx({ orgId: caller.orgId }, (tx) => revealIn(tx, caller, id, version, actor));
    },

    /**
     * The read rule and decrypt path above, for the leases and resolve services (leases.service.ts,
     * resolve.service.ts) so that they check and decrypt exactly as reveal does: `readable` and `requireRead` before
     * the caller's transaction, `liveIn`, `valuesIn` and `openValue` inside it; `sees`: whether a row already read
     * exists for another member (their personal view).
     */
    reading: { readable, requireRead, liveIn, valuesIn, openValue, sees: (viewer: OrgMembership, row: SecretRow) => isVisibleTo(row, viewer.userId) },

    /** Secrets of a managed kind, for the module owning their shape (the connections module): managed-secrets.ts. */
    managed: createManagedSecrets({ clock, repo, newId: (now) => newId("secret", now), valueBytes, writeVersion, openValue }),

    async listVersions(caller: OrgMembership, id: string, opts: { before?: number; limit: number }) {
      await requireRead(caller, id);
      return db.read({ orgId: caller.orgId }, async (ex) => ({
        secret: await load(ex, caller, id),
        versions: await repo.listVersions(ex, caller.orgId, id, opts),
      }));
    },

    /** Makes the value of `from` current again as a new version (history is never rewritten). */
    async rollback(caller: OrgMembership, id: string, from: number, expected: number | undefined, actor: AuditActor): Promise<SecretRow> {
      await authorize(caller, "write", id);
      return db.tx({ orgId: caller.orgId }, async (tx) => {
        const row = refuseManaged(await load(tx, caller, id, true));
        requireVersion(row, expected);
        const stored = await repo.findVersion(tx, caller.orgId, id, from);
        if (!stored) throw missingVersion(row, from);
        const value = await openBytes(tx, row, stored);
        const next = row.currentVersion + 1;
        try {
          await writeVersion(tx, row, next, value, actor);
        } finally {
          value.fill(0);
        }
        const updated = await repo.update(tx, caller.orgId, id, { currentVersion: next, updatedBy: actor.id, updatedAt: clock.now() });
        await audit.record(tx, actor, {
          orgId: caller.orgId,
          action: "secret.rolled_back",
          target: { type: "secret", id },
          diff: { name: row.name, version: [row.currentVersion, next], from_version: from },
        });
        return updated;
      });
    },

    /**
     * The access module's check before a grant names a secret (registered in index.ts): one of the org's org or team
     * secrets. Another org's id reads like a missing one; a personal secret is its member's alone, never shared.
     */
    shareable: (async (tx, caller, id) => {
      const row = isId("secret", id) ? await repo.find(tx, caller.orgId, caller.userId, id) : undefined;
      if (!row) return `No secret ${id.slice(0, 40)} in this organization.`;
      if (row.scope === "user") return `Secret ${id} is personal: it is its member's alone and cannot be shared.`;
      if (isManaged(row)) return `Secret ${id} is an integration connection's token set: it is used through /connections, not shared.`;
      return undefined;
    }) satisfies ObjectVerifier as ObjectVerifier,
  };
}

export type VaultService = ReturnType<typeof createVaultService>;
