import type { Database } from "../../db/client.ts";
import type { Impersonation, ImpersonationChecker } from "../access/principal.ts";
import { createCache } from "../../lib/cache.ts";
import { AppError, platformError } from "../../lib/errors.ts";
import { newId } from "../../lib/ids.ts";
import type { Clock } from "../../lib/clock.ts";
import type { Bus } from "../../pubsub/bus.ts";
import type { AccessService } from "../access/access.service.ts";
import type { AuditActor, AuditService } from "../audit/audit.service.ts";
import { accountNames, accountStanding } from "../identity/index.ts";
import type { SigningKeys } from "../keys/signing-keys.ts";
import { impersonationError } from "./impersonation.errors.ts";
import type { ImpersonationRepo, ImpersonationRow } from "./impersonation.repo.ts";

/** The longest an impersonation lasts (the bound), and the default. */
export const MAX_IMPERSONATION_SECONDS = 3600;
export const DEFAULT_IMPERSONATION_SECONDS = 900;

/**
 * How long an instance trusts its last look at an impersonation (what can end it without `end`: an admin demoted, the
 * org's setting turned off). Ending one takes effect at once everywhere: the bus tells every instance.
 */
export const CHECK_TTL_MS = 5_000;

export interface StartInput {
  userId: string;
  orgId?: string;
  reason: string;
  expiresIn?: number;
}

/**
 * Impersonation: a platform admin, or an owner of an org that allows it, obtains a short-lived token to act as
 * another user. The token names the impersonator in `act` (RFC 8693 §4.1), never carries more than the
 * impersonator's authority, and every audited action taken with it records both people. Each impersonation is a
 * record the impersonated user can list.
 */
