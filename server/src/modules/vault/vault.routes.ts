import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { etag, expectedVersion } from "../../lib/if-match.ts";
import type { FastifyReply } from "fastify";
import { Type } from "typebox";
import { BODY_ERRORS, OrgIdParams, bearerSecurity, errors } from "../../http/schemas.ts";
import { page, pageRequest, type CursorParser } from "../../lib/pagination.ts";
import { actorOf, requireTenant } from "../access/request.ts";
import { MAX_RESOLVED, type ResolveService } from "./resolve.service.ts";
import type { VaultService } from "./vault.service.ts";
import {
  CreateSecretBody,
  IfMatchHeaders,
  ListSecretsQuery,
  ListVersionsQuery,
  ResolvedSecrets,
  ResolveQuery,
  RollbackBody,
  Secret,
  SECRET_ID_PATTERN,
  SecretPage,
  SecretParams,
  SecretValue,
  SecretVersionPage,
  SecretVersionParams,
  toSecret,
  toVersion,
  UpdateSecretBody,
} from "./vault.schemas.ts";

const SECRET_ID = new RegExp(SECRET_ID_PATTERN);
const secretCursor: CursorParser<string> = (key) => (SECRET_ID.test(key) ? key : undefined);
const versionCursor: CursorParser<number> = (key) => (/^[1-9][0-9]{0,8}$/.test(key) ? Number(key) : undefined);

/** A value is never kept by a cache on the way (a proxy, the browser). */
const noStore = (reply: FastifyReply) => reply.header("cache-control", "no-store");

const AUDIT_ONLY = "The value never appears in lists, metadata, logs or the audit log.";
const SHARED_READ =
  "Needs secrets:read, or read on this secret (a grant to you, a team you are in, or the organization: see POST /v1/orgs/{orgId}/grants); 403 naming secrets:read otherwise.";
const SHARED_WRITE = (relation: "write" | "delete") =>
  `Needs secrets:write, or ${relation} on this secret through a grant (admin and owner include it); 403 naming secrets:write otherwise.`;

/**
 * Routes of the secrets vault: /v1/orgs/:orgId/secrets. Reading metadata and values needs secrets:read, every
 * change secrets:write, or the relation on the one secret through a grant: the service decides (`resourceCheck`).
 * A member's personal secrets (user_id) exist only for that member (404 to everyone else).
 */
