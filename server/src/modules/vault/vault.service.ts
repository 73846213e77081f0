import type { Database, Executor } from "../../db/client.ts";
import type { Kms } from "../../kms/kms.ts";
import type { Clock } from "../../lib/clock.ts";
import { platformError } from "../../lib/errors.ts";
import { newId } from "../../lib/ids.ts";
import { isUniqueViolation } from "../../lib/pg-errors.ts";
import type { OrgMembership } from "../access/access.service.ts";
import type { AuditActor, AuditService } from "../audit/audit.service.ts";
import { vaultError } from "./vault.errors.ts";
import type { SecretFilter, SecretRow, SecretScope, VaultRepo } from "./vault.repo.ts";
import { MAX_VALUE_BYTES } from "./vault.schemas.ts";

export interface CreateSecretInput {
  name: string;
  value: string;
  description?: string;
  tags?: string[];
  expires_at?: string | null;
  team_id?: string;
  user_id?: string;
}

export interface UpdateSecretInput {
  value?: string;
  description?: string;
  tags?: string[];
  expires_at?: string | null;
}

/** Secret ids (`sec_…`): time-ordered like every id (lib/ids.ts; the prefix is to be listed there). */
export function newSecretId(now: number): string {
  return newId("secret", now);
}

const invalid = (field: string, detail: string) => platformError("VALIDATION_FAILED", detail, { field });
const notFound = (id: string) => vaultError("SECRET_NOT_FOUND", `No secret ${id.slice(0, 40)} in this organization.`, { field: "secretId" });

/**
 * The identity a secret version's ciphertext is bound to (the associated data of its encryption): the same bytes
 * under another org, scope, secret or version do not decrypt. The name is left out, so renaming keeps values readable.
 */
export function secretAad(s: Pick<SecretRow, "orgId" | "scope" | "teamId" | "userId" | "id">, version: number): string {
  return `plinth:secret:v1|${s.orgId}|${s.scope}:${s.teamId ?? s.userId ?? ""}|${s.id}|${version}`;
}

function valueBytes(value: string): Buffer {
  const bytes = Buffer.from(value, "utf8");
  if (bytes.length > MAX_VALUE_BYTES) throw invalid("value", `value is ${bytes.length} bytes of UTF-8; at most ${MAX_VALUE_BYTES} are allowed.`);
  return bytes;
}

function expiry(value: string | null | undefined, now: Date): Date | null | undefined {
  if (value === undefined || value === null) return value;
  const at = new Date(value);
  if (Number.isNaN(at.getTime())) throw invalid("expires_at", "expires_at is not a valid date-time.");
  if (at.getTime() <= now.getTime()) throw invalid("expires_at", "expires_at must be in the future.");
  return at;
}

/**
 * The secrets vault: secrets of an org, one of its teams, or one member within it, each value kept as versions under
 * envelope encryption (kms/). Metadata reads never touch a value; a value leaves only through `reveal`, audited in the
 * same transaction. Changes lock the secret's row, so concurrent writers line up (each becomes its own version) and
 * a writer naming a stale version gets 409, never a lost update. A member's personal secrets exist only for them.
 */
/** Whether an id names one of the org's members or teams (the access module's `subjects`). */
export interface OrgSubjects {
  isMember(ex: Executor, orgId: string, userId: string): Promise<boolean>;
  teamExists(ex: Executor, orgId: string, teamId: string): Promise<boolean>;
}