export function createImpersonationService(deps: {
  db: Database;
  clock: Clock;
  keys: Pick<SigningKeys, "sign">;
  access: Pick<AccessService, "membership">;
  audit: Pick<AuditService, "record">;
  repo: ImpersonationRepo;
  /** Ending an impersonation drops it from every instance's cache through this bus. */
  bus?: Bus;
}) {
  const { db, clock, keys, access, audit, repo } = deps;
  const userById = accountStanding;
  /**
   * The last look at each impersonation: null when it was live. Only live results are kept; a refusal is stale at
   * once, so it is read again on the next use.
   */
  const looks = createCache<AppError | null, Impersonation>({
    name: "impersonations",
    max: 10_000,
    ttlMs: CHECK_TTL_MS,
    clock,
    bus: deps.bus,
    staleAt: (refusal) => (refusal ? clock.now().getTime() : undefined),
    fetch: async (_id, imp) => (await refusal(imp)) ?? null,
  });

  /** Why an impersonation is no longer usable, or undefined when it is: read fresh. */
  function refusal(imp: Impersonation): Promise<AppError | undefined> {
    const dead = (why: string) => platformError("INVALID_TOKEN", `This impersonation ${why}; start a new one.`, { extra: { reason: "impersonation" } });
    return db
      .read(async (ex) => {
        const row = await repo.findById(ex, imp.id);
        if (!row || row.impersonatorId !== imp.actorId || row.basis !== imp.basis) return dead("is unknown");
        if (row.endedAt) return dead("has ended");
        if (row.expiresAt.getTime() <= clock.now().getTime()) return dead("has expired");
        const [actor, target] = [await userById(ex, row.impersonatorId), await userById(ex, row.userId)];
        if (!actor || actor.disabledAt) return dead("was started by an account that is gone");
        if (!target || target.disabledAt || target.isPlatformAdmin) return dead("is of an account that can no longer be impersonated");
        if (row.basis === "platform_admin" && !actor.isPlatformAdmin) return dead("was started by someone who is no longer a platform admin");
        return row.basis === "org_owner" ? { orgId: row.orgId ?? undefined } : undefined;
      })
      .then(async (r) => {
        if (!r || r instanceof AppError) return r;
        return (await ownersMayImpersonate(r.orgId)) ? undefined : dead("is no longer allowed by the organization");
      });
  }

  /** Whether the (live) org lets its owners impersonate members; read in the org's own scope (orgs is a tenant table). */
  async function ownersMayImpersonate(orgId: string | undefined): Promise<boolean> {
    if (!orgId) return false;
    const org = await db.tx({ orgId }, (tx) => repo.ownerImpersonation(tx, orgId));
    return !!org && !org.deletedAt && org.allowed;
  }

  const checker: ImpersonationChecker = {
    check(imp) {
      if (looks.get(imp.id) === null) return undefined;
      return looks.fetch(imp.id, imp).then((e) => e ?? undefined);
    },
  };

  return {
    checker,

    /**
     * Starts an impersonation of `input.userId` by `actorId`. A platform admin may act as any user who is not a
     * platform admin, anywhere they are a member, or (with org_id) only in that org. An org owner may act as a
     * member of that org when the org allows owners to, and then only in that org, and only within the owner's own
     * permissions (checked on every request).
     */
    async start(actorId: string, input: StartInput, actor: AuditActor): Promise<{ token: string; expiresIn: number; row: ImpersonationRow }> {
      const expiresIn = input.expiresIn ?? DEFAULT_IMPERSONATION_SECONDS;
      if (input.userId === actorId) throw impersonationError("CANNOT_IMPERSONATE_SELF", "You cannot impersonate yourself.", { field: "user_id" });
      const noUser = () => impersonationError("USER_NOT_FOUND", "No such user that you may impersonate.", { field: "user_id" });
      const { me, target } = await db.read(async (ex) => ({ me: await userById(ex, actorId), target: await userById(ex, input.userId) }));
      if (!me) throw platformError("UNAUTHENTICATED", "Sign in first.");
      let basis: Impersonation["basis"];
      if (me.isPlatformAdmin) {
        basis = "platform_admin";
        if (!target || target.disabledAt) throw noUser();
        if (input.orgId !== undefined && !(await access.membership(input.orgId, input.userId))) {
          throw impersonationError("USER_NOT_FOUND", "That user is not a member of that organization.", { field: "org_id" });
        }
      } else {
        basis = "org_owner";
        if (input.orgId === undefined) {
          throw impersonationError("IMPERSONATION_NOT_ALLOWED", "Only platform admins impersonate across organizations; name the org_id you own.", {
            field: "org_id",
          });
        }
        const mine = await access.membership(input.orgId, actorId);
        // a stranger learns nothing about the org: same answer as a missing one
        if (!mine) throw platformError("NOT_FOUND", "No organization that you belong to.", { field: "org_id" });
        if (mine.role !== "owner") {
          throw impersonationError("IMPERSONATION_NOT_ALLOWED", "Only the organization's owners (and platform admins) may impersonate its members.", {
            field: "org_id",
          });
        }
        if (!(await ownersMayImpersonate(input.orgId))) {
          throw impersonationError(
            "IMPERSONATION_NOT_ALLOWED",
            "This organization does not allow its owners to impersonate members (owner_impersonation is off).",
            { field: "org_id" },
          );
        }
        if (!target || target.disabledAt || !(await access.membership(input.orgId, input.userId))) throw noUser();
      }
      if (target.isPlatformAdmin) throw impersonationError("CANNOT_IMPERSONATE_ADMIN", "Platform admins cannot be impersonated.", { field: "user_id" });

      const now = clock.now();
      const id = newId("impersonation", now.getTime());
      const row: ImpersonationRow = {
        id,
        impersonatorId: actorId,
        userId: input.userId,
        orgId: input.orgId ?? null,
        reason: input.reason.trim(),
        basis,
        createdAt: now,
        expiresAt: new Date(now.getTime() + expiresIn * 1000),
        endedAt: null,
        ip: actor.ip ?? null,
        userAgent: actor.userAgent ?? null,
      };
      await db.tx(input.orgId ? { orgId: input.orgId } : {}, async (tx) => {
        await repo.insert(tx, row);
        if (input.orgId) {
          await audit.record(tx, actor, {
            orgId: input.orgId,
            action: "impersonation.started",
            target: { type: "user", id: input.userId },
            diff: { impersonation_id: [null, id], basis: [null, basis], reason: [null, row.reason], expires_at: [null, row.expiresAt.toISOString()] },
          });
        }
      });
      const claims: Record<string, unknown> = { sub: input.userId, act: { sub: actorId, imp: id, basis } };
      if (input.orgId) claims.org = input.orgId;
      const token = await keys.sign(claims as { sub: string }, expiresIn);
      looks.set(id, null);
      return { token, expiresIn, row };
    },

    /** Ends an impersonation early: by the impersonator, or by the person impersonated. Idempotent once ended. */
    async end(userId: string, id: string, actor: AuditActor): Promise<ImpersonationRow> {
      const notFound = () => impersonationError("IMPERSONATION_NOT_FOUND", "No such impersonation of yours.", { field: "impersonationId" });
      const found = await db.read((ex) => repo.findById(ex, id));
      if (!found || (found.impersonatorId !== userId && found.userId !== userId)) throw notFound();
      if (found.endedAt || found.expiresAt.getTime() <= clock.now().getTime()) return found;
      const now = clock.now();
      const ended = await db.tx(found.orgId ? { orgId: found.orgId } : {}, async (tx) => {
        const row = await repo.end(tx, id, now);
        if (row && found.orgId) {
          await audit.record(tx, actor, {
            orgId: found.orgId,
            action: "impersonation.ended",
            target: { type: "user", id: found.userId },
            diff: { impersonation_id: [id, id], ended_at: [null, now.toISOString()] },
          });
        }
        return row ?? found;
      });
      await looks.delete(id); // on every instance before this answers
      return ended;
    },

    /** Impersonations of `userId` (what they see about themselves), newest first; `before` pages by id. */
    async ofUser(userId: string, limit: number, before?: string): Promise<ImpersonationRow[]> {
      return db.read((ex) => repo.ofUser(ex, userId, limit, before));
    },

    /** Impersonations started by `userId`, newest first. */
    async byUser(userId: string, limit: number, before?: string): Promise<ImpersonationRow[]> {
      return db.read((ex) => repo.byUser(ex, userId, limit, before));
    },

    /** Whether a record is still usable, by this service's clock. */
    stateOf(row: ImpersonationRow): "active" | "ended" | "expired" {
      return row.endedAt ? "ended" : row.expiresAt.getTime() <= clock.now().getTime() ? "expired" : "active";
    },

    /** The people behind a page of records: id → email and name, for display. */
    async people(ids: string[]): Promise<Map<string, { email: string; name: string }>> {
      if (!ids.length) return new Map();
      const rows = await db.read((ex) => accountNames(ex, ids));
      return new Map(rows.map((r) => [r.id, { email: r.email, name: r.name }]));
    },
  };
}

export type ImpersonationService = ReturnType<typeof createImpersonationService>;
