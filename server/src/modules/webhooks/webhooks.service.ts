import { randomBytes } from "node:crypto";
import type { Database, Executor } from "../../db/client.ts";
import type { SecretEnvelope } from "../../db/schema/webhooks.ts";
import type { JobQueue } from "../../jobs/queue.ts";
import type { Kms } from "../../kms/kms.ts";
import type { Cache } from "../../lib/cache.ts";
import type { Clock } from "../../lib/clock.ts";
import { platformError } from "../../lib/errors.ts";
import { isId, newId } from "../../lib/ids.ts";
import { OutboundRefused, type OutboundGuard } from "../../lib/outbound.ts";
import type { OrgMembership } from "../access/access.service.ts";
import type { AuditActor, AuditService, RecordedAuditEvent } from "../audit/audit.service.ts";
import { webhooksError } from "./webhooks.errors.ts";
import { type EventType, eventBody, eventTypesOf, subscribes } from "./webhooks.events.ts";
import type { DeliveryRow, EndpointRow, WebhooksRepo } from "./webhooks.repo.ts";
import type { CreateEndpointInput, UpdateEndpointInput } from "./webhooks.schemas.ts";

/** The delivery job: payload org_id, delivery_id and round (the attempt count when this round of retries began). */
export const DELIVER_JOB = "webhooks.deliver";
/** After a rotation, deliveries carry the previous secret's signature too for this long. */
export const SECRET_OVERLAP_MS = 24 * 3600_000;
/** How many failed deliveries one $replay-failed replays at most. */
export const REPLAY_MAX = 1000;

export type EndpointSubscription = { id: string; eventTypes: string[] };

const invalid = (field: string, detail: string) => platformError("VALIDATION_FAILED", detail, { field });
const endpointNotFound = (id: string) =>
  webhooksError("WEBHOOK_ENDPOINT_NOT_FOUND", `No webhook endpoint ${id.slice(0, 40)} in this organization.`, { field: "endpointId" });
const deliveryNotFound = (id: string) =>
  webhooksError("WEBHOOK_DELIVERY_NOT_FOUND", `No webhook delivery ${id.slice(0, 40)} in this organization.`, { field: "deliveryId" });

/** A Standard Webhooks secret: whsec_ and base64 of 32 random bytes. */
export const newSigningSecret = () => `whsec_${randomBytes(32).toString("base64")}`;
/** The associated data of an endpoint's secrets: an envelope moved to another endpoint or org does not decrypt. */
export const secretAad = (orgId: string, endpointId: string) => `webhook-endpoint:${orgId}:${endpointId}`;

/**
 * Outbound webhook endpoints and the fan-out of audited changes to them. The signing secret is shown once (creation,
 * rotation) and otherwise kept only encrypted through the vault's KMS layer; it is in no log, job payload, delivery
 * row or audit diff. Deliveries are rows (the body, built from the audit event's non-secret fields) with one job each.
 */
