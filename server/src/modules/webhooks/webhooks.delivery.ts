import { randomInt } from "node:crypto";
import type { Logger } from "pino";
import { Webhook } from "standardwebhooks";
import type { Database } from "../../db/client.ts";
import type { JobQueue } from "../../jobs/queue.ts";
import type { Clock } from "../../lib/clock.ts";
import { newId } from "../../lib/ids.ts";
import { OUTBOUND_TIMEOUT_MS, OutboundFailed, OutboundRefused, type OutboundGuard } from "../../lib/outbound.ts";
import type { AuditActor, AuditService } from "../audit/audit.service.ts";
import type { WebhooksRepo } from "./webhooks.repo.ts";
import { DELIVER_JOB, type WebhooksService } from "./webhooks.service.ts";

/**
 * Svix's schedule: the first attempt at once, then retries 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h after the
 * attempt before (each ±10 %, so that endpoints that failed together do not retry together).
 */
export const RETRY_DELAYS_MS = [5_000, 5 * 60_000, 30 * 60_000, 2 * 3600_000, 5 * 3600_000, 10 * 3600_000, 10 * 3600_000];
/** An endpoint whose every attempt failed for this long is disabled. */
export const FAILING_DISABLE_MS = 5 * 24 * 3600_000;
/** The mail to the org's owners and admins when Plinth disabled an endpoint. */
export const DISABLED_NOTICE_JOB = "webhooks.disabled-notice";
const RESPONSE_KEEP_BYTES = 1024;
const SYSTEM: AuditActor = { type: "system", id: null };

export type AttemptOutcome = {
  status: "succeeded" | "failed";
  responseStatus: number | null;
  responseBody: string | null;
  durationMs: number;
  errorKind: string | null;
};

/** ±10 % jitter from crypto randomness. */
const jitter = (ms: number) => Math.round(ms * (0.9 + randomInt(0, 20_001) / 100_000));

/**
 * One attempt of one delivery (the job's handler): read the delivery, its endpoint and signing secrets in one
 * transaction; sign and POST outside any transaction (the SSRF guard checks the address again and connects to it);
 * record the attempt and what follows (delivered, the next retry as a job with its runAt, or failed) in another.
 * 410 disables the endpoint; so do 5 days of failures. Idempotent: a delivery no longer pending is left alone.
 */