export function vaultRoutes(s: { vault: VaultService; resolve: ResolveService }): FastifyPluginAsyncTypebox {
  const tags = ["secrets"];
  const v = s.vault;
  return async (app) => {
    app.post(
      "/v1/orgs/:orgId/secrets",
      {
        config: { permission: "secrets:write" },
        schema: {
          operationId: "createSecret",
          tags,
          summary: "Create a secret (its version 1)",
          description:
            "The value is encrypted at once under a fresh data key wrapped by the organization's key; only ciphertext is stored. " +
            "team_id puts it in a team of the organization, user_id (your own id) makes it personal: only you see it. " +
            `The name is unique in its scope (409). notify_before_days and rotation_reminder_days set its expiry notice and rotation reminder (docs/vault.md, Lifecycle). ${AUDIT_ONLY} Audited as secret.created.`,
          security: bearerSecurity,
          params: OrgIdParams,
          body: CreateSecretBody,
          response: { 201: Secret, ...errors(...BODY_ERRORS, 401, 403, 404, 409) },
        },
      },
      async (req, reply) => {
        const row = await v.create(requireTenant(req), req.body, actorOf(req));
        return etag(reply, row.currentVersion).code(201).send(toSecret(row));
      },
    );

    app.get(
      "/v1/orgs/:orgId/secrets",
      {
        config: { permission: "secrets:read", resourceCheck: true },
        schema: {
          operationId: "listSecrets",
          tags,
          summary: "The organization's secrets you can see, oldest first: metadata only, never values",
          description:
            "Filter by scope, team_id and kind. Other members' personal secrets are not listed. Without secrets:read, only the secrets shared with you " +
            "(a grant of read or more to you, a team you are in, or the organization) are listed; 403 naming secrets:read when none is.",
          security: bearerSecurity,
          params: OrgIdParams,
          querystring: ListSecretsQuery,
          response: { 200: SecretPage, ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => {
        const { limit, fetch, cursor } = pageRequest(req.query, secretCursor);
        const scope = req.query.scope ?? (req.query.team_id !== undefined ? "team" : undefined);
        const rows = await v.list(requireTenant(req), { scope, teamId: req.query.team_id, kind: req.query.kind, after: cursor, limit: fetch });
        return page(rows, limit, (r) => r.id, toSecret);
      },
    );

    app.get(
      "/v1/orgs/:orgId/secrets/resolve",
      {
        config: { permission: "secrets:read", resourceCheck: true },
        schema: {
          operationId: "resolveSecrets",
          tags,
          summary: "The values a consumer gets for (org, team, you): user over team over org, each with its source",
          description:
            "What `plinth run` and `plinth secrets export` use: the organization's secrets, plus the team's (team_id), plus your own personal ones " +
            `(user_id, which must be yours), the more specific winning a name clash. Expired secrets are left out; at most ${MAX_RESOLVED} secrets (422 ` +
            "RESOLVE_TOO_LARGE beyond). Audited once as secrets.resolved with the ids served, never the values; Cache-Control: no-store. " +
            "Without secrets:read, only the secrets shared with you resolve; 403 naming secrets:read when none is.",
          security: bearerSecurity,
          params: OrgIdParams,
          querystring: ResolveQuery,
          response: { 200: ResolvedSecrets, ...errors(400, 401, 403, 404, 422) },
        },
      },
      async (req, reply) =>
        noStore(reply).send({ data: await s.resolve.resolve(requireTenant(req), { teamId: req.query.team_id, userId: req.query.user_id }, actorOf(req)) }),
    );

    app.get(
      "/v1/orgs/:orgId/secrets/:secretId",
      {
        config: { permission: "secrets:read", resourceCheck: true },
        schema: {
          operationId: "getSecret",
          tags,
          summary: "One secret's metadata (never its value); the ETag is its current version",
          description: SHARED_READ,
          security: bearerSecurity,
          params: SecretParams,
          response: { 200: Secret, ...errors(400, 401, 403, 404) },
        },
      },
      async (req, reply) => {
        const row = await v.get(requireTenant(req), req.params.secretId);
        return etag(reply, row.currentVersion).send(toSecret(row));
      },
    );

    app.patch(
      "/v1/orgs/:orgId/secrets/:secretId",
      {
        config: { permission: "secrets:write", resourceCheck: true },
        schema: {
          operationId: "updateSecret",
          tags,
          summary: "Change a secret: a new value becomes a new version; description, tags and expiry change in place",
          description:
            "The previous value stays as its version (list them under /versions). Send If-Match: <version> (or the body's version) to change only what " +
            `you read: when the secret moved on since, 409 SECRET_VERSION_CONFLICT (its detail names the current version), and nothing changes. ${AUDIT_ONLY} ${SHARED_WRITE("write")} Audited as secret.updated.`,
          security: bearerSecurity,
          params: SecretParams,
          headers: IfMatchHeaders,
          body: UpdateSecretBody,
          response: { 200: Secret, ...errors(...BODY_ERRORS, 401, 403, 404, 409) },
        },
      },
      async (req, reply) => {
        const { version, ...input } = req.body;
        const row = await v.update(requireTenant(req), req.params.secretId, input, expectedVersion(req.headers["if-match"], version), actorOf(req));
        return etag(reply, row.currentVersion).send(toSecret(row));
      },
    );

    app.delete(
      "/v1/orgs/:orgId/secrets/:secretId",
      {
        config: { permission: "secrets:write", resourceCheck: true },
        schema: {
          operationId: "deleteSecret",
          tags,
          summary: "Delete a secret and all its versions",
          description: `With If-Match, only if it is still at that version (409 otherwise). Every grant on it goes with it. ${SHARED_WRITE("delete")} Audited as secret.deleted.`,
          security: bearerSecurity,
          params: SecretParams,
          headers: IfMatchHeaders,
          response: { 204: Type.Null({ description: "Deleted" }), ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (req, reply) => {
        await v.delete(requireTenant(req), req.params.secretId, expectedVersion(req.headers["if-match"], undefined), actorOf(req));
        return reply.code(204).send(null);
      },
    );

    app.post(
      "/v1/orgs/:orgId/secrets/:secretId/reveal",
      {
        config: { permission: "secrets:read", resourceCheck: true },
        schema: {
          operationId: "revealSecret",
          tags,
          summary: "The secret's current value",
          description: `The only way a value leaves the vault: audited as secret.revealed (with the version, never the value), answered with Cache-Control: no-store. An expired secret answers 410. ${SHARED_READ}`,
          security: bearerSecurity,
          params: SecretParams,
          response: { 200: SecretValue, ...errors(400, 401, 403, 404, 410) },
        },
      },
      async (req, reply) => noStore(reply).send(await v.reveal(requireTenant(req), req.params.secretId, undefined, actorOf(req))),
    );

    app.get(
      "/v1/orgs/:orgId/secrets/:secretId/versions",
      {
        config: { permission: "secrets:read", resourceCheck: true },
        schema: {
          operationId: "listSecretVersions",
          tags,
          summary: "A secret's versions, newest first: who wrote each and when, never the values",
          description: `Newest first; versions the organization's retention deleted (keep_versions / keep_days on /vault) are gone from the list. ${SHARED_READ}`,
          security: bearerSecurity,
          params: SecretParams,
          querystring: ListVersionsQuery,
          response: { 200: SecretVersionPage, ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => {
        const { limit, fetch, cursor } = pageRequest(req.query, versionCursor);
        const { secret, versions } = await v.listVersions(requireTenant(req), req.params.secretId, { before: cursor, limit: fetch });
        return page(versions, limit, (r) => String(r.version), toVersion(secret.currentVersion));
      },
    );

    app.post(
      "/v1/orgs/:orgId/secrets/:secretId/versions/:version/reveal",
      {
        config: { permission: "secrets:read", resourceCheck: true },
        schema: {
          operationId: "revealSecretVersion",
          tags,
          summary: "The value a secret had at one version",
          description: `Audited as secret.revealed with that version; Cache-Control: no-store. An expired secret answers 410; a version the organization's retention deleted answers 404 saying so. ${SHARED_READ}`,
          security: bearerSecurity,
          params: SecretVersionParams,
          response: { 200: SecretValue, ...errors(400, 401, 403, 404, 410) },
        },
      },
      async (req, reply) => noStore(reply).send(await v.reveal(requireTenant(req), req.params.secretId, Number(req.params.version), actorOf(req))),
    );

    app.post(
      "/v1/orgs/:orgId/secrets/:secretId/$rollback",
      {
        config: { permission: "secrets:write", resourceCheck: true },
        schema: {
          operationId: "rollbackSecret",
          tags,
          summary: "Make an earlier version's value current again, as a new version",
          description: `History is kept: rolling back to version 2 of a secret at version 5 writes version 6 with version 2's value (404 if the retention deleted version 2). If-Match as for updates. ${SHARED_WRITE("write")} Audited as secret.rolled_back.`,
          security: bearerSecurity,
          params: SecretParams,
          headers: IfMatchHeaders,
          body: RollbackBody,
          response: { 200: Secret, ...errors(...BODY_ERRORS, 401, 403, 404, 409) },
        },
      },
      async (req, reply) => {
        const row = await v.rollback(
          requireTenant(req),
          req.params.secretId,
          req.body.version,
          expectedVersion(req.headers["if-match"], undefined),
          actorOf(req),
        );
        return etag(reply, row.currentVersion).send(toSecret(row));
      },
    );
  };
}
