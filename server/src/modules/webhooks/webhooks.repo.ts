import { and, count, desc, eq, gt, gte, inArray, lt } from "drizzle-orm";
import type { Executor } from "../../db/client.ts";
import { webhookAttempts, webhookDeliveries, webhookEndpoints } from "../../db/schema/webhooks.ts";

export type EndpointRow = typeof webhookEndpoints.$inferSelect;
export type DeliveryRow = typeof webhookDeliveries.$inferSelect;
export type AttemptRow = typeof webhookAttempts.$inferSelect;

const endpointById = (orgId: string, id: string) => and(eq(webhookEndpoints.orgId, orgId), eq(webhookEndpoints.id, id));
const deliveryById = (orgId: string, id: string) => and(eq(webhookDeliveries.orgId, orgId), eq(webhookDeliveries.id, id));

/** Webhook endpoints, deliveries and attempts: the org in every query (row-level security is the floor). */
export const webhooksRepo = {
  async insertEndpoint(tx: Executor, row: typeof webhookEndpoints.$inferInsert): Promise<EndpointRow> {
    const [r] = await tx.insert(webhookEndpoints).values(row).returning();
    return r;
  },

  async findEndpoint(ex: Executor, orgId: string, id: string, lock = false): Promise<EndpointRow | undefined> {
    const q = ex.select().from(webhookEndpoints).where(endpointById(orgId, id));
    const [r] = await (lock ? q.for("update") : q);
    return r;
  },

  /** Oldest first (ids are time-ordered), after the cursor id. */
  listEndpoints(ex: Executor, orgId: string, f: { after?: string; limit: number }): Promise<EndpointRow[]> {
    return ex
      .select()
      .from(webhookEndpoints)
      .where(and(eq(webhookEndpoints.orgId, orgId), f.after === undefined ? undefined : gt(webhookEndpoints.id, f.after)))
      .orderBy(webhookEndpoints.id)
      .limit(f.limit);
  },

  /** The org's enabled endpoints and what they subscribe to: what the fan-out reads (cached per org). */
  enabledEndpoints(ex: Executor, orgId: string): Promise<{ id: string; eventTypes: string[] }[]> {
    return ex
      .select({ id: webhookEndpoints.id, eventTypes: webhookEndpoints.eventTypes })
      .from(webhookEndpoints)
      .where(and(eq(webhookEndpoints.orgId, orgId), eq(webhookEndpoints.enabled, true)))
      .orderBy(webhookEndpoints.id);
  },

  /** The org's endpoints with their sealed secrets, locked: what a vault key rotation re-wraps (webhooks.keys.ts). */
  sealedSecrets(tx: Executor, orgId: string): Promise<Pick<EndpointRow, "id" | "secret" | "previousSecret">[]> {
    return tx
      .select({ id: webhookEndpoints.id, secret: webhookEndpoints.secret, previousSecret: webhookEndpoints.previousSecret })
      .from(webhookEndpoints)
      .where(eq(webhookEndpoints.orgId, orgId))
      .for("update");
  },

  async updateEndpoint(tx: Executor, orgId: string, id: string, set: Partial<typeof webhookEndpoints.$inferInsert>): Promise<EndpointRow> {
    const [r] = await tx.update(webhookEndpoints).set(set).where(endpointById(orgId, id)).returning();
    return r;
  },

  async deleteEndpoint(tx: Executor, orgId: string, id: string): Promise<void> {
    await tx.delete(webhookEndpoints).where(endpointById(orgId, id));
  },

  async insertDeliveries(tx: Executor, rows: (typeof webhookDeliveries.$inferInsert)[]): Promise<void> {
    if (rows.length) await tx.insert(webhookDeliveries).values(rows);
  },

  async findDelivery(ex: Executor, orgId: string, id: string, lock = false): Promise<DeliveryRow | undefined> {
    const q = ex.select().from(webhookDeliveries).where(deliveryById(orgId, id));
    const [r] = await (lock ? q.for("update") : q);
    return r;
  },

  /** An endpoint's deliveries, newest first, before the cursor id. */
  listDeliveries(ex: Executor, orgId: string, endpointId: string, f: { before?: string; status?: string; limit: number }): Promise<DeliveryRow[]> {
    return ex
      .select()
      .from(webhookDeliveries)
      .where(
        and(
          eq(webhookDeliveries.orgId, orgId),
          eq(webhookDeliveries.endpointId, endpointId),
          f.status === undefined ? undefined : eq(webhookDeliveries.status, f.status),
          f.before === undefined ? undefined : lt(webhookDeliveries.id, f.before),
        ),
      )
      .orderBy(desc(webhookDeliveries.id))
      .limit(f.limit);
  },

  /** Failed deliveries of the endpoint created at or after `since` (at most `limit`, oldest first). */
  failedSince(ex: Executor, orgId: string, endpointId: string, since: Date, limit: number): Promise<DeliveryRow[]> {
    return ex
      .select()
      .from(webhookDeliveries)
      .where(
        and(
          eq(webhookDeliveries.orgId, orgId),
          eq(webhookDeliveries.endpointId, endpointId),
          eq(webhookDeliveries.status, "failed"),
          gte(webhookDeliveries.createdAt, since),
        ),
      )
      .orderBy(webhookDeliveries.id)
      .limit(limit);
  },

  async updateDelivery(tx: Executor, orgId: string, id: string, set: Partial<typeof webhookDeliveries.$inferInsert>): Promise<DeliveryRow> {
    const [r] = await tx.update(webhookDeliveries).set(set).where(deliveryById(orgId, id)).returning();
    return r;
  },

  async setDeliveriesPending(tx: Executor, orgId: string, ids: string[]): Promise<void> {
    if (ids.length)
      await tx
        .update(webhookDeliveries)
        .set({ status: "pending", nextAttemptAt: null })
        .where(and(eq(webhookDeliveries.orgId, orgId), inArray(webhookDeliveries.id, ids)));
  },

  async insertAttempt(tx: Executor, row: typeof webhookAttempts.$inferInsert): Promise<void> {
    await tx.insert(webhookAttempts).values(row);
  },

  attemptsOf(ex: Executor, orgId: string, deliveryId: string): Promise<AttemptRow[]> {
    return ex
      .select()
      .from(webhookAttempts)
      .where(and(eq(webhookAttempts.orgId, orgId), eq(webhookAttempts.deliveryId, deliveryId)))
      .orderBy(webhookAttempts.attempt);
  },

  /** Attempts made to the endpoint since `since` (its rate limit). */
  async attemptsSince(ex: Executor, orgId: string, endpointId: string, since: Date): Promise<number> {
    const [r] = await ex
      .select({ n: count() })
      .from(webhookAttempts)
      .innerJoin(webhookDeliveries, eq(webhookDeliveries.id, webhookAttempts.deliveryId))
      .where(and(eq(webhookAttempts.orgId, orgId), eq(webhookDeliveries.endpointId, endpointId), gte(webhookAttempts.createdAt, since)));
    return Number(r?.n ?? 0);
  },
};

export type WebhooksRepo = typeof webhooksRepo;
