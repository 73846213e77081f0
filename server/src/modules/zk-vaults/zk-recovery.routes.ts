import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import { BODY_ERRORS, OrgIdParams, bearerSecurity, errors } from "../../http/schemas.ts";
import { idCursor, page, pageRequest } from "../../lib/pagination.ts";
import { actorOf, requireTenant } from "../access/request.ts";
import type { ZkRecoveryService } from "./zk-recovery.service.ts";
import type { RecoveryRequestRow, ReleaseRow } from "./zk-vaults.repo.ts";
import {
  HeldSharePage,
  ListQuery,
  OpenRecoveryBody,
  RecoveryRequest,
  RecoveryRequestParams,
  ReleaseShareBody,
  SetSharesBody,
  ShareParams,
  ShareRelease,
  VaultParams,
} from "./zk-vaults.schemas.ts";

const ts = (d: Date) => d.toISOString();
const toRequest = (r: { request: RecoveryRequestRow; threshold: number | null; releases: ReleaseRow[] }) => ({
  id: r.request.id,
  vault_id: r.request.vaultId,
  requester_id: r.request.requesterId,
  public_key: r.request.publicKey,
  status: r.request.status as "open" | "completed" | "cancelled",
  threshold: r.threshold,
  releases: r.releases.map((x) => ({
    share_id: x.shareId,
    index: x.shareIndex,
    sealed_share: x.sealedShare,
    released_by: x.releasedBy,
    released_at: ts(x.createdAt),
  })),
  created_at: ts(r.request.createdAt),
});

const RELAY = "The server relays sealed shares only: it never sees a share in the clear (see docs/vault.md).";

/**
 * Routes of social recovery: the owner sets the shares, opens a recovery request, and reads the released shares;
 * holders list the shares they hold and release them, re-sealed by their client to the request's key.
 */
export function zkRecoveryRoutes(s: { recovery: ZkRecoveryService }): FastifyPluginAsyncTypebox {
  const tags = ["zk-vaults"];
  const rec = s.recovery;
  return async (app) => {
    app.put(
      "/v1/orgs/:orgId/zk-vaults/:vaultId/shares",
      {
        config: { permission: "secrets:write" },
        schema: {
          operationId: "setZkVaultShares",
          tags,
          summary: "Set the vault's social-recovery shares: one per member, each sealed to their public key",
          description:
            "Replaces every earlier share (a new split makes old shares useless) and cancels open recovery requests. Holders are other members of the organization. " +
            `Only the vault's owner. ${RELAY} Audited as zk.shares.set (threshold and holders).`,
          security: bearerSecurity,
          params: VaultParams,
          body: SetSharesBody,
          response: {
            200: Type.Object(
              {
                threshold: Type.Integer({ description: "Shares needed" }),
                shares: Type.Array(Type.Object({ id: Type.String(), holder_id: Type.String(), index: Type.Integer() })),
              },
              { description: "The shares stored" },
            ),
            ...errors(...BODY_ERRORS, 401, 403, 404),
          },
        },
      },
      async (req) => {
        const rows = await rec.setShares(requireTenant(req), req.params.vaultId, req.body, actorOf(req));
        return { threshold: req.body.threshold, shares: rows.map((r) => ({ id: r.id, holder_id: r.holderId, index: r.shareIndex })) };
      },
    );

    app.get(
      "/v1/orgs/:orgId/zk-shares",
      {
        config: { permission: "secrets:read" },
        schema: {
          operationId: "listHeldZkShares",
          tags,
          summary: "The shares you hold for other members' vaults, with their owners' open recovery requests",
          description: "Before releasing a share, confirm with its owner by another channel that they asked: a release helps whoever holds the request's key.",
          security: bearerSecurity,
          params: OrgIdParams,
          querystring: ListQuery,
          response: { 200: HeldSharePage, ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => {
        const { limit, fetch, cursor } = pageRequest(req.query, idCursor("zkShare"));
        const held = await rec.listHeld(requireTenant(req), cursor, fetch);
        return page(
          held,
          limit,
          (h) => h.share.id,
          (h) => ({
            id: h.share.id,
            vault_id: h.share.vaultId,
            owner_id: h.ownerId,
            key_version: h.share.keyVersion,
            index: h.share.shareIndex,
            sealed_share: h.share.sealedShare,
            open_requests: h.openRequests.map((o) => ({
              id: o.request.id,
              public_key: o.request.publicKey,
              created_at: ts(o.request.createdAt),
              released: o.released,
            })),
          }),
        );
      },
    );

    app.post(
      "/v1/orgs/:orgId/zk-vaults/:vaultId/recovery-requests",
      {
        config: { permission: "secrets:write" },
        schema: {
          operationId: "openZkRecoveryRequest",
          tags,
          summary: "Ask the vault's share holders for their shares, sealed to a fresh public key",
          description: `Cancels any earlier open request. Only the vault's owner. ${RELAY} Audited as zk.recovery.requested.`,
          security: bearerSecurity,
          params: VaultParams,
          body: OpenRecoveryBody,
          response: { 201: RecoveryRequest, ...errors(...BODY_ERRORS, 401, 403, 404, 409) },
        },
      },
      async (req, reply) => reply.code(201).send(toRequest(await rec.openRequest(requireTenant(req), req.params.vaultId, req.body.public_key, actorOf(req)))),
    );

    app.get(
      "/v1/orgs/:orgId/zk-vaults/:vaultId/recovery-requests/:recoveryRequestId",
      {
        config: { permission: "secrets:read" },
        schema: {
          operationId: "getZkRecoveryRequest",
          tags,
          summary: "A recovery request with the shares released so far (sealed to its key)",
          description: "Only the vault's owner.",
          security: bearerSecurity,
          params: RecoveryRequestParams,
          response: { 200: RecoveryRequest, ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => toRequest(await rec.getRequest(requireTenant(req), req.params.vaultId, req.params.recoveryRequestId)),
    );

    app.post(
      "/v1/orgs/:orgId/zk-vaults/:vaultId/shares/:shareId/$release",
      {
        config: { permission: "secrets:write" },
        schema: {
          operationId: "releaseZkShare",
          tags,
          summary: "Release a share you hold to the owner's open recovery request",
          description:
            "Your client opened the share with your private key and sealed it again to the request's public key; the server stores it for the owner. " +
            `Only the share's holder; once per request (409); a completed or cancelled request answers 410. ${RELAY} Audited as zk.share.released.`,
          security: bearerSecurity,
          params: ShareParams,
          body: ReleaseShareBody,
          response: { 201: ShareRelease, ...errors(...BODY_ERRORS, 401, 403, 404, 409, 410) },
        },
      },
      async (req, reply) => {
        const row = await rec.release(requireTenant(req), req.params.vaultId, req.params.shareId, req.body, actorOf(req));
        return reply.code(201).send({ request_id: row.requestId, share_id: row.shareId, released_at: ts(row.createdAt) });
      },
    );
  };
}
