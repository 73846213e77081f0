import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { FastifyRequest } from "fastify";

import { requireTenant } from "../access/request.ts";
import { BODY_ERRORS, OrgIdParams, bearerSecurity, errors } from "../../http/schemas.ts";
import type { Clock } from "../../lib/clock.ts";
import { platformError } from "../../lib/errors.ts";
import { idCursor, page, pageRequest } from "../../lib/pagination.ts";
import { actorOf } from "../access/request.ts";
import type { ApiKeysService, KeyCaller } from "./api-keys.service.ts";
import {
  ApiKey,
  CreateKeyBody,
  KeyPage,
  KeyParams,
  KeyRoles,
  KeyWithSecret,
  ListKeysQuery,
  PutRolesBody,
  RotateBody,
  RotatedKey,
  toKey,
  UpdateKeyBody,
} from "./api-keys.schemas.ts";

const USING =
  "Use a key as `Authorization: Bearer plk_live_…` or `X-API-Key: plk_live_…` on any route of its organization (another organization's " +
  "path answers 404); account routes such as /v1/me answer 401, they need a signed-in user.";

function callerOf(req: FastifyRequest): KeyCaller {
  const membership = requireTenant(req);
  const principal = req.principal;
  if (!principal) throw platformError("UNAUTHENTICATED", "Sign in first.");
  return { membership, principal };
}

