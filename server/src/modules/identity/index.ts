import type { Database } from "../../db/client.ts";
import type { JobQueue } from "../../jobs/queue.ts";
import type { Clock } from "../../lib/clock.ts";
import type { LimiterStore } from "../../limits/throttle.ts";
import type { Mailer } from "../../mail/mailer.ts";
import type { SigningKeys } from "../keys/signing-keys.ts";
import type { OrgsService } from "../orgs/orgs.service.ts";
import { createAbuseThrottles, type AbuseRules } from "./abuse.ts";
import { createEmailFlowsService } from "./email-flows.service.ts";
import { identityRepo } from "./identity.repo.ts";
import { authRoutes, meRoutes } from "./identity.routes.ts";
import { createIdentityService } from "./identity.service.ts";
import { createSessionsService } from "./sessions.service.ts";

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
}) {
  const throttles = createAbuseThrottles(deps.limiterStore, deps.abuseRules);
  const sessions = createSessionsService({ ...deps, repo: identityRepo });
  const identity = createIdentityService({ ...deps, repo: identityRepo, sessions, throttles });
  const email = createEmailFlowsService({ ...deps, repo: identityRepo, sessions, throttles });
  return {
    service: { identity, sessions, email },
    routes: [authRoutes({ identity, sessions, email }), meRoutes({ identity })],
  };
}
