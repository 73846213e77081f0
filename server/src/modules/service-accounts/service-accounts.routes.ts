import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";

import { requireTenant } from "../access/request.ts";
import { BODY_ERRORS, OrgIdParams, bearerSecurity, errors } from "../../http/schemas.ts";
import { platformError } from "../../lib/errors.ts";
import { idCursor, page, pageRequest } from "../../lib/pagination.ts";
import type { Clock } from "../../lib/clock.ts";
import { actorOf } from "../access/request.ts";
import { CreateKeyBody, KeyWithSecret, toKey } from "../keys/api-keys.schemas.ts";
import type { ServiceAccountsService } from "./service-accounts.service.ts";
import {
  ClientParams,
  CreateClientBody,
  CreateServiceAccountBody,
  ListServiceAccountsQuery,
  OAuthClient,
  OAuthClientList,
  OAuthClientWithSecret,
  ServiceAccount,
  ServiceAccountPage,
  ServiceAccountParams,
  toClient,
  toServiceAccount,
  UpdateServiceAccountBody,
} from "./service-accounts.schemas.ts";

const SUBSET = "Its roles must be ones you could grant: their permissions all yours (403 naming the first you lack).";

/**
 * Routes of the org's service accounts: /v1/orgs/:orgId/service-accounts. Reading needs members:read (accounts are
 * the org's principals, listed beside its members); every change needs service-accounts:manage.
 */
