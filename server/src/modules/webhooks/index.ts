import type { Logger } from "pino";
import type { Database, Executor } from "../../db/client.ts";
import type { JobQueue } from "../../jobs/queue.ts";
import type { Kms } from "../../kms/kms.ts";
import { createCache } from "../../lib/cache.ts";
import type { Clock } from "../../lib/clock.ts";
import type { OutboundGuard } from "../../lib/outbound.ts";
import type { Mailer } from "../../mail/mailer.ts";
import type { Bus } from "../../pubsub/bus.ts";
import type { AuditService } from "../audit/audit.service.ts";
import type { membersToNotify } from "../members/index.ts";
import { createDeliverer, DISABLED_NOTICE_JOB } from "./webhooks.delivery.ts";
import { webhookEnvelopes } from "./webhooks.keys.ts";
import { webhooksRepo } from "./webhooks.repo.ts";
import { webhooksRoutes } from "./webhooks.routes.ts";
import { createWebhooksService, DELIVER_JOB, type EndpointSubscription } from "./webhooks.service.ts";

export { RETRY_DELAYS_MS } from "./webhooks.delivery.ts";
export { DELIVER_JOB } from "./webhooks.service.ts";

/**
 * Outbound webhooks (Standard Webhooks): org endpoints, the fan-out of audited changes to them (the first user of the
 * audit's state-change callback registry, `audit.onRecorded`), signed deliveries as jobs with Svix's retry schedule,
 * the delivery log and replay. Every URL passes `outbound`, the SSRF guard; secrets go through the vault's `kms`.
 */
export function wire(deps: {
  db: Database;
  clock: Clock;
  log: Logger;
  jobs: JobQueue;
  audit: AuditService;
  kms: Pick<Kms, "encrypt" | "decrypt" | "rewrapDeks">;
  outbound: OutboundGuard;
  bus: Bus;
  mailer: Mailer;
  /** The org's owners and admins to tell when Plinth disables an endpoint (the members module's function). */
  notifiable: typeof membersToNotify;
  publicUrl: string;
}) {
  const { db, clock, jobs, audit } = deps;
  // the org's enabled endpoints, read on every audited change: dropped on every instance when an endpoint changes
  const endpoints = createCache<EndpointSubscription[], Executor>({
    name: "webhooks.endpoints",
    max: 10_000,
    ttlMs: 60_000,
    fetch: (orgId, tx) => webhooksRepo.enabledEndpoints(tx, orgId),
    bus: deps.bus,
    clock,
  });
  const service = createWebhooksService({ db, clock, repo: webhooksRepo, kms: deps.kms, audit, jobs, outbound: deps.outbound, endpoints });
  audit.onRecorded(service.onRecorded);
  const deliverer = createDeliverer({
    db,
    clock,
    log: deps.log,
    repo: webhooksRepo,
    service,
    audit,
    jobs,
    outbound: deps.outbound,
    onEndpointsChanged: (orgId) => endpoints.delete(orgId),
  });
  // the payload names the delivery; the body and the secrets are read when the job runs
  jobs.register(DELIVER_JOB, async (p) => {
    await deliverer.attempt(String(p.org_id), String(p.delivery_id), Number(p.round ?? 0));
  });
  jobs.register(DISABLED_NOTICE_JOB, async (p) => {
    const orgId = String(p.org_id);
    const endpointId = String(p.endpoint_id);
    const found = await db.read({ orgId }, async (ex) => ({
      endpoint: await webhooksRepo.findEndpoint(ex, orgId, endpointId),
      admins: await deps.notifiable(ex, orgId, { roles: ["owner", "admin"], userIds: [] }),
    }));
    if (!found.endpoint || found.endpoint.enabled) return;
    const why = found.endpoint.disabledReason === "gone" ? "it answered 410 Gone" : "every delivery to it failed for 5 days";
    for (const a of found.admins)
      await deps.mailer.send({
        to: a.email,
        subject: "A webhook endpoint was disabled",
        text:
          `Plinth disabled the webhook endpoint ${found.endpoint.url} (${endpointId}) of your organization because ${why}.\n\n` +
          `Fix the receiver, then enable the endpoint again and replay what failed: ${deps.publicUrl}\n`,
      });
  });
  // the signing secrets are under the org's envelopes: the vault's key rotation re-wraps them too (deps.ts)
  const envelopes = webhookEnvelopes({ kms: deps.kms, repo: webhooksRepo });
  return { service, deliverer, envelopes, routes: [webhooksRoutes({ webhooks: service })] };
}
