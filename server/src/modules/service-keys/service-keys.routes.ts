import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from "fastify";
import type { Static } from "typebox";
import { requireUser } from "../access/request.ts";
import { requireTenant } from "../access/request.ts";
import { BODY_ERRORS, OrgIdParams, bearerSecurity, errors } from "../../http/schemas.ts";
import type { Clock } from "../../lib/clock.ts";
import { idCursor, page, pageRequest } from "../../lib/pagination.ts";
import { actorOf } from "../access/request.ts";
import { refusePrivateKeyMaterial } from "./service-keys.jwk.ts";
import {
  JwksQuery,
  ListServiceKeysQuery,
  OrgServiceKeyParams,
  PlatformServiceKeyParams,
  RegisterServiceKeyBody,
  ServiceJwks,
  ServiceKey,
  ServiceKeyPage,
  toServiceKey,
  UpdateServiceKeyBody,
} from "./service-keys.schemas.ts";
import type { KeyCaller, ServiceKeysService } from "./service-keys.service.ts";
import { MAX_SERVICE_TOKEN_SECONDS } from "./service-keys.claims.ts";

const USING =
  "The service then calls Plinth with `Authorization: Bearer <JWT>` signed with its private key: header kid (and alg) of this key; claims iss = sub = " +
  `the service's name, aud = Plinth's audience, iat, and exp at most ${MAX_SERVICE_TOKEN_SECONDS} s after iat. Register the next key before revoking ` +
  "the old one to rotate: several keys of a service may be active. The private key never leaves the service: a JWK with private members (d, p, q…) " +
  "or a symmetric (oct) key is refused naming the member.";
const ROLES_ORG = "Its roles must be ones you could grant: their permissions all yours (403 naming the first you lack).";

/** Turns private key material into a 400 naming the member before schema validation would call it an unknown field. */
function privateMaterialGuard(req: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction): void {
  try {
    refusePrivateKeyMaterial(req.body);
    done();
  } catch (e) {
    done(e as Error);
  }
}

const orgCaller = (req: FastifyRequest): KeyCaller => ({ kind: "org", membership: requireTenant(req) });
/** Whoever holds a registered key's private half acts with its roles for as long as it stands: no impersonation. */
const changingCaller = (req: FastifyRequest, _what: string): KeyCaller => {
  return orgCaller(req);
};
// a platform admin signed in as themselves (an impersonation is never of a platform admin); the service checks the flag
const platformCaller = (req: FastifyRequest): KeyCaller => ({ kind: "platform", userId: requireUser(req).userId });

/**
 * The service key registry: an org's keys under /v1/orgs/:orgId/service-keys (read: service-keys:read; change:
 * service-keys:manage), the platform-wide ones under /v1/service-keys (platform admins), and the public JWKS.
 */