export function createWebhooksService(deps: {
  db: Database;
  clock: Clock;
  repo: WebhooksRepo;
  kms: Pick<Kms, "encrypt" | "decrypt">;
  audit: Pick<AuditService, "record">;
  jobs: Pick<JobQueue, "enqueue" | "kick">;
  outbound: Pick<OutboundGuard, "check">;
  /** The org's enabled endpoints (per org, read in the caller's transaction on a miss). */
  endpoints: Cache<EndpointSubscription[], Executor>;
}) {
  const { db, clock, repo, kms, audit, jobs, outbound, endpoints } = deps;

  async function sealSecret(tx: Executor, orgId: string, endpointId: string, secret: string): Promise<SecretEnvelope> {
    return kms.encrypt(tx, orgId, Buffer.from(secret, "utf8"), secretAad(orgId, endpointId));
  }

  /** https, or http to an allowlisted host; no credentials or fragment; resolvable to addresses the SSRF guard allows. */
  async function checkUrl(value: string): Promise<string> {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      throw invalid("url", "url is not a URL.");
    }
    if (url.username || url.password || url.hash) throw invalid("url", "url must carry no credentials and no fragment.");
    try {
      const target = await outbound.check(url);
      if (url.protocol === "http:" && !target.allowlisted) throw invalid("url", "url must be https (http only to a host the operator allowlisted).");
    } catch (e) {
      if (e instanceof OutboundRefused) throw invalid("url", `url ${e.message}`);
      throw e;
    }
    return url.href;
  }

  async function loadEndpoint(ex: Executor, orgId: string, id: string, lock = false): Promise<EndpointRow> {
    const row = await repo.findEndpoint(ex, orgId, id, lock);
    if (!row) throw endpointNotFound(id);
    return row;
  }

  async function loadDelivery(ex: Executor, orgId: string, id: string, lock = false): Promise<DeliveryRow> {
    const row = await repo.findDelivery(ex, orgId, id, lock);
    if (!row) throw deliveryNotFound(id);
    return row;
  }

  /** Inserts deliveries and their jobs in the caller's transaction: the payload names the delivery, never the body or a secret. */
  async function enqueueDeliveries(tx: Executor, rows: DeliveryRow[] | Parameters<WebhooksRepo["insertDeliveries"]>[1]): Promise<void> {
    await repo.insertDeliveries(tx, rows);
    for (const r of rows) await jobs.enqueue(tx, DELIVER_JOB, { org_id: r.orgId, delivery_id: r.id, round: 0 });
  }

  return {
    /**
     * The state-change callback (audit.onRecorded): in the audited change's transaction, one delivery per enabled
     * endpoint subscribed to the event's types. No endpoints (the usual case) costs one cache lookup.
     */
    async onRecorded(tx: Executor, event: RecordedAuditEvent): Promise<void> {
      if (!isId("org", event.orgId)) return; // the platform's own chain has no endpoints
      const subs = endpoints.get(event.orgId) ?? (await endpoints.fetch(event.orgId, tx));
      if (!subs.length) return;
      const now = clock.now();
      const rows = [];
      for (const type of eventTypesOf(event.action)) {
        const body = eventBody(type, event);
        for (const s of subs.filter((x) => subscribes(x.eventTypes, type))) {
          rows.push({
            id: newId("webhookDelivery", now.getTime()),
            orgId: event.orgId,
            endpointId: s.id,
            messageId: newId("webhookMessage", now.getTime()),
            eventType: type,
            payload: body,
            status: "pending",
            nextAttemptAt: now,
            createdAt: now,
          });
        }
      }
      await enqueueDeliveries(tx, rows);
    },

    async create(caller: OrgMembership, input: CreateEndpointInput, actor: AuditActor): Promise<{ row: EndpointRow; secret: string }> {
      const url = await checkUrl(input.url);
      const now = clock.now();
      const id = newId("webhookEndpoint", now.getTime());
      const secret = newSigningSecret();
      const row = await db.tx({ orgId: caller.orgId }, async (tx) => {
        const row = await repo.insertEndpoint(tx, {
          id,
          orgId: caller.orgId,
          url,
          description: input.description ?? "",
          eventTypes: input.event_types ?? [],
          enabled: input.enabled ?? true,
          rateLimitPerSecond: input.rate_limit_per_second ?? null,
          secret: await sealSecret(tx, caller.orgId, id, secret),
          createdBy: actor.id,
          createdAt: now,
          updatedAt: now,
        });
        await audit.record(tx, actor, {
          orgId: caller.orgId,
          action: "webhook.endpoint.created",
          target: { type: "webhook_endpoint", id },
          diff: { url: [null, url], event_types: [null, row.eventTypes], enabled: [null, row.enabled] },
        });
        return row;
      });
      await endpoints.delete(caller.orgId);
      return { row, secret };
    },

    list(caller: OrgMembership, f: { after?: string; limit: number }): Promise<EndpointRow[]> {
      return db.read({ orgId: caller.orgId }, (ex) => repo.listEndpoints(ex, caller.orgId, f));
    },

    get(caller: OrgMembership, id: string): Promise<EndpointRow> {
      return db.read({ orgId: caller.orgId }, (ex) => loadEndpoint(ex, caller.orgId, id));
    },

    async update(caller: OrgMembership, id: string, input: UpdateEndpointInput, actor: AuditActor): Promise<EndpointRow> {
      const url = input.url === undefined ? undefined : await checkUrl(input.url);
      const row = await db.tx({ orgId: caller.orgId }, async (tx) => {
        const before = await loadEndpoint(tx, caller.orgId, id, true);
        const set = {
          ...(url !== undefined ? { url } : {}),
          ...(input.description !== undefined ? { description: input.description } : {}),
          ...(input.event_types !== undefined ? { eventTypes: input.event_types } : {}),
          ...(input.rate_limit_per_second !== undefined ? { rateLimitPerSecond: input.rate_limit_per_second } : {}),
          // enabling again clears why Plinth disabled it and the failure streak
          ...(input.enabled !== undefined ? { enabled: input.enabled, disabledReason: null, ...(input.enabled ? { failingSince: null } : {}) } : {}),
        };
        const after = await repo.updateEndpoint(tx, caller.orgId, id, { ...set, updatedAt: clock.now() });
        const diff: Record<string, unknown> = {};
        for (const [k, col] of [
          ["url", "url"],
          ["description", "description"],
          ["event_types", "eventTypes"],
          ["enabled", "enabled"],
          ["rate_limit_per_second", "rateLimitPerSecond"],
        ] as const)
          if (JSON.stringify(before[col]) !== JSON.stringify(after[col])) diff[k] = [before[col], after[col]];
        await audit.record(tx, actor, { orgId: caller.orgId, action: "webhook.endpoint.updated", target: { type: "webhook_endpoint", id }, diff });
        return after;
      });
      await endpoints.delete(caller.orgId);
      return row;
    },

    async remove(caller: OrgMembership, id: string, actor: AuditActor): Promise<void> {
      await db.tx({ orgId: caller.orgId }, async (tx) => {
        const row = await loadEndpoint(tx, caller.orgId, id, true);
        await repo.deleteEndpoint(tx, caller.orgId, id);
        await audit.record(tx, actor, {
          orgId: caller.orgId,
          action: "webhook.endpoint.deleted",
          target: { type: "webhook_endpoint", id },
          diff: { url: [row.url, null] },
        });
      });
      await endpoints.delete(caller.orgId);
    },

    /** A new secret; the current one keeps signing beside it for SECRET_OVERLAP_MS (receivers switch without a gap). */
    async rotateSecret(caller: OrgMembership, id: string, actor: AuditActor): Promise<{ secret: string; previousUntil: Date }> {
      const secret = newSigningSecret();
      const previousUntil = new Date(clock.now().getTime() + SECRET_OVERLAP_MS);
      await db.tx({ orgId: caller.orgId }, async (tx) => {
        const row = await loadEndpoint(tx, caller.orgId, id, true);
        await repo.updateEndpoint(tx, caller.orgId, id, {
          secret: await sealSecret(tx, caller.orgId, id, secret),
          previousSecret: row.secret,
          previousSecretUntil: previousUntil,
          updatedAt: clock.now(),
        });
        await audit.record(tx, actor, {
          orgId: caller.orgId,
          action: "webhook.endpoint.secret_rotated",
          target: { type: "webhook_endpoint", id },
          diff: { previous_secret_expires_at: [null, previousUntil.toISOString()] },
        });
      });
      return { secret, previousUntil };
    },

    /** The secrets a delivery is signed with now: the current one, and the previous one during its overlap. */
    async signingSecrets(tx: Executor, row: EndpointRow): Promise<string[]> {
      const open = async (e: SecretEnvelope) => (await kms.decrypt(tx, row.orgId, e, secretAad(row.orgId, row.id))).toString("utf8");
      const out = [await open(row.secret)];
      if (row.previousSecret && row.previousSecretUntil && row.previousSecretUntil > clock.now()) out.push(await open(row.previousSecret));
      return out;
    },

    /** Sends a webhook.test event to the endpoint (a delivery like any other, with its retries). */
    async sendTest(caller: OrgMembership, id: string, actor: AuditActor): Promise<DeliveryRow> {
      const row = await db.tx({ orgId: caller.orgId }, async (tx) => {
        const endpoint = await loadEndpoint(tx, caller.orgId, id);
        if (!endpoint.enabled) throw webhooksError("WEBHOOK_ENDPOINT_DISABLED", "The endpoint is disabled: enable it first.", { field: "endpointId" });
        const now = clock.now();
        const type: EventType = "webhook.test";
        const d = {
          id: newId("webhookDelivery", now.getTime()),
          orgId: caller.orgId,
          endpointId: id,
          messageId: newId("webhookMessage", now.getTime()),
          eventType: type,
          payload: eventBody(type, {
            id: null as unknown as string,
            orgId: caller.orgId,
            action: "webhook.test",
            actorType: actor.type,
            actorId: actor.id,
            targetType: "webhook_endpoint",
            targetId: id,
            diff: {},
            createdAt: now,
          }),
          status: "pending",
          attempts: 0,
          nextAttemptAt: now,
          lastAttemptAt: null,
          deliveredAt: null,
          createdAt: now,
        } satisfies DeliveryRow;
        await enqueueDeliveries(tx, [d]);
        return d;
      });
      jobs.kick();
      return row;
    },

    listDeliveries(caller: OrgMembership, endpointId: string, f: { before?: string; status?: string; limit: number }): Promise<DeliveryRow[]> {
      return db.read({ orgId: caller.orgId }, async (ex) => {
        await loadEndpoint(ex, caller.orgId, endpointId);
        return repo.listDeliveries(ex, caller.orgId, endpointId, f);
      });
    },

    getDelivery(caller: OrgMembership, id: string) {
      return db.read({ orgId: caller.orgId }, async (ex) => {
        const delivery = await loadDelivery(ex, caller.orgId, id);
        return { delivery, attempts: await repo.attemptsOf(ex, caller.orgId, id) };
      });
    },

    /** Sends a delivery again (same webhook-id), with a fresh round of retries, whatever its state. */
    async replay(caller: OrgMembership, id: string, actor: AuditActor): Promise<DeliveryRow> {
      const row = await db.tx({ orgId: caller.orgId }, async (tx) => {
        const d = await loadDelivery(tx, caller.orgId, id, true);
        const endpoint = await loadEndpoint(tx, caller.orgId, d.endpointId);
        if (!endpoint.enabled) throw webhooksError("WEBHOOK_ENDPOINT_DISABLED", "The endpoint is disabled: enable it first.", { field: "deliveryId" });
        const next = await repo.updateDelivery(tx, caller.orgId, id, { status: "pending", nextAttemptAt: clock.now() });
        await jobs.enqueue(tx, DELIVER_JOB, { org_id: caller.orgId, delivery_id: id, round: d.attempts });
        await audit.record(tx, actor, { orgId: caller.orgId, action: "webhook.delivery.replayed", target: { type: "webhook_delivery", id }, diff: {} });
        return next;
      });
      jobs.kick();
      return row;
    },

    /** Replays the endpoint's failed deliveries created since `since` (at most REPLAY_MAX): how many. */
    async replayFailed(caller: OrgMembership, endpointId: string, since: Date, actor: AuditActor): Promise<number> {
      const n = await db.tx({ orgId: caller.orgId }, async (tx) => {
        const endpoint = await loadEndpoint(tx, caller.orgId, endpointId);
        if (!endpoint.enabled) throw webhooksError("WEBHOOK_ENDPOINT_DISABLED", "The endpoint is disabled: enable it first.", { field: "endpointId" });
        const failed = await repo.failedSince(tx, caller.orgId, endpointId, since, REPLAY_MAX);
        await repo.setDeliveriesPending(
          tx,
          caller.orgId,
          failed.map((d) => d.id),
        );
        for (const d of failed) await jobs.enqueue(tx, DELIVER_JOB, { org_id: caller.orgId, delivery_id: d.id, round: d.attempts });
        await audit.record(tx, actor, {
          orgId: caller.orgId,
          action: "webhook.deliveries.replayed",
          target: { type: "webhook_endpoint", id: endpointId },
          diff: { since: since.toISOString(), count: failed.length },
        });
        return failed.length;
      });
      jobs.kick();
      return n;
    },
  };
}

export type WebhooksService = ReturnType<typeof createWebhooksService>;
