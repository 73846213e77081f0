import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { FastifyRequest } from "fastify";
import { Type } from "typebox";
import { BODY_ERRORS, OrgIdParams, bearerSecurity, errors } from "../../http/schemas.ts";
import { idCursor, page, pageRequest } from "../../lib/pagination.ts";
import { actorOf, requireTenant } from "../access/request.ts";
import type { LeaseHolder } from "./leases.repo.ts";
import { IssuedLease, IssueLeaseBody, Lease, LeasePage, LeaseParams, LeaseValues, ListLeasesQuery, RenewLeaseBody, toLease } from "./leases.schemas.ts";
import type { LeaseCaller, LeasesService } from "./leases.service.ts";

/** The caller as the leases see it: the principal a lease it issues is held by, and every principal it counts as. */
function leaseCallerOf(req: FastifyRequest): LeaseCaller {
  const membership = requireTenant(req);
  const actor = actorOf(req);
  const p = req.principal;
  // the tenant hook let an org route through, so there is a principal: actorOf named it
  const self = { type: actor.type, id: actor.id ?? "" } as LeaseHolder;
  const identities: LeaseHolder[] = [self];
  // a service account's (or a member's) API key uses the leases held by its owner
  if (p?.kind === "api_key") identities.push({ type: p.ownerType, id: p.ownerId });
  return { membership, actor, self, identities };
}

const RULE =
  "Needs the vault's read access (secrets:read, or read shared on each secret). A lease adds no authority: its holder must itself be able to read every secret, " +
  "checked again at each use.";

/**
 * Routes of secret leases: /v1/orgs/:orgId/secret-leases. Each handler asks the vault's own read rule (resourceCheck:
 * the service calls it), so a holder with read shared on single secrets can use leases without secrets:read org-wide.
 */
export function leasesRoutes(s: { leases: LeasesService }): FastifyPluginAsyncTypebox {
  const tags = ["secret-leases"];
  const l = s.leases;
  return async (app) => {
    app.post(
      "/v1/orgs/:orgId/secret-leases",
      {
        config: { permission: "secrets:read", resourceCheck: true, mintsAuthority: true },
        schema: {
          operationId: "issueSecretLease",
          tags,
          summary: "Lease secrets to a principal (a runner's service account, an API key, you) for minutes",
          description:
            "The lease lasts ttl_seconds and can be renewed up to max_ttl_seconds from now; its holder (default: the credential you call with) reads the values " +
            "with POST …/secret-leases/{leaseId}/reveal. You and the holder must both be able to read every secret (403 naming it; 404 naming the field for one " +
            `that does not exist for you; 422 for a name that matches none). ${RULE} The answer holds no values. Audited as secret_lease.issued.`,
          security: bearerSecurity,
          params: OrgIdParams,
          body: IssueLeaseBody,
          response: { 201: IssuedLease, ...errors(...BODY_ERRORS, 401, 403, 404, 410, 422) },
        },
      },
      async (req, reply) => {
        const { lease, secrets } = await l.issue(leaseCallerOf(req), req.body);
        return reply.code(201).send({ ...toLease(l.now())(lease), secrets });
      },
    );

    app.get(
      "/v1/orgs/:orgId/secret-leases",
      {
        config: { permission: "secrets:read", resourceCheck: true },
        schema: {
          operationId: "listSecretLeases",
          tags,
          summary: "Leases, oldest first: the ones you hold, or all of the organization's with secrets:write",
          description: RULE,
          security: bearerSecurity,
          params: OrgIdParams,
          querystring: ListLeasesQuery,
          response: { 200: LeasePage, ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => {
        const { limit, fetch, cursor } = pageRequest(req.query, idCursor("secretLease"));
        const rows = await l.list(leaseCallerOf(req), { after: cursor, limit: fetch });
        return page(rows, limit, (r) => r.id, toLease(l.now()));
      },
    );

    app.get(
      "/v1/orgs/:orgId/secret-leases/:leaseId",
      {
        config: { permission: "secrets:read", resourceCheck: true },
        schema: {
          operationId: "getSecretLease",
          tags,
          summary: "One lease: its holder, secrets, expiry and use, never values",
          description: "Seen by its holder and by those with secrets:write; 404 for everyone else.",
          security: bearerSecurity,
          params: LeaseParams,
          response: { 200: Lease, ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => toLease(l.now())(await l.get(leaseCallerOf(req), req.params.leaseId)),
    );

    app.post(
      "/v1/orgs/:orgId/secret-leases/:leaseId/reveal",
      {
        config: { permission: "secrets:read", resourceCheck: true },
        schema: {
          operationId: "revealSecretLease",
          tags,
          summary: "The leased secrets' current values, for the lease's holder",
          description:
            "Refused with 410 SECRET_LEASE_EXPIRED / SECRET_LEASE_REVOKED once the lease ended, 410 SECRET_LEASE_SECRET_GONE once a leased secret was deleted, " +
            "403 when the holder can no longer read one. Every call reads the lease row in its transaction (nothing is cached), so a revocation stops the next " +
            "call on every instance. Audited as secret_lease.used (ids and versions, never values); Cache-Control: no-store.",
          security: bearerSecurity,
          params: LeaseParams,
          response: { 200: LeaseValues, ...errors(400, 401, 403, 404, 410) },
        },
      },
      async (req, reply) => {
        const data = await l.reveal(leaseCallerOf(req), req.params.leaseId);
        return reply.header("cache-control", "no-store").send({ data });
      },
    );

    app.post(
      "/v1/orgs/:orgId/secret-leases/:leaseId/$renew",
      {
        config: { permission: "secrets:read", resourceCheck: true, mintsAuthority: true },
        schema: {
          operationId: "renewSecretLease",
          tags,
          summary: "Extend a live lease to ttl_seconds from now, never past its max_expires_at",
          description: "Holder only. An expired or revoked lease answers 410. Audited as secret_lease.renewed when the expiry moves.",
          security: bearerSecurity,
          params: LeaseParams,
          body: RenewLeaseBody,
          response: { 200: Lease, ...errors(...BODY_ERRORS, 401, 403, 404, 410) },
        },
      },
      async (req) => toLease(l.now())(await l.renew(leaseCallerOf(req), req.params.leaseId, req.body?.ttl_seconds)),
    );

    app.delete(
      "/v1/orgs/:orgId/secret-leases/:leaseId",
      {
        config: { permission: "secrets:read", resourceCheck: true },
        schema: {
          operationId: "revokeSecretLease",
          tags,
          summary: "Revoke a lease at once (its holder, or anyone with secrets:write)",
          description: "Effective for the next use on every instance. Revoking a revoked lease changes nothing. Audited as secret_lease.revoked.",
          security: bearerSecurity,
          params: LeaseParams,
          response: { 204: Type.Null({ description: "Revoked" }), ...errors(400, 401, 403, 404) },
        },
      },
      async (req, reply) => {
        await l.revoke(leaseCallerOf(req), req.params.leaseId);
        return reply.code(204).send(null);
      },
    );
  };
}
