import type { Database } from "../../db/client.ts";
import type { JobQueue } from "../../jobs/queue.ts";
import type { Clock } from "../../lib/clock.ts";
import type { OutboundGuard } from "../../lib/outbound.ts";
import type { AuditService } from "../audit/audit.service.ts";
import type { ManagedSecrets } from "../vault/index.ts";
import { createTokenRefresher, type TokenRefresher } from "./connections.oauth.ts";
import { connectionsRepo } from "./connections.repo.ts";
import { connectionsRoutes } from "./connections.routes.ts";
import { createConnectionsService, REFRESH_JOB } from "./connections.service.ts";

export { REFRESH_DUE_EVERY_MS, REFRESH_DUE_JOB } from "./connections.service.ts";

/**
 * Integration OAuth connections (/v1/orgs/:orgId/connections): each token set is a vault secret of kind
 * oauth_connection (`secrets`: the vault's managed-secret functions), refreshed by a job before it expires.
 */
export function wire(deps: {
  db: Database;
  clock: Clock;
  jobs: JobQueue;
  audit: AuditService;
  secrets: ManagedSecrets;
  /** The refresh_token grant (default: openid-client, 15 s timeout). */
  refresher?: TokenRefresher;
  /** The SSRF guard token_url passes at create and before each refresh. */
  outbound: OutboundGuard;
}) {
  const service = createConnectionsService({
    db: deps.db,
    clock: deps.clock,
    repo: connectionsRepo,
    secrets: deps.secrets,
    audit: deps.audit,
    jobs: deps.jobs,
    refresher: deps.refresher ?? createTokenRefresher({ timeoutSeconds: 15, outbound: deps.outbound }),
    outbound: deps.outbound,
  });
  // the payload names the connection, never a token: the handler reads the token set from the vault when it runs
  deps.jobs.register(REFRESH_JOB, async (p) => {
    await service.runRefreshJob(String(p.org_id), String(p.connection_id));
  });
  return { service, routes: [connectionsRoutes({ connections: service })] };
}
