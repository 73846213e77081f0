import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import { BODY_ERRORS, bearerSecurity, errors } from "../../http/schemas.ts";
import { actorOf, requireTenant } from "../access/request.ts";
import type { ZkMembersService } from "./zk-members.service.ts";
import type { MemberRow } from "./zk-vaults.repo.ts";
import { MemberParams, PutMemberBody, RotateBody, VaultMember, VaultParams } from "./zk-vaults.schemas.ts";

const toMember = (m: MemberRow) => ({ user_id: m.userId, key_version: m.keyVersion, added_at: m.createdAt.toISOString() });

/** Routes of shared zero-knowledge vaults: the owner adds members, and removes them by rotating the key. */
export function zkMembersRoutes(s: { members: ZkMembersService }): FastifyPluginAsyncTypebox {
  const tags = ["zk-vaults"];
  const svc = s.members;
  return async (app) => {
    app.put(
      "/v1/orgs/:orgId/zk-vaults/:vaultId/members/:userId",
      {
        config: { permission: "secrets:write" },
        schema: {
          operationId: "putZkVaultMember",
          tags,
          summary: "Share the vault with a member: the vault key sealed by your client to their public key",
          description:
            "They can then read and write its entries (not its keys, shares or members). A member of the organization other than you; key_version must be the vault's. " +
            "To remove one, rotate (POST …/$rotate without them). Only the vault's owner. Audited as zk.member.added.",
          security: bearerSecurity,
          params: MemberParams,
          body: PutMemberBody,
          response: { 200: VaultMember, ...errors(...BODY_ERRORS, 401, 403, 404) },
        },
      },
      async (req) => toMember(await svc.putMember(requireTenant(req), req.params.vaultId, req.params.userId, req.body, actorOf(req))),
    );

    app.get(
      "/v1/orgs/:orgId/zk-vaults/:vaultId/members",
      {
        config: { permission: "secrets:read" },
        schema: {
          operationId: "listZkVaultMembers",
          tags,
          summary: "Who the vault is shared with",
          description: "Only the vault's owner.",
          security: bearerSecurity,
          params: VaultParams,
          response: { 200: Type.Object({ items: Type.Array(VaultMember, { description: "By user id" }) }), ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => ({ items: (await svc.listMembers(requireTenant(req), req.params.vaultId)).map(toMember) }),
    );

    app.post(
      "/v1/orgs/:orgId/zk-vaults/:vaultId/$rotate",
      {
        config: { permission: "secrets:write" },
        schema: {
          operationId: "rotateZkVault",
          tags,
          summary: "Rotate the vault key: every wrap, entry, member copy and share made anew by your client, in one request",
          description:
            "How a member is removed: leave them out of members. Every entry must be given, re-encrypted under the new key and version (one added or deleted since " +
            "you read them answers 409 ZK_ROTATION_STALE, as does a key_version other than the next), and nothing changes unless all of it applies. The old shares " +
            "and open recovery requests go; the recovery phrase and hardware key are new (the old ones open only the old key). Only the vault's owner. Audited as zk.vault.rotated.",
          security: bearerSecurity,
          params: VaultParams,
          body: RotateBody,
          response: {
            200: Type.Object(
              {
                key_version: Type.Integer({ description: "The new key version" }),
                removed_members: Type.Array(Type.String(), { description: "Members who lost access" }),
              },
              { description: "Rotated" },
            ),
            ...errors(...BODY_ERRORS, 401, 403, 404, 409),
          },
        },
      },
      async (req) => {
        const r = await svc.rotate(requireTenant(req), req.params.vaultId, req.body, actorOf(req));
        return { key_version: r.keyVersion, removed_members: r.removed };
      },
    );
  };
}
