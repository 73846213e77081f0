import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import { BODY_ERRORS, OrgIdParams, bearerSecurity, errors } from "../../http/schemas.ts";
import { idCursor, page, pageRequest, PageQuery } from "../../lib/pagination.ts";
import { actorOf, requireTenant } from "../access/request.ts";
import { EVENT_TYPE_NAMES, EVENT_TYPES, eventExample, eventSchema } from "./webhooks.events.ts";
import {
  CreatedEndpoint,
  CreateEndpointBody,
  Delivery,
  DeliveryPage,
  DeliveryParams,
  DeliveryWithAttempts,
  Endpoint,
  EndpointPage,
  EndpointParams,
  EventTypeList,
  ListDeliveriesQuery,
  ReplayFailedBody,
  RotatedSecret,
  toAttempt,
  toDelivery,
  toEndpoint,
  UpdateEndpointBody,
} from "./webhooks.schemas.ts";
import type { WebhooksService } from "./webhooks.service.ts";

const NEVER = "The signing secret is shown only when it is made (creation, $rotate-secret); it is kept encrypted and is in no answer, log, job or audit event.";

/**
 * Outbound webhooks: /v1/orgs/:orgId/webhooks/… (reading needs webhooks:read, every change webhooks:manage) and the
 * event type catalog, /v1/webhook-event-types (any signed-in caller).
 */