export function createDeliverer(deps: {
  db: Database;
  clock: Clock;
  log: Logger;
  repo: WebhooksRepo;
  service: Pick<WebhooksService, "signingSecrets">;
  audit: Pick<AuditService, "record">;
  jobs: Pick<JobQueue, "enqueue">;
  outbound: Pick<OutboundGuard, "send">;
  /** Called after a commit that disabled one of the org's endpoints (the fan-out's cache). */
  onEndpointsChanged: (orgId: string) => Promise<void>;
}) {
  const { db, clock, log, repo, service, audit, jobs, outbound } = deps;

  async function disable(tx: Parameters<Parameters<Database["tx"]>[1]>[0], orgId: string, endpointId: string, reason: "gone" | "failing") {
    await repo.updateEndpoint(tx, orgId, endpointId, { enabled: false, disabledReason: reason, updatedAt: clock.now() });
    await audit.record(tx, SYSTEM, {
      orgId,
      action: "webhook.endpoint.disabled",
      target: { type: "webhook_endpoint", id: endpointId },
      diff: { enabled: [true, false], reason },
    });
    await jobs.enqueue(tx, DISABLED_NOTICE_JOB, { org_id: orgId, endpoint_id: endpointId });
  }

  return {
    async attempt(orgId: string, deliveryId: string, round: number): Promise<AttemptOutcome | undefined> {
      const prep = await db.tx({ orgId }, async (tx) => {
        const d = await repo.findDelivery(tx, orgId, deliveryId, true);
        // done meanwhile (a replay's job and a retry's both ran, say): nothing to send
        if (d?.status !== "pending") return undefined;
        const endpoint = await repo.findEndpoint(tx, orgId, d.endpointId);
        if (!endpoint?.enabled) {
          await repo.updateDelivery(tx, orgId, deliveryId, { status: "failed", nextAttemptAt: null });
          return undefined;
        }
        if (endpoint.rateLimitPerSecond !== null) {
          const now = clock.now();
          const recent = await repo.attemptsSince(tx, orgId, endpoint.id, new Date(now.getTime() - 1000));
          if (recent >= endpoint.rateLimitPerSecond) {
            // over the endpoint's rate: this attempt waits a second (not counted as one)
            const at = new Date(now.getTime() + 1000 + randomInt(0, 500));
            await repo.updateDelivery(tx, orgId, deliveryId, { nextAttemptAt: at });
            await jobs.enqueue(tx, DELIVER_JOB, { org_id: orgId, delivery_id: deliveryId, round }, { runAt: at });
            return undefined;
          }
        }
        return { d, endpoint, secrets: await service.signingSecrets(tx, endpoint) };
      });
      if (!prep) return undefined;
      const { d, endpoint, secrets } = prep;

      // outside any transaction: sign, then one POST to the checked address
      const body = JSON.stringify(d.payload);
      const sentAt = clock.now();
      const signature = secrets.map((s) => new Webhook(s).sign(d.messageId, sentAt, body)).join(" ");
      let outcome: AttemptOutcome;
      try {
        const res = await outbound.send(endpoint.url, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            "user-agent": "Plinth-Webhooks/1",
            "webhook-id": d.messageId,
            "webhook-timestamp": String(Math.floor(sentAt.getTime() / 1000)),
            "webhook-signature": signature,
          },
          body,
          timeoutMs: OUTBOUND_TIMEOUT_MS,
          maxBodyBytes: RESPONSE_KEEP_BYTES,
        });
        const ok = res.status >= 200 && res.status < 300;
        outcome = {
          status: ok ? "succeeded" : "failed",
          responseStatus: res.status,
          responseBody: res.body.toString("utf8"),
          durationMs: res.durationMs,
          errorKind: ok ? null : "http_status",
        };
      } catch (e) {
        if (!(e instanceof OutboundRefused || e instanceof OutboundFailed)) throw e;
        outcome = {
          status: "failed",
          responseStatus: null,
          responseBody: null,
          durationMs: e instanceof OutboundFailed ? e.durationMs : 0,
          errorKind: e.kind,
        };
      }

      const attempt = d.attempts + 1;
      const disabled = await db.tx({ orgId }, async (tx) => {
        const now = clock.now();
        await repo.insertAttempt(tx, {
          id: newId("webhookAttempt", now.getTime()),
          orgId,
          deliveryId,
          attempt,
          status: outcome.status,
          responseStatus: outcome.responseStatus,
          // Postgres text holds no NUL
          responseBody: outcome.responseBody?.replaceAll("\u0000", "") ?? null,
          durationMs: outcome.durationMs,
          errorKind: outcome.errorKind,
          createdAt: now,
        });
        const current = await repo.findEndpoint(tx, orgId, endpoint.id, true);
        if (outcome.status === "succeeded") {
          await repo.updateDelivery(tx, orgId, deliveryId, {
            status: "delivered",
            attempts: attempt,
            lastAttemptAt: now,
            deliveredAt: now,
            nextAttemptAt: null,
          });
          if (current?.failingSince) await repo.updateEndpoint(tx, orgId, endpoint.id, { failingSince: null });
          return false;
        }
        const gone = outcome.responseStatus === 410;
        const retry = attempt - round; // attempts made in this round (a replay starts a new one)
        const delay = !gone && retry <= RETRY_DELAYS_MS.length ? jitter(RETRY_DELAYS_MS[retry - 1]) : undefined;
        const nextAt = delay === undefined ? null : new Date(now.getTime() + delay);
        await repo.updateDelivery(tx, orgId, deliveryId, {
          status: nextAt ? "pending" : "failed",
          attempts: attempt,
          lastAttemptAt: now,
          nextAttemptAt: nextAt,
        });
        if (nextAt) await jobs.enqueue(tx, DELIVER_JOB, { org_id: orgId, delivery_id: deliveryId, round }, { runAt: nextAt });
        if (!current?.enabled) return false;
        if (gone) {
          await disable(tx, orgId, endpoint.id, "gone");
          return true;
        }
        const failingSince = current.failingSince ?? now;
        if (now.getTime() - failingSince.getTime() >= FAILING_DISABLE_MS) {
          await disable(tx, orgId, endpoint.id, "failing");
          return true;
        }
        if (!current.failingSince) await repo.updateEndpoint(tx, orgId, endpoint.id, { failingSince });
        return false;
      });
      if (disabled) {
        log.warn({ orgId, endpointId: endpoint.id }, "disabled a webhook endpoint");
        await deps.onEndpointsChanged(orgId);
      }
      return outcome;
    },
  };
}
