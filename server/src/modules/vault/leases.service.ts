import type { Database, Executor } from "../../db/client.ts";
import type { Clock } from "../../lib/clock.ts";
import { AppError, isAppError, platformError } from "../../lib/errors.ts";
import { newId } from "../../lib/ids.ts";
import type { AccessService, OrgMembership } from "../access/access.service.ts";
import type { AuditActor, AuditService } from "../audit/audit.service.ts";
import { leaseError } from "./leases.errors.ts";
import type { LeaseHolder, LeaseRow, LeasesRepo } from "./leases.repo.ts";
import { DEFAULT_MAX_TTL_SECONDS, DEFAULT_TTL_SECONDS, MAX_LEASE_SECRETS } from "./leases.schemas.ts";
import type { OrgSubjects, VaultService } from "./vault.service.ts";
import { LEASE_PURGE_AFTER_DAYS, type LifecycleMark } from "./lifecycle.repo.ts";

/**
 * Who calls a lease route: their membership (what they may do now), the audit actor, the principal a lease issued
 * by them is held by (`self`), and every principal they count as: an API key is itself and its owner (a service
 * account's key uses the account's leases).
 */
export interface LeaseCaller {
  membership: OrgMembership;
  actor: AuditActor;
  self: LeaseHolder;
  identities: readonly LeaseHolder[];
}

export interface IssueLeaseInput {
  secret_ids?: string[];
  names?: string[];
  team_id?: string;
  ttl_seconds?: number;
  max_ttl_seconds?: number;
  holder?: { type: "user" | "service_account"; id: string };
}

/** What a holder named in a request may do in the org now (undefined: no such member or account, or disabled). */
export interface LeaseHolders {
  membership(orgId: string, holder: { type: "user" | "service_account"; id: string }): Promise<OrgMembership | undefined>;
}

const invalid = (field: string, detail: string) => platformError("VALIDATION_FAILED", detail, { field });
const notFound = (id: string) => leaseError("SECRET_LEASE_NOT_FOUND", `No secret lease ${id.slice(0, 40)} in this organization.`, { field: "leaseId" });
const sameHolder = (a: LeaseHolder, b: LeaseHolder) => a.type === b.type && a.id === b.id;
const HOLDER_PREFIX = { user: "usr_", service_account: "sa_" } as const;

/** The same error with the request field it came from (the vault names its own path parameter). */
function atField(e: unknown, field: string): unknown {
  return isAppError(e) ? new AppError(e.code, e.status, e.message, { field, extra: e.extra }) : e;
}

/**
 * Leases of secrets to one principal (a runner's service account, an integration's API key, a member): short-lived,
 * renewable up to a cap, revocable, audited on issue and on each use. A lease adds no authority: it is issued only
 * over secrets both its issuer and its holder may read, and each use checks the holder's read access again through
 * the vault's own rule (vault.service.ts `reading`) and decrypts through its one path. Nothing is cached: every use
 * reads the lease row in its transaction, so revoking the lease, deleting a secret, withdrawing the grant or disabling
 * the principal stops the next read on every instance.
 */