export function serviceKeysRoutes(s: { serviceKeys: ServiceKeysService; clock: Clock }): FastifyPluginAsyncTypebox {
  const tags = ["service-keys"];
  const sk = s.serviceKeys;
  const view = (row: Parameters<typeof toServiceKey>[0]) => toServiceKey(row, s.clock.now());
  async function list(caller: KeyCaller, q: Static<typeof ListServiceKeysQuery>) {
    const { limit, fetch, cursor } = pageRequest(q, idCursor("serviceKey"));
    const rows = await sk.list(caller, { service: q.service, includeRevoked: q.include_revoked ?? false, after: cursor, limit: fetch });
    return page(rows, limit, (r) => r.id, view);
  }

  return async (app) => {
    app.post(
      "/v1/orgs/:orgId/service-keys",
      {
        config: { mintsAuthority: true, permission: "service-keys:manage" },
        preValidation: privateMaterialGuard,
        schema: {
          operationId: "registerServiceKey",
          tags,
          summary: "Register a service's public key in this organization",
          description: `Its tokens act in this organization only, with the key's roles. ${ROLES_ORG} ${USING} A kid already registered anywhere answers 409. Audited as service_key.registered.`,
          security: bearerSecurity,
          params: OrgIdParams,
          body: RegisterServiceKeyBody,
          response: { 201: ServiceKey, ...errors(...BODY_ERRORS, 401, 403, 404, 409) },
        },
      },
      async (req, reply) => reply.code(201).send(view(await sk.register(changingCaller(req, "register a service key"), req.body, actorOf(req)))),
    );

    app.get(
      "/v1/orgs/:orgId/service-keys",
      {
        config: { permission: "service-keys:read" },
        schema: {
          operationId: "listServiceKeys",
          tags,
          summary: "The organization's service keys, oldest first",
          description: "Active and expired keys; include_revoked=true lists revoked ones too; service= one service's.",
          security: bearerSecurity,
          params: OrgIdParams,
          querystring: ListServiceKeysQuery,
          response: { 200: ServiceKeyPage, ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => list(orgCaller(req), req.query),
    );

    app.get(
      "/v1/orgs/:orgId/service-keys/:serviceKeyId",
      {
        config: { permission: "service-keys:read" },
        schema: {
          operationId: "getServiceKey",
          tags,
          summary: "One service key",
          security: bearerSecurity,
          params: OrgServiceKeyParams,
          response: { 200: ServiceKey, ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => view(await sk.get(orgCaller(req), req.params.serviceKeyId)),
    );

    app.patch(
      "/v1/orgs/:orgId/service-keys/:serviceKeyId",
      {
        config: { mintsAuthority: true, permission: "service-keys:manage" },
        schema: {
          operationId: "updateServiceKey",
          tags,
          summary: "Change a service key's description or roles",
          description: `New roles hold from the service's next request, for tokens already signed too. ${ROLES_ORG} A revoked key cannot be changed (409). Audited as service_key.updated.`,
          security: bearerSecurity,
          params: OrgServiceKeyParams,
          body: UpdateServiceKeyBody,
          response: { 200: ServiceKey, ...errors(...BODY_ERRORS, 401, 403, 404, 409) },
        },
      },
      async (req) => view(await sk.update(changingCaller(req, "change a service key"), req.params.serviceKeyId, req.body, actorOf(req))),
    );

    app.delete(
      "/v1/orgs/:orgId/service-keys/:serviceKeyId",
      {
        config: { permission: "service-keys:manage" },
        schema: {
          operationId: "revokeServiceKey",
          tags,
          summary: "Revoke a service key: its tokens stop working at once",
          description:
            "Soft: the record stays (include_revoked=true lists it), its kid is never reused, and it leaves the JWKS. Revoking a revoked key changes nothing. Audited as service_key.revoked.",
          security: bearerSecurity,
          params: OrgServiceKeyParams,
          response: { 200: ServiceKey, ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => view(await sk.revoke(orgCaller(req), req.params.serviceKeyId, actorOf(req))),
    );

    const PLATFORM = "Platform admins only (403 PLATFORM_ADMIN_REQUIRED otherwise).";
    app.post(
      "/v1/service-keys",
      {
        preValidation: privateMaterialGuard,
        schema: {
          operationId: "registerPlatformServiceKey",
          tags,
          summary: "Register a service's public key platform-wide",
          description:
            `${PLATFORM} A platform-wide key takes built-in roles only, and its tokens act in the one organization their org claim names ` +
            `(none without it). ${USING} Audited as service_key.registered in the platform's audit chain.`,
          security: bearerSecurity,
          body: RegisterServiceKeyBody,
          response: { 201: ServiceKey, ...errors(...BODY_ERRORS, 401, 403, 409) },
        },
      },
      async (req, reply) => reply.code(201).send(view(await sk.register(platformCaller(req), req.body, actorOf(req)))),
    );

    app.get(
      "/v1/service-keys",
      {
        schema: {
          operationId: "listPlatformServiceKeys",
          tags,
          summary: "The platform-wide service keys, oldest first",
          description: `${PLATFORM} include_revoked=true lists revoked ones too; service= one service's.`,
          security: bearerSecurity,
          querystring: ListServiceKeysQuery,
          response: { 200: ServiceKeyPage, ...errors(400, 401, 403) },
        },
      },
      async (req) => list(platformCaller(req), req.query),
    );

    app.get(
      "/v1/service-keys/:serviceKeyId",
      {
        schema: {
          operationId: "getPlatformServiceKey",
          tags,
          summary: "One platform-wide service key",
          description: PLATFORM,
          security: bearerSecurity,
          params: PlatformServiceKeyParams,
          response: { 200: ServiceKey, ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => view(await sk.get(platformCaller(req), req.params.serviceKeyId)),
    );

    app.patch(
      "/v1/service-keys/:serviceKeyId",
      {
        schema: {
          operationId: "updatePlatformServiceKey",
          tags,
          summary: "Change a platform-wide service key's description or roles (built-in roles only)",
          description: `${PLATFORM} New roles hold from the service's next request. Audited as service_key.updated in the platform's audit chain.`,
          security: bearerSecurity,
          params: PlatformServiceKeyParams,
          body: UpdateServiceKeyBody,
          response: { 200: ServiceKey, ...errors(...BODY_ERRORS, 401, 403, 404, 409) },
        },
      },
      async (req) => view(await sk.update(platformCaller(req), req.params.serviceKeyId, req.body, actorOf(req))),
    );

    app.delete(
      "/v1/service-keys/:serviceKeyId",
      {
        schema: {
          operationId: "revokePlatformServiceKey",
          tags,
          summary: "Revoke a platform-wide service key: its tokens stop working at once",
          description: `${PLATFORM} Soft, like an organization's key. Audited as service_key.revoked in the platform's audit chain.`,
          security: bearerSecurity,
          params: PlatformServiceKeyParams,
          response: { 200: ServiceKey, ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => view(await sk.revoke(platformCaller(req), req.params.serviceKeyId, actorOf(req))),
    );

    app.get(
      "/v1/service-keys/jwks.json",
      {
        config: { auth: "none" },
        schema: {
          operationId: "getServiceKeysJwks",
          tags,
          summary: "Public keys of registered services, for services to verify each other's tokens",
          description:
            "Active keys (not revoked, not expired) as a JWKS: the platform-wide registry's, or with org= one organization's (never both, never naming an " +
            "organization: each is its own trust domain, so a key of one tenant's service cannot pass as another's). With service= only that service's " +
            "keys: verify a token from service S against ?service=S (with its org= if S is an organization's) so that iss is bound to its keys. " +
            "No credentials needed; cacheable for a minute.",
          querystring: JwksQuery,
          response: { 200: ServiceJwks, ...errors(400) },
        },
      },
      async (req, reply) => {
        reply.header("cache-control", "public, max-age=60");
        return sk.jwks(req.query.org, req.query.service);
      },
    );
  };
}
