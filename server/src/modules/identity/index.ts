import type { Database, Executor } from "../../db/client.ts";
import type { JobQueue } from "../../jobs/queue.ts";
import type { Clock } from "../../lib/clock.ts";
import type { LimiterStore } from "../../limits/throttle.ts";
import type { Mailer } from "../../mail/mailer.ts";
import type { SigningKeys } from "../keys/signing-keys.ts";
import type { OrgsService } from "../orgs/orgs.service.ts";
import { createAbuseThrottles, type AbuseRules } from "./abuse.ts";
import { createEmailFlowsService } from "./email-flows.service.ts";
import { identityRepo } from "./identity.repo.ts";
import { accountRoutes, authRoutes, meRoutes } from "./identity.routes.ts";
import { createIdentityService } from "./identity.service.ts";
import { createSessionsService } from "./sessions.service.ts";
import { createSessionRevocations } from "./session-revocations.ts";
import type { Bus } from "../../pubsub/bus.ts";
import type { AuditService } from "../audit/audit.service.ts";
import { createAccountsService } from "./accounts.service.ts";
import { createIdentityMaintenance } from "./maintenance.ts";

/** The rows and request facts other modules name in their own types. */
export type { RequestMeta, UserRow } from "./identity.repo.ts";

/**
 * Whether an account is a platform admin and whether it is disabled, read on the caller's executor (inside a
 * change's transaction, so a demotion or a disable holds at once): how other modules ask, never reading `users`.
 */
export async function accountStanding(ex: Executor, userId: string): Promise<{ isPlatformAdmin: boolean; disabledAt: Date | null } | undefined> {
  const u = await identityRepo.findUserById(ex, userId);
  return u && { isPlatformAdmin: u.isPlatformAdmin, disabledAt: u.disabledAt };
}

/** The account with this canonical email (lib/email.ts), if any. */
export async function accountIdByEmail(ex: Executor, email: string): Promise<string | undefined> {
  return (await identityRepo.findUserByEmail(ex, email))?.id;
}

/** Email and name of each of `ids` that is an account (in no particular order). */
export function accountNames(ex: Executor, ids: readonly string[]): Promise<{ id: string; email: string; name: string }[]> {
  return identityRepo.namesOf(ex, ids);
}

/** Identity: accounts, passwords, sessions, emailed flows. */
export function wire(deps: {
  db: Database;
  clock: Clock;
  jobs: JobQueue;
  mailer: Mailer;
  keys: SigningKeys;
  orgs: OrgsService;
  limiterStore: LimiterStore;
  abuseRules: AbuseRules;
  publicUrl: string;
  accessTtlSeconds: number;
  refreshTtlSeconds: number;
  bus: Bus;
  /** The longest any token carrying a session id lives (access tokens, tokens exchanged from them). */
  maxTokenTtlSeconds: number;
  audit: Pick<AuditService, "record">;
  /** After an account is disabled or enabled: its access changed in every org it belongs to. */
  onAccountChanged: (userId: string) => Promise<void>;
}) {
  const throttles = createAbuseThrottles(deps.limiterStore, deps.abuseRules);
  const revocations = createSessionRevocations({ db: deps.db, clock: deps.clock, bus: deps.bus, keepMs: deps.maxTokenTtlSeconds * 1000 + 60_000 });
  const sessions = createSessionsService({ ...deps, repo: identityRepo, revocations });
  const identity = createIdentityService({ ...deps, repo: identityRepo, sessions, throttles });
  const email = createEmailFlowsService({ ...deps, repo: identityRepo, sessions, throttles });
  const accounts = createAccountsService({ ...deps, repo: identityRepo, revocations });
  return {
    service: { identity, sessions, email, revocations, accounts, maintenance: createIdentityMaintenance(deps) },
    /** Reads the recent revocations before the server takes requests. */
    start: () => revocations.sync(),
    close: async () => revocations.close(),
    routes: [authRoutes({ identity, sessions, email }), meRoutes({ identity }), accountRoutes({ accounts })],
  };
}