export function createLeasesService(deps: {
  db: Database;
  clock: Clock;
  repo: LeasesRepo;
  reading: Pick<VaultService["reading"], "readable" | "requireRead" | "liveIn" | "valuesIn" | "sees">;
  audit: Pick<AuditService, "record">;
  access: Pick<AccessService, "decide">;
  subjects: Pick<OrgSubjects, "teamExists">;
  holders: LeaseHolders;
  /** The lifecycle pass (lifecycle.service.ts) deletes an ended lease a week after it ended: tell it when. */
  lifecycleDue?: LifecycleMark;
}) {
  const { db, clock, repo, reading, audit, access, subjects, holders } = deps;
  const purgeAt = (end: Date) => new Date(end.getTime() + LEASE_PURGE_AFTER_DAYS * 86_400_000);

  const isHolder = (c: LeaseCaller, l: LeaseRow) => c.identities.some((h) => h.type === l.holderType && h.id === l.holderId);
  /** A lease is seen by its holder and by those who may change the org's secrets; for everyone else it does not exist. */
  const maySee = (c: LeaseCaller, l: LeaseRow) => isHolder(c, l) || access.decide(c.membership, "secrets:write").allowed;

  function refuseDead(l: LeaseRow, now: Date): void {
    if (l.revokedAt) throw leaseError("SECRET_LEASE_REVOKED", `The lease was revoked at ${l.revokedAt.toISOString()}.`, { field: "leaseId" });
    if (l.expiresAt.getTime() <= now.getTime())
      throw leaseError("SECRET_LEASE_EXPIRED", `The lease expired at ${l.expiresAt.toISOString()}; issue a new one.`, { field: "leaseId" });
  }

  /** The lease as the caller may see it (after the vault's gate: 403 naming secrets:read to one who reads none). */
  async function visible(c: LeaseCaller, id: string): Promise<LeaseRow> {
    await reading.readable(c.membership);
    const lease = await db.read({ orgId: c.membership.orgId }, (ex) => repo.find(ex, c.membership.orgId, id));
    if (!lease || !maySee(c, lease)) throw notFound(id);
    return lease;
  }
  /** Checks a lease's secrets as `m` sees them in `ex`: each one the vault would reveal to it, in order. */
  async function liveSecrets(ex: Executor, m: OrgMembership, ids: readonly string[], field: (i: number) => string) {
    const rows = [];
    for (const [i, id] of ids.entries()) {
      try {
        rows.push(await reading.liveIn(ex, m, id));
      } catch (e) {
        throw atField(e, field(i));
      }
    }
    return rows;
  }

  return {
    /**
     * Issues a lease over the listed secrets to `holder` (default: the caller). Both the caller and the holder must
     * be able to read every one (the vault's rule: 403 naming the secret, 404 for one they cannot see). Audited as
     * secret_lease.issued (ids and times, never values).
     */
    async issue(c: LeaseCaller, input: IssueLeaseInput) {
      const m = c.membership;
      const orgId = m.orgId;
      const ids = input.secret_ids ?? [];
      const names = input.names ?? [];
      const ttl = input.ttl_seconds ?? DEFAULT_TTL_SECONDS;
      const maxTtl = input.max_ttl_seconds ?? Math.max(DEFAULT_MAX_TTL_SECONDS, ttl);
      if (!ids.length && !names.length) throw invalid("secret_ids", "A lease names at least one secret: give secret_ids or names.");
      if (ids.length + names.length > MAX_LEASE_SECRETS)
        throw invalid("secret_ids", `A lease holds at most ${MAX_LEASE_SECRETS} secrets; secret_ids and names name ${ids.length + names.length}.`);
      if (maxTtl < ttl) throw invalid("max_ttl_seconds", `max_ttl_seconds (${maxTtl}) is below ttl_seconds (${ttl}): the cap cannot come before the expiry.`);
      if (input.team_id !== undefined && !names.length) throw invalid("team_id", "team_id says where names are looked up: give names with it.");

      let holder = c.self;
      let holderM = m;
      if (input.holder && !sameHolder(input.holder, c.self)) {
        const h = input.holder;
        const found = h.id.startsWith(HOLDER_PREFIX[h.type]) ? await holders.membership(orgId, h) : undefined;
        // another org's member or account reads exactly like a missing one
        if (!found) throw invalid("holder.id", `No ${h.type === "user" ? "member" : "enabled service account"} ${h.id} in this organization.`);
        holder = h;
        holderM = found;
      }

      // the vault's rule, before anything is looked up: who reads no secret at all gets 403 naming secrets:read
      await reading.readable(m);
      for (const id of ids) await reading.requireRead(m, id);
      const named = await db.read({ orgId }, async (ex) => {
        await liveSecrets(ex, m, ids, (i) => `secret_ids.${i}`);
        if (!names.length) return [];
        if (input.team_id !== undefined && !(await subjects.teamExists(ex, orgId, input.team_id)))
          throw invalid("team_id", `No team ${input.team_id} in this organization.`);
        const rows = await repo.secretsNamed(ex, orgId, input.team_id, names);
        return names.map((name, i) => {
          // the team's secret over the org's of the same name
          const hit = rows.find((r) => r.name === name && r.scope === "team") ?? rows.find((r) => r.name === name);
          if (!hit)
            throw leaseError("SECRET_LEASE_UNKNOWN_NAME", `No secret named ${name} in ${input.team_id ? "the team or " : ""}the organization.`, {
              field: `names.${i}`,
            });
          return hit.id;
        });
      });
      for (const id of named) await reading.requireRead(m, id);
      const secretIds = [...new Set([...ids, ...named])];
      if (holderM !== m) {
        try {
          await reading.readable(holderM);
          for (const id of secretIds) await reading.requireRead(holderM, id);
        } catch (e) {
          throw isAppError(e) && e.status === 403
            ? platformError("FORBIDDEN", `The holder ${holder.id} cannot read every secret of the lease: ${e.message}`, { field: "holder.id", extra: e.extra })
            : e;
        }
      }

      const now = clock.now();
      return db.tx({ orgId }, async (tx) => {
        // again in the transaction: a secret deleted since answers as in the checks above
        const fieldOf = (i: number) => (i < ids.length ? `secret_ids.${i}` : `names.${named.indexOf(secretIds[i])}`);
        const rows = await liveSecrets(tx, m, secretIds, fieldOf);
        // the rows just read, as the holder would find them: kind and expiry are the secret's, only a personal one differs
        if (holderM !== m && !rows.every((r) => reading.sees(holderM, r)))
          throw platformError("FORBIDDEN", `The holder ${holder.id} cannot read every secret of the lease (one is personal to you).`, { field: "holder.id" });
        const lease = await repo.insert(tx, {
          id: newId("secretLease", now.getTime()),
          orgId,
          holderType: holder.type,
          holderId: holder.id,
          secretIds,
          createdBy: c.actor.id,
          createdAt: now,
          expiresAt: new Date(now.getTime() + ttl * 1000),
          maxExpiresAt: new Date(now.getTime() + maxTtl * 1000),
        });
        await audit.record(tx, c.actor, {
          orgId,
          action: "secret_lease.issued",
          target: { type: "secret_lease", id: lease.id },
          diff: {
            holder: { type: holder.type, id: holder.id },
            secret_ids: secretIds,
            expires_at: lease.expiresAt.toISOString(),
            max_expires_at: lease.maxExpiresAt.toISOString(),
          },
        });
        await deps.lifecycleDue?.(tx, orgId, purgeAt(lease.expiresAt));
        return { lease, secrets: rows.map((r) => ({ id: r.id, name: r.name, version: r.currentVersion })) };
      });
    },

    /**
     * The values of a live lease, for its holder only: every secret checked by the vault's read rule for the caller
     * now and decrypted by its one path, the use counted on the lease row and audited as secret_lease.used (ids and
     * versions, never values), all in one transaction.
     */
    async reveal(c: LeaseCaller, id: string) {
      const m = c.membership;
      const lease = await visible(c, id);
      if (!isHolder(c, lease)) throw leaseError("SECRET_LEASE_NOT_HOLDER", "Only the lease's holder reads its values.", { field: "leaseId" });
      refuseDead(lease, clock.now());
      for (const sid of lease.secretIds) await reading.requireRead(m, sid);
      return db.tx({ orgId: m.orgId }, async (tx) => {
        const now = clock.now();
        const live = await repo.touchLive(tx, m.orgId, id, now);
        if (!live) {
          refuseDead((await repo.find(tx, m.orgId, id)) ?? lease, now);
          throw notFound(id);
        }
        // every value in one query (vault.service valuesIn), decrypted as reveal does
        const values = await reading.valuesIn(tx, m, live.secretIds);
        const data = [];
        for (const [i, v] of values.entries()) {
          if (!v)
            throw leaseError("SECRET_LEASE_SECRET_GONE", `Secret ${live.secretIds[i]} of the lease no longer exists; issue a new lease.`, { field: "leaseId" });
          data.push({ secret_id: v.row.id, name: v.row.name, version: v.version, value: v.value });
        }
        await audit.record(tx, c.actor, {
          orgId: m.orgId,
          action: "secret_lease.used",
          target: { type: "secret_lease", id },
          diff: { secret_ids: data.map((d) => d.secret_id), versions: data.map((d) => d.version) },
        });
        return data;
      });
    },

    /** Moves the expiry to `ttl` seconds from now, never past max_expires_at (nor earlier than it is); holder only. */
    async renew(c: LeaseCaller, id: string, ttl = DEFAULT_TTL_SECONDS): Promise<LeaseRow> {
      const lease = await visible(c, id);
      if (!isHolder(c, lease)) throw leaseError("SECRET_LEASE_NOT_HOLDER", "Only the lease's holder renews it.", { field: "leaseId" });
      return db.tx({ orgId: c.membership.orgId }, async (tx) => {
        const now = clock.now();
        const row = (await repo.find(tx, c.membership.orgId, id, true)) ?? lease;
        refuseDead(row, now);
        const wanted = Math.min(now.getTime() + ttl * 1000, row.maxExpiresAt.getTime());
        if (wanted <= row.expiresAt.getTime()) return row;
        const updated = await repo.update(tx, c.membership.orgId, id, { expiresAt: new Date(wanted) });
        await audit.record(tx, c.actor, {
          orgId: c.membership.orgId,
          action: "secret_lease.renewed",
          target: { type: "secret_lease", id },
          diff: { expires_at: [row.expiresAt.toISOString(), updated.expiresAt.toISOString()] },
        });
        return updated;
      });
    },

    /** Ends a lease at once (its holder, or anyone with secrets:write); revoking a revoked one changes nothing. */
    async revoke(c: LeaseCaller, id: string): Promise<void> {
      await visible(c, id);
      await db.tx({ orgId: c.membership.orgId }, async (tx) => {
        const row = await repo.find(tx, c.membership.orgId, id, true);
        if (!row) throw notFound(id);
        if (row.revokedAt) return;
        await repo.update(tx, c.membership.orgId, id, { revokedAt: clock.now(), revokedBy: c.actor.id });
        await deps.lifecycleDue?.(tx, c.membership.orgId, purgeAt(clock.now()));
        await audit.record(tx, c.actor, {
          orgId: c.membership.orgId,
          action: "secret_lease.revoked",
          target: { type: "secret_lease", id },
          diff: { holder: { type: row.holderType, id: row.holderId }, secret_ids: row.secretIds },
        });
      });
    },

    get: (c: LeaseCaller, id: string): Promise<LeaseRow> => visible(c, id),

    /** The caller's own leases; all of the org's for those with secrets:write. */
    async list(c: LeaseCaller, opts: { after?: string; limit: number }): Promise<LeaseRow[]> {
      await reading.readable(c.membership);
      const all = access.decide(c.membership, "secrets:write").allowed;
      return db.read({ orgId: c.membership.orgId }, (ex) => repo.list(ex, c.membership.orgId, all ? undefined : c.identities, opts));
    },

    now: () => clock.now(),
  };
}

export type LeasesService = ReturnType<typeof createLeasesService>;