export function webhooksRoutes(s: { webhooks: WebhooksService }): FastifyPluginAsyncTypebox {
  const tags = ["webhooks"];
  const w = s.webhooks;
  const base = "/v1/orgs/:orgId/webhooks";
  return async (app) => {
    app.get(
      "/v1/webhook-event-types",
      {
        schema: {
          operationId: "listWebhookEventTypes",
          tags,
          summary: "Every webhook event type, with the JSON schema of its body and an example",
          description: "audit.event is the opt-in firehose (every audit event); webhook.test is what $test sends.",
          security: bearerSecurity,
          response: { 200: EventTypeList, ...errors(401) },
        },
      },
      async () => ({
        items: EVENT_TYPE_NAMES.map((name) => ({ name, description: EVENT_TYPES[name].description, schema: eventSchema(name), example: eventExample(name) })),
      }),
    );

    app.post(
      `${base}/endpoints`,
      {
        config: { permission: "webhooks:manage", mintsAuthority: true },
        schema: {
          operationId: "createWebhookEndpoint",
          tags,
          summary: "Add an endpoint that receives the organization's events, signed (Standard Webhooks)",
          description:
            "The URL's host is resolved now and refused (400 naming url) when it reaches a loopback, private, link-local, multicast or cloud " +
            `metadata address, unless the operator allowlisted it (PLINTH_OUTBOUND_ALLOW); it is checked again at every delivery. ${NEVER} ` +
            "Audited as webhook.endpoint.created.",
          security: bearerSecurity,
          params: OrgIdParams,
          body: CreateEndpointBody,
          response: { 201: CreatedEndpoint, ...errors(...BODY_ERRORS, 401, 403, 404) },
        },
      },
      async (req, reply) => {
        const { row, secret } = await w.create(requireTenant(req), req.body, actorOf(req));
        return reply
          .code(201)
          .header("cache-control", "no-store")
          .send({ ...toEndpoint(row), secret });
      },
    );

    app.get(
      `${base}/endpoints`,
      {
        config: { permission: "webhooks:read" },
        schema: {
          operationId: "listWebhookEndpoints",
          tags,
          summary: "The organization's webhook endpoints, oldest first (never their secrets)",
          security: bearerSecurity,
          params: OrgIdParams,
          querystring: PageQuery,
          response: { 200: EndpointPage, ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => {
        const { limit, fetch, cursor } = pageRequest(req.query, idCursor("webhookEndpoint"));
        return page(await w.list(requireTenant(req), { after: cursor, limit: fetch }), limit, (r) => r.id, toEndpoint);
      },
    );

    app.get(
      `${base}/endpoints/:endpointId`,
      {
        config: { permission: "webhooks:read" },
        schema: {
          operationId: "getWebhookEndpoint",
          tags,
          summary: "One webhook endpoint (never its secret)",
          security: bearerSecurity,
          params: EndpointParams,
          response: { 200: Endpoint, ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => toEndpoint(await w.get(requireTenant(req), req.params.endpointId)),
    );

    app.patch(
      `${base}/endpoints/:endpointId`,
      {
        config: { permission: "webhooks:manage" },
        schema: {
          operationId: "updateWebhookEndpoint",
          tags,
          summary: "Change an endpoint's URL, description, event types, rate limit, or enable or disable it",
          description: "A new URL passes the SSRF check as at creation. Enabling clears why Plinth disabled it. Audited as webhook.endpoint.updated.",
          security: bearerSecurity,
          params: EndpointParams,
          body: UpdateEndpointBody,
          response: { 200: Endpoint, ...errors(...BODY_ERRORS, 401, 403, 404) },
        },
      },
      async (req) => toEndpoint(await w.update(requireTenant(req), req.params.endpointId, req.body, actorOf(req))),
    );

    app.delete(
      `${base}/endpoints/:endpointId`,
      {
        config: { permission: "webhooks:manage" },
        schema: {
          operationId: "deleteWebhookEndpoint",
          tags,
          summary: "Delete an endpoint with its delivery log",
          description: "Audited as webhook.endpoint.deleted.",
          security: bearerSecurity,
          params: EndpointParams,
          response: { 204: Type.Null({ description: "Deleted" }), ...errors(400, 401, 403, 404) },
        },
      },
      async (req, reply) => {
        await w.remove(requireTenant(req), req.params.endpointId, actorOf(req));
        return reply.code(204).send(null);
      },
    );

    app.post(
      `${base}/endpoints/:endpointId/$rotate-secret`,
      {
        config: { permission: "webhooks:manage", mintsAuthority: true },
        schema: {
          operationId: "rotateWebhookSecret",
          tags,
          summary: "Give the endpoint a new signing secret, shown once",
          description:
            "For 24 hours deliveries carry two signatures in webhook-signature (space-separated v1,… entries), one per secret, so the receiver " +
            "can switch without a gap. Audited as webhook.endpoint.secret_rotated (never a secret).",
          security: bearerSecurity,
          params: EndpointParams,
          response: { 200: RotatedSecret, ...errors(400, 401, 403, 404) },
        },
      },
      async (req, reply) => {
        const r = await w.rotateSecret(requireTenant(req), req.params.endpointId, actorOf(req));
        return reply
          .header("cache-control", "no-store")
          .send({ endpoint_id: req.params.endpointId, secret: r.secret, previous_secret_expires_at: r.previousUntil.toISOString() });
      },
    );

    app.post(
      `${base}/endpoints/:endpointId/$test`,
      {
        config: { permission: "webhooks:manage" },
        schema: {
          operationId: "testWebhookEndpoint",
          tags,
          summary: "Send a webhook.test event to the endpoint",
          description: "A delivery like any other (signed, retried, logged). 409 when the endpoint is disabled.",
          security: bearerSecurity,
          params: EndpointParams,
          response: { 202: Delivery, ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (req, reply) => reply.code(202).send(toDelivery(await w.sendTest(requireTenant(req), req.params.endpointId, actorOf(req)))),
    );

    app.post(
      `${base}/endpoints/:endpointId/$replay-failed`,
      {
        config: { permission: "webhooks:manage" },
        schema: {
          operationId: "replayFailedWebhookDeliveries",
          tags,
          summary: "Send again every failed delivery of the endpoint since a time (at most 1,000)",
          description: "Each keeps its webhook-id and gets a fresh round of retries. Audited as webhook.deliveries.replayed.",
          security: bearerSecurity,
          params: EndpointParams,
          body: ReplayFailedBody,
          response: {
            202: Type.Object({ replayed: Type.Integer({ description: "How many deliveries were queued again" }) }),
            ...errors(...BODY_ERRORS, 401, 403, 404, 409),
          },
        },
      },
      async (req, reply) => {
        const since = new Date(req.body.since);
        return reply.code(202).send({ replayed: await w.replayFailed(requireTenant(req), req.params.endpointId, since, actorOf(req)) });
      },
    );

    app.get(
      `${base}/endpoints/:endpointId/deliveries`,
      {
        config: { permission: "webhooks:read" },
        schema: {
          operationId: "listWebhookDeliveries",
          tags,
          summary: "The endpoint's deliveries, newest first",
          security: bearerSecurity,
          params: EndpointParams,
          querystring: ListDeliveriesQuery,
          response: { 200: DeliveryPage, ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => {
        const { limit, fetch, cursor } = pageRequest(req.query, idCursor("webhookDelivery"));
        const rows = await w.listDeliveries(requireTenant(req), req.params.endpointId, { before: cursor, status: req.query.status, limit: fetch });
        return page(rows, limit, (r) => r.id, toDelivery);
      },
    );

    app.get(
      `${base}/deliveries/:deliveryId`,
      {
        config: { permission: "webhooks:read" },
        schema: {
          operationId: "getWebhookDelivery",
          tags,
          summary: "One delivery and its attempts (status, response code, first 1 KiB of the answer, duration, why it failed)",
          security: bearerSecurity,
          params: DeliveryParams,
          response: { 200: DeliveryWithAttempts, ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => {
        const { delivery, attempts } = await w.getDelivery(requireTenant(req), req.params.deliveryId);
        return { ...toDelivery(delivery), attempt_log: attempts.map(toAttempt) };
      },
    );

    app.post(
      `${base}/deliveries/:deliveryId/$replay`,
      {
        config: { permission: "webhooks:manage" },
        schema: {
          operationId: "replayWebhookDelivery",
          tags,
          summary: "Send a delivery again (same webhook-id), with a fresh round of retries",
          description: "409 when its endpoint is disabled. Audited as webhook.delivery.replayed.",
          security: bearerSecurity,
          params: DeliveryParams,
          response: { 202: Delivery, ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (req, reply) => reply.code(202).send(toDelivery(await w.replay(requireTenant(req), req.params.deliveryId, actorOf(req)))),
    );
  };
}