/** Routes of the org's API keys: /v1/orgs/:orgId/keys. */
export function apiKeysRoutes(s: { apiKeys: ApiKeysService; clock: Clock }): FastifyPluginAsyncTypebox {
  const tags = ["api-keys"];
  const view = (row: Parameters<typeof toKey>[0]) => toKey(row, s.clock.now());
  return async (app) => {
    app.post(
      "/v1/orgs/:orgId/keys",
      {
        config: { mintsAuthority: true, permission: "keys:create" },
        schema: {
          operationId: "createApiKey",
          tags,
          summary: "Create an API key; its secret is in this answer only",
          description:
            "The key is yours, in this organization (a service account calling with its token or key makes its own key; a member makes an account's " +
            "key with POST …/service-accounts/{serviceAccountId}/keys). Its roles and permissions together must be ones you hold (403 naming the first " +
            "you lack); with inherit: true (owners and admins, signed in) it acts with your permissions as they are at each request instead. Optional validity window, " +
            `IP allowlist and per-minute rate limit. Only a hash of the secret is stored. Audited as key.created. ${USING}`,
          security: bearerSecurity,
          params: OrgIdParams,
          body: CreateKeyBody,
          response: { 201: KeyWithSecret, ...errors(...BODY_ERRORS, 401, 403, 404, 409) },
        },
      },
      async (req, reply) => {
        const { row, secret } = await s.apiKeys.create(callerOf(req), req.body, actorOf(req));
        return reply.code(201).send({ ...view(row), secret });
      },
    );

    app.get(
      "/v1/orgs/:orgId/keys",
      {
        config: { permission: "keys:read" },
        schema: {
          operationId: "listApiKeys",
          tags,
          summary: "The organization's API keys, oldest first (never their secrets)",
          description: "Live keys; include_revoked=true lists revoked ones too.",
          security: bearerSecurity,
          params: OrgIdParams,
          querystring: ListKeysQuery,
          response: { 200: KeyPage, ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => {
        const { orgId } = requireTenant(req);
        const { limit, fetch, cursor } = pageRequest(req.query, idCursor("apiKey"));
        const rows = await s.apiKeys.list(orgId, { includeRevoked: req.query.include_revoked ?? false, after: cursor, limit: fetch });
        return page(rows, limit, (r) => r.id, view);
      },
    );

    app.get(
      "/v1/orgs/:orgId/keys/:name",
      {
        config: { permission: "keys:read" },
        schema: {
          operationId: "getApiKey",
          tags,
          summary: "One API key, by key_… id or name (never its secret)",
          security: bearerSecurity,
          params: KeyParams,
          response: { 200: ApiKey, ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (req) => view(await s.apiKeys.get(requireTenant(req), req.params.name)),
    );

    app.patch(
      "/v1/orgs/:orgId/keys/:name",
      {
        config: { permission: "keys:create" },
        schema: {
          operationId: "updateApiKey",
          tags,
          summary: "Rename an API key",
          description: "Your own key, or anyone's with keys:manage. Audited as key.updated.",
          security: bearerSecurity,
          params: KeyParams,
          body: UpdateKeyBody,
          response: { 200: ApiKey, ...errors(...BODY_ERRORS, 401, 403, 404, 409) },
        },
      },
      async (req) => view(await s.apiKeys.rename(requireTenant(req), req.params.name, req.body.name, actorOf(req))),
    );

    app.get(
      "/v1/orgs/:orgId/keys/:name/roles",
      {
        config: { permission: "keys:read" },
        schema: {
          operationId: "getApiKeyRoles",
          tags,
          summary: "An API key's roles and own permissions",
          security: bearerSecurity,
          params: KeyParams,
          response: { 200: KeyRoles, ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (req) => {
        const row = await s.apiKeys.get(requireTenant(req), req.params.name);
        return { roles: row.roles, permissions: row.permissions, inherit: row.inherit };
      },
    );

    app.put(
      "/v1/orgs/:orgId/keys/:name/roles",
      {
        config: { mintsAuthority: true, permission: "keys:create" },
        schema: {
          operationId: "putApiKeyRoles",
          tags,
          summary: "Replace an API key's roles",
          description:
            "Your own key, or anyone's with keys:manage. The new roles with the key's own permissions must be ones you hold (403 naming the first you " +
            "lack). An inheriting key has no roles (409 API_KEY_INHERITS). Takes effect on the next request. Audited as key.roles_changed.",
          security: bearerSecurity,
          params: KeyParams,
          body: PutRolesBody,
          response: { 200: KeyRoles, ...errors(...BODY_ERRORS, 401, 403, 404, 409) },
        },
      },
      async (req) => {
        const row = await s.apiKeys.setRoles(requireTenant(req), req.params.name, req.body.roles, actorOf(req));
        return { roles: row.roles, permissions: row.permissions, inherit: row.inherit };
      },
    );

    // `$` is a legal path character: clients send it as is (the router matches literal segments undecoded: %24rotate is 404)
    app.post(
      "/v1/orgs/:orgId/keys/:name/$rotate",
      {
        config: { mintsAuthority: true, permission: "keys:create" },
        // the body is optional: a bare POST rotates with no grace period
        preValidation: (req, _reply, done) => {
          if (req.body === undefined) req.body = {};
          done();
        },
        schema: {
          operationId: "rotateApiKey",
          tags,
          summary: "Give an API key a new secret; the old one works for grace_seconds more",
          description:
            "Your own key, or anyone's with keys:manage. The new secret is in this answer only. With grace_seconds 0 (the default) the old secret " +
            "stops at once. Audited as key.rotated.",
          security: bearerSecurity,
          params: KeyParams,
          body: RotateBody,
          response: { 200: RotatedKey, ...errors(...BODY_ERRORS, 401, 403, 404, 409) },
        },
      },
      async (req) => {
        const r = await s.apiKeys.rotate(requireTenant(req), req.params.name, req.body?.grace_seconds ?? 0, actorOf(req));
        return { ...view(r.row), secret: r.secret, previous_secret_expires_at: r.previousExpiresAt.toISOString() };
      },
    );

    app.delete(
      "/v1/orgs/:orgId/keys/:name",
      {
        // keys:read: anyone may end their own key, even one whose role no longer creates keys; others' keys need keys:manage
        config: { permission: "keys:read" },
        schema: {
          operationId: "revokeApiKey",
          tags,
          summary: "Revoke an API key: it stops working at once",
          description:
            "Your own key (keys:read is enough), or anyone's with keys:manage. A soft delete: the record stays (include_revoked=true lists it), its " +
            "name is free again. Revoking a revoked key changes nothing. Audited as key.revoked.",
          security: bearerSecurity,
          params: KeyParams,
          response: { 200: ApiKey, ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (req) => view(await s.apiKeys.revoke(requireTenant(req), req.params.name, actorOf(req))),
    );
  };
}