export function createVaultService(deps: {
  db: Database;
  clock: Clock;
  repo: VaultRepo;
  kms: Kms;
  audit: Pick<AuditService, "record">;
  subjects: OrgSubjects;
}) {
  const { db, clock, repo, kms, audit, subjects } = deps;

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
        {
          field: "version",
        },
      );
    }
  }

  async function writeVersion(tx: Executor, row: SecretRow, version: number, value: Buffer, actor: AuditActor): Promise<void> {
    const envelope = await kms.encrypt(tx, row.orgId, value, secretAad(row, version));
    await repo.insertVersion(tx, { orgId: row.orgId, secretId: row.id, version, ...envelope, createdBy: actor.id, createdAt: clock.now() });
  }

  async function revealIn(tx: Executor, caller: OrgMembership, id: string, version: number | undefined, actor: AuditActor) {
    const row = await load(tx, caller, id);
    const now = clock.now();
    if (row.expiresAt && row.expiresAt.getTime() <= now.getTime()) {
      throw vaultError("SECRET_EXPIRED", `The secret expired at ${row.expiresAt.toISOString()}; give it a new value or expiry to use it again.`, {
        field: "secretId",
      });
    }
    const v = version ?? row.currentVersion;
    const stored = await repo.findVersion(tx, caller.orgId, row.id, v);
    if (!stored) throw vaultError("SECRET_VERSION_NOT_FOUND", `The secret has no version ${v}.`, { field: "version" });
    const value = (await kms.decrypt(tx, caller.orgId, stored, secretAad(row, v))).toString("utf8");
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
            id: newSecretId(now.getTime()),
            orgId: caller.orgId,
            scope,
            teamId: input.team_id ?? null,
            userId: input.user_id ?? null,
            name: input.name,
            description: input.description ?? "",
            tags: input.tags ?? [],
            expiresAt: expiresAt ?? null,
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

    list(caller: OrgMembership, filter: SecretFilter): Promise<SecretRow[]> {
      return db.read({ orgId: caller.orgId }, (ex) => repo.list(ex, caller.orgId, caller.userId, filter));
    },

    get(caller: OrgMembership, id: string): Promise<SecretRow> {
      return db.read({ orgId: caller.orgId }, async (ex) => {
        const row = await repo.find(ex, caller.orgId, caller.userId, id);
        if (!row) throw notFound(id);
        return row;
      });
    },

    /** A new value makes version current+1; metadata changes keep the version. `expected`: If-Match / body version. */
    update(caller: OrgMembership, id: string, input: UpdateSecretInput, expected: number | undefined, actor: AuditActor): Promise<SecretRow> {
      const value = input.value === undefined ? undefined : valueBytes(input.value);
      const now = clock.now();
      const expiresAt = expiry(input.expires_at, now);
      return db.tx({ orgId: caller.orgId }, async (tx) => {
        const row = await load(tx, caller, id, true);
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
        if (value !== undefined) {
          const next = row.currentVersion + 1;
          await writeVersion(tx, row, next, value, actor);
          diff.version = [row.currentVersion, next];
          set.currentVersion = next;
        }
        if (!Object.keys(diff).length) return row;
        const updated = await repo.update(tx, caller.orgId, id, { ...set, updatedBy: actor.id, updatedAt: now });
        await audit.record(tx, actor, { orgId: caller.orgId, action: "secret.updated", target: { type: "secret", id }, diff: { name: row.name, ...diff } });
        return updated;
      });
    },

    async delete(caller: OrgMembership, id: string, expected: number | undefined, actor: AuditActor): Promise<void> {
      await db.tx({ orgId: caller.orgId }, async (tx) => {
        const row = await load(tx, caller, id, true);
        requireVersion(row, expected);
        await repo.delete(tx, caller.orgId, id);
        await audit.record(tx, actor, {
          orgId: caller.orgId,
          action: "secret.deleted",
          target: { type: "secret", id },
          diff: { name: [row.name, null], version: [row.currentVersion, null] },
        });
      });
    },

    /** The value of the current version (or `version`); audited as secret.revealed in the same transaction. */
    reveal(caller: OrgMembership, id: string, version: number | undefined, actor: AuditActor) {
      return db.tx({ orgId: caller.orgId }, (tx) => revealIn(tx, caller, id, version, actor));
    },

    async listVersions(caller: OrgMembership, id: string, opts: { before?: number; limit: number }) {
      return db.read({ orgId: caller.orgId }, async (ex) => {
        const row = await repo.find(ex, caller.orgId, caller.userId, id);
        if (!row) throw notFound(id);
        return { secret: row, versions: await repo.listVersions(ex, caller.orgId, id, opts) };
      });
    },

    /** Makes the value of `from` current again as a new version (history is never rewritten). */
    rollback(caller: OrgMembership, id: string, from: number, expected: number | undefined, actor: AuditActor): Promise<SecretRow> {
      return db.tx({ orgId: caller.orgId }, async (tx) => {
        const row = await load(tx, caller, id, true);
        requireVersion(row, expected);
        const stored = await repo.findVersion(tx, caller.orgId, id, from);
        if (!stored) throw vaultError("SECRET_VERSION_NOT_FOUND", `The secret has no version ${from}.`, { field: "version" });
        const value = await kms.decrypt(tx, caller.orgId, stored, secretAad(row, from));
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
  };
}

export type VaultService = ReturnType<typeof createVaultService>;
