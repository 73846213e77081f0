import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import { BODY_ERRORS, OrgIdParams, bearerSecurity, errors } from "../../http/schemas.ts";
import { idCursor, page, pageRequest } from "../../lib/pagination.ts";
import { actorOf, requireTenant } from "../access/request.ts";
import {
  Connection,
  ConnectionPage,
  ConnectionParams,
  ConnectionToken,
  CreateConnectionBody,
  ListConnectionsQuery,
  toConnection,
} from "./connections.schemas.ts";
import type { ConnectionsService } from "./connections.service.ts";

const NEVER =
  "The access token, refresh token and client secret are kept only in the vault (a secret of kind oauth_connection) and never appear in any answer but the token route's, nor in logs, jobs or the audit log.";

/**
 * Routes of integration connections: /v1/orgs/:orgId/connections. Metadata needs connections:read, the access token
 * connections:use, every change connections:manage.
 */
export function connectionsRoutes(s: { connections: ConnectionsService }): FastifyPluginAsyncTypebox {
  const tags = ["connections"];
  const c = s.connections;
  return async (app) => {
    app.post(
      "/v1/orgs/:orgId/connections",
      {
        config: { permission: "connections:manage" },
        schema: {
          operationId: "createConnection",
          tags,
          summary: "Store an integration's OAuth token set as a connection",
          description:
            "For a token set obtained from Jira (Atlassian), Azure DevOps (Microsoft Entra), GitHub, Google or another OAuth server. Its access token is " +
            `refreshed with the refresh_token grant at token_url before it expires (a job, once across instances). ${NEVER} Audited as connection.created.`,
          security: bearerSecurity,
          params: OrgIdParams,
          body: CreateConnectionBody,
          response: { 201: Connection, ...errors(...BODY_ERRORS, 401, 403, 404) },
        },
      },
      async (req, reply) => reply.code(201).send(toConnection(await c.create(requireTenant(req), req.body, actorOf(req)))),
    );

    app.get(
      "/v1/orgs/:orgId/connections",
      {
        config: { permission: "connections:read" },
        schema: {
          operationId: "listConnections",
          tags,
          summary: "The organization's connections, oldest first: metadata only, never tokens",
          description: "Filter by provider and status; revoked connections stay listed.",
          security: bearerSecurity,
          params: OrgIdParams,
          querystring: ListConnectionsQuery,
          response: { 200: ConnectionPage, ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => {
        const { limit, fetch, cursor } = pageRequest(req.query, idCursor("connection"));
        const rows = await c.list(requireTenant(req), { provider: req.query.provider, status: req.query.status, after: cursor, limit: fetch });
        return page(rows, limit, (r) => r.id, toConnection);
      },
    );

    app.get(
      "/v1/orgs/:orgId/connections/:connectionId",
      {
        config: { permission: "connections:read" },
        schema: {
          operationId: "getConnection",
          tags,
          summary: "One connection's metadata (never its tokens)",
          security: bearerSecurity,
          params: ConnectionParams,
          response: { 200: Connection, ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => toConnection(await c.get(requireTenant(req), req.params.connectionId)),
    );

    app.delete(
      "/v1/orgs/:orgId/connections/:connectionId",
      {
        config: { permission: "connections:manage" },
        schema: {
          operationId: "revokeConnection",
          tags,
          summary: "Revoke a connection: its token set is deleted from the vault",
          description: "The connection stays listed with status revoked. Revoking it again changes nothing. Audited as connection.revoked.",
          security: bearerSecurity,
          params: ConnectionParams,
          response: { 204: Type.Null({ description: "Revoked" }), ...errors(400, 401, 403, 404) },
        },
      },
      async (req, reply) => {
        await c.revoke(requireTenant(req), req.params.connectionId, actorOf(req));
        return reply.code(204).send(null);
      },
    );

    app.post(
      "/v1/orgs/:orgId/connections/:connectionId/$refresh",
      {
        config: { permission: "connections:manage" },
        schema: {
          operationId: "refreshConnection",
          tags,
          summary: "Refresh the connection's access token now",
          description:
            "Sends the refresh_token grant to token_url and keeps the new token set as a new vault version (the refresh token stays when the provider " +
            "sends none). 409 CONNECTION_REFRESH_FAILED when the provider refuses the refresh token (the connection becomes refresh_failed: connect " +
            "again), 409 CONNECTION_REFRESH_BUSY when another refresh holds it, 502 when the provider cannot be reached. Audited as connection.refreshed " +
            "or connection.refresh_failed, never with a token.",
          security: bearerSecurity,
          params: ConnectionParams,
          response: { 200: Connection, ...errors(400, 401, 403, 404, 409, 502) },
        },
      },
      async (req) => toConnection(await c.refreshNow(requireTenant(req), req.params.connectionId, actorOf(req))),
    );

    app.post(
      "/v1/orgs/:orgId/connections/:connectionId/token",
      {
        config: { permission: "connections:use" },
        schema: {
          operationId: "getConnectionToken",
          tags,
          summary: "The connection's current access token, for calling the provider",
          description:
            "Refreshed first when it expires within 60 seconds. Audited as connection.token_revealed (never the token), answered with " +
            "Cache-Control: no-store. Never the refresh token or the client secret. 409 for a revoked or refresh_failed connection.",
          security: bearerSecurity,
          params: ConnectionParams,
          response: { 200: ConnectionToken, ...errors(400, 401, 403, 404, 409, 502) },
        },
      },
      async (req, reply) => reply.header("cache-control", "no-store").send(await c.token(requireTenant(req), req.params.connectionId, actorOf(req))),
    );
  };
}