export function serviceAccountsRoutes(s: { serviceAccounts: ServiceAccountsService; clock: Clock }): FastifyPluginAsyncTypebox {
  const tags = ["service-accounts"];
  const sa = s.serviceAccounts;
  return async (app) => {
    app.post(
      "/v1/orgs/:orgId/service-accounts",
      {
        config: { mintsAuthority: true, permission: "service-accounts:manage" },
        schema: {
          operationId: "createServiceAccount",
          tags,
          summary: "Create a service account",
          description: `A non-human principal of the organization with roles. ${SUBSET} Audited as service_account.created.`,
          security: bearerSecurity,
          params: OrgIdParams,
          body: CreateServiceAccountBody,
          response: { 201: ServiceAccount, ...errors(...BODY_ERRORS, 401, 403, 404, 409) },
        },
      },
      async (req, reply) => reply.code(201).send(toServiceAccount(await sa.create(requireTenant(req), req.body, actorOf(req)))),
    );

    app.get(
      "/v1/orgs/:orgId/service-accounts",
      {
        config: { permission: "members:read" },
        schema: {
          operationId: "listServiceAccounts",
          tags,
          summary: "The organization's service accounts, oldest first",
          security: bearerSecurity,
          params: OrgIdParams,
          querystring: ListServiceAccountsQuery,
          response: { 200: ServiceAccountPage, ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => {
        const { orgId } = requireTenant(req);
        const { limit, fetch, cursor } = pageRequest(req.query, idCursor("serviceAccount"));
        return page(await sa.list(orgId, { after: cursor, limit: fetch }), limit, (r) => r.id, toServiceAccount);
      },
    );

    app.get(
      "/v1/orgs/:orgId/service-accounts/:serviceAccountId",
      {
        config: { permission: "members:read" },
        schema: {
          operationId: "getServiceAccount",
          tags,
          summary: "One service account",
          security: bearerSecurity,
          params: ServiceAccountParams,
          response: { 200: ServiceAccount, ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => toServiceAccount(await sa.get(requireTenant(req).orgId, req.params.serviceAccountId)),
    );

    app.patch(
      "/v1/orgs/:orgId/service-accounts/:serviceAccountId",
      {
        config: { mintsAuthority: true, permission: "service-accounts:manage" },
        schema: {
          operationId: "updateServiceAccount",
          tags,
          summary: "Change a service account's name, description or roles",
          description: `New roles take effect on its next request, for tokens already issued too. ${SUBSET} Audited as service_account.updated.`,
          security: bearerSecurity,
          params: ServiceAccountParams,
          body: UpdateServiceAccountBody,
          response: { 200: ServiceAccount, ...errors(...BODY_ERRORS, 401, 403, 404, 409) },
        },
      },
      async (req) => toServiceAccount(await sa.update(requireTenant(req), req.params.serviceAccountId, req.body, actorOf(req))),
    );

    app.post(
      "/v1/orgs/:orgId/service-accounts/:serviceAccountId/$disable",
      {
        config: { permission: "service-accounts:manage" },
        schema: {
          operationId: "disableServiceAccount",
          tags,
          summary: "Disable a service account: its tokens, API keys and clients stop working at once",
          description:
            "Soft: the account, its roles, keys and clients stay, and $enable restores them. Disabling a disabled account changes nothing. Audited as service_account.disabled.",
          security: bearerSecurity,
          params: ServiceAccountParams,
          response: { 200: ServiceAccount, ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => toServiceAccount(await sa.setDisabled(requireTenant(req), req.params.serviceAccountId, true, actorOf(req))),
    );

    app.post(
      "/v1/orgs/:orgId/service-accounts/:serviceAccountId/$enable",
      {
        config: { mintsAuthority: true, permission: "service-accounts:manage" },
        schema: {
          operationId: "enableServiceAccount",
          tags,
          summary: "Enable a disabled service account",
          description: `Gives the account its authority back, so ${SUBSET.charAt(0).toLowerCase()}${SUBSET.slice(1)} Audited as service_account.enabled.`,
          security: bearerSecurity,
          params: ServiceAccountParams,
          response: { 200: ServiceAccount, ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => toServiceAccount(await sa.setDisabled(requireTenant(req), req.params.serviceAccountId, false, actorOf(req))),
    );

    app.delete(
      "/v1/orgs/:orgId/service-accounts/:serviceAccountId",
      {
        config: { permission: "service-accounts:manage" },
        schema: {
          operationId: "deleteServiceAccount",
          tags,
          summary: "Delete a service account and its clients; its API keys are revoked",
          description:
            "Its tokens and keys stop working at once; the audit trail stays. Audited as service_account.deleted, and key.revoked (reason owner_deleted) for each live key.",
          security: bearerSecurity,
          params: ServiceAccountParams,
          response: { 204: Type.Null({ description: "Deleted" }), ...errors(400, 401, 403, 404) },
        },
      },
      async (req, reply) => {
        await sa.delete(requireTenant(req), req.params.serviceAccountId, actorOf(req));
        return reply.code(204).send(null);
      },
    );

    app.post(
      "/v1/orgs/:orgId/service-accounts/:serviceAccountId/keys",
      {
        config: { mintsAuthority: true, permission: "service-accounts:manage" },
        schema: {
          operationId: "createServiceAccountApiKey",
          tags,
          summary: "Create an API key owned by a service account; its secret is in this answer only",
          description:
            "The same body as POST /v1/orgs/{orgId}/keys. Needs keys:create as well; the key's roles and permissions must be both yours and the account's " +
            "(403 naming the first missing). inherit: true acts with the account's permissions as they are at each request: only a signed-in member " +
            "holding all of them may create one. A disabled account gets none (409). The key acts as the account narrowed to its own permissions, " +
            "stops while the account is disabled (404) and is revoked when the account is deleted. List, rename, rotate and revoke it under " +
            "/v1/orgs/{orgId}/keys (revoking also with service-accounts:manage). A service account creates its own keys there, with its token or key. " +
            "Audited as key.created.",
          security: bearerSecurity,
          params: ServiceAccountParams,
          body: CreateKeyBody,
          response: { 201: KeyWithSecret, ...errors(...BODY_ERRORS, 401, 403, 404, 409) },
        },
      },
      async (req, reply) => {
        const principal = req.principal;
        if (!principal) throw platformError("UNAUTHENTICATED", "Sign in first.");
        const { row, secret } = await sa.createKey({ membership: requireTenant(req), principal }, req.params.serviceAccountId, req.body, actorOf(req));
        return reply.code(201).send({ ...toKey(row, s.clock.now()), secret });
      },
    );

    app.post(
      "/v1/orgs/:orgId/service-accounts/:serviceAccountId/clients",
      {
        config: { mintsAuthority: true, permission: "service-accounts:manage" },
        schema: {
          operationId: "createOAuthClient",
          tags,
          summary: "Give a service account an OAuth client credential; its secret is in this answer only",
          description:
            "Use it with POST /v1/oauth/token (grant_type=client_credentials). Whoever holds it acts as the account, so the account's permissions must " +
            "all be yours (403 naming the first you lack); a disabled account gets none (409). Only a hash of the secret is stored. Audited as oauth_client.created.",
          security: bearerSecurity,
          params: ServiceAccountParams,
          body: CreateClientBody,
          response: { 201: OAuthClientWithSecret, ...errors(...BODY_ERRORS, 401, 403, 404, 409) },
        },
      },
      async (req, reply) => {
        const { row, secret } = await sa.createClient(requireTenant(req), req.params.serviceAccountId, req.body.name, actorOf(req));
        return reply.code(201).send({ ...toClient(row), client_secret: secret });
      },
    );

    app.get(
      "/v1/orgs/:orgId/service-accounts/:serviceAccountId/clients",
      {
        config: { permission: "keys:read" },
        schema: {
          operationId: "listOAuthClients",
          tags,
          summary: "A service account's OAuth clients, revoked ones included (never their secrets)",
          description: "Needs keys:read, as listing API keys does.",
          security: bearerSecurity,
          params: ServiceAccountParams,
          response: { 200: OAuthClientList, ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => ({ items: (await sa.listClients(requireTenant(req).orgId, req.params.serviceAccountId)).map(toClient) }),
    );

    app.delete(
      "/v1/orgs/:orgId/service-accounts/:serviceAccountId/clients/:clientId",
      {
        config: { permission: "service-accounts:manage" },
        schema: {
          operationId: "revokeOAuthClient",
          tags,
          summary: "Revoke an OAuth client: it gets no more tokens",
          description:
            "Soft: the record stays. Tokens it already got live out their (short) lifetime. Revoking a revoked client changes nothing. Audited as oauth_client.revoked.",
          security: bearerSecurity,
          params: ClientParams,
          response: { 200: OAuthClient, ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => toClient(await sa.revokeClient(requireTenant(req), req.params.serviceAccountId, req.params.clientId, actorOf(req))),
    );
  };
}
