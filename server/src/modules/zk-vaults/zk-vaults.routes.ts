import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { etag, expectedVersion } from "../../lib/if-match.ts";
import { Type } from "typebox";
import { BODY_ERRORS, OrgIdParams, bearerSecurity, errors } from "../../http/schemas.ts";
import { idCursor, page, pageRequest, type CursorParser } from "../../lib/pagination.ts";
import { actorOf, requireTenant } from "../access/request.ts";
import type { EntryRow, UserKeyRow, VaultRow } from "./zk-vaults.repo.ts";
import {
  CreateEntryBody,
  CreateVaultBody,
  Entry,
  EntryPage,
  EntryParams,
  IfMatchHeaders,
  KeyUserParams,
  ListQuery,
  MyUserKey,
  PublicUserKey,
  PutUserKeyBody,
  SetPassphraseBody,
  UpdateEntryBody,
  Vault,
  VaultPage,
  VaultParams,
  VaultSummary,
} from "./zk-vaults.schemas.ts";
import type { ZkVaultsService } from "./zk-vaults.service.ts";

const NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
const nameCursor: CursorParser<string> = (key) => (NAME.test(key) ? key : undefined);

const ts = (d: Date) => d.toISOString();
const toSummary = (v: VaultRow, viewer: string) => ({
  id: v.id,
  name: v.name,
  owner_id: v.ownerId,
  role: v.ownerId === viewer ? ("owner" as const) : ("member" as const),
  key_version: v.keyVersion,
  created_at: ts(v.createdAt),
  updated_at: ts(v.updatedAt),
});
const toUserKey = (k: UserKeyRow) => ({
  user_id: k.userId,
  public_key: k.publicKey,
  encrypted_private_key: k.encryptedPrivateKey,
  kdf: k.kdf,
  updated_at: ts(k.updatedAt),
});
const toEntry = (e: EntryRow) => ({
  name: e.name,
  nonce: e.nonce,
  ciphertext: e.ciphertext,
  key_version: e.keyVersion,
  version: e.version,
  updated_by: e.updatedBy,
  updated_at: ts(e.updatedAt),
});

const ZK = "Zero-knowledge: the server stores what your client encrypted and cannot decrypt it (see docs/vault.md).";
const OWN = "Only the vault's owner; to anyone else it does not exist (404).";
const SHARED = "The vault's owner, or a member it is shared with; to anyone else it does not exist (404).";

/** Routes of the zero-knowledge vaults: members' public keys, vaults and their entries. */
export function zkVaultsRoutes(s: { zk: ZkVaultsService }): FastifyPluginAsyncTypebox {
  const tags = ["zk-vaults"];
  const zk = s.zk;
  return async (app) => {
    app.put(
      "/v1/orgs/:orgId/zk-keys/me",
      {
        config: { permission: "secrets:write" },
        schema: {
          operationId: "putMyZkKey",
          tags,
          summary: "Publish your X25519 public key, with your private key sealed under your passphrase",
          description: `Replaces any earlier key: shares sealed to the old key can then no longer be opened by you. ${ZK} Audited as zk.key.created / zk.key.replaced.`,
          security: bearerSecurity,
          params: OrgIdParams,
          body: PutUserKeyBody,
          response: { 200: MyUserKey, ...errors(...BODY_ERRORS, 401, 403, 404) },
        },
      },
      async (req) => {
        const tenant = requireTenant(req);
        return { user_id: tenant.userId, key: toUserKey(await zk.putMyKey(tenant, req.body, actorOf(req))) };
      },
    );

    app.get(
      "/v1/orgs/:orgId/zk-keys/me",
      {
        config: { permission: "secrets:read" },
        schema: {
          operationId: "getMyZkKey",
          tags,
          summary: "Your key pair as stored (the private key only sealed), or null",
          security: bearerSecurity,
          params: OrgIdParams,
          response: { 200: MyUserKey, ...errors(401, 403, 404) },
        },
      },
      async (req) => {
        const tenant = requireTenant(req);
        const key = await zk.getMyKey(tenant);
        return { user_id: tenant.userId, key: key && toUserKey(key) };
      },
    );

    app.get(
      "/v1/orgs/:orgId/zk-keys/:userId",
      {
        config: { permission: "secrets:read" },
        schema: {
          operationId: "getZkPublicKey",
          tags,
          summary: "A member's public key, to seal shares to them",
          description: "404 when they are not a member or have published no key.",
          security: bearerSecurity,
          params: KeyUserParams,
          response: { 200: PublicUserKey, ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => {
        const k = await zk.getPublicKey(requireTenant(req), req.params.userId);
        return { user_id: k.userId, public_key: k.publicKey, updated_at: ts(k.updatedAt) };
      },
    );

    app.post(
      "/v1/orgs/:orgId/zk-vaults",
      {
        config: { permission: "secrets:write" },
        schema: {
          operationId: "createZkVault",
          tags,
          summary: "Create a zero-knowledge vault of yours from what your client made",
          description:
            "Your client made a random vault key and sends it only wrapped: under your passphrase (Argon2id, the parameters in kdf), the recovery phrase and the hardware key. " +
            `You are its owner; it is personal. Set social-recovery shares next (PUT …/shares). ${ZK} Audited as zk.vault.created.`,
          security: bearerSecurity,
          params: OrgIdParams,
          body: CreateVaultBody,
          response: {
            201: Type.Object({ id: VaultSummary.properties.id, key_version: VaultSummary.properties.key_version }, { description: "The new vault's id" }),
            ...errors(...BODY_ERRORS, 401, 403, 404),
          },
        },
      },
      async (req, reply) => {
        const row = await zk.createVault(requireTenant(req), req.body, actorOf(req));
        // only what the client does not already have: the id the entries and shares are bound to
        return reply.code(201).send({ id: row.id, key_version: row.keyVersion });
      },
    );

    app.get(
      "/v1/orgs/:orgId/zk-vaults",
      {
        config: { permission: "secrets:read" },
        schema: {
          operationId: "listZkVaults",
          tags,
          summary: "Your vaults in this organization and those shared with you, oldest first",
          security: bearerSecurity,
          params: OrgIdParams,
          querystring: ListQuery,
          response: { 200: VaultPage, ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => {
        const { limit, fetch, cursor } = pageRequest(req.query, idCursor("zkVault"));
        const tenant = requireTenant(req);
        return page(
          await zk.listVaults(tenant, cursor, fetch),
          limit,
          (r) => r.id,
          (r) => toSummary(r, tenant.userId),
        );
      },
    );

    app.get(
      "/v1/orgs/:orgId/zk-vaults/:vaultId",
      {
        config: { permission: "secrets:read" },
        schema: {
          operationId: "getZkVault",
          tags,
          summary: "A vault with its wrapped keys and KDF parameters (to unlock or recover it in your client)",
          description: `Its owner sees the wraps, shares and members; a member it is shared with sees their sealed copy of the key. To anyone else it does not exist (404). ${ZK}`,
          security: bearerSecurity,
          params: VaultParams,
          response: { 200: Vault, ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => {
        const tenant = requireTenant(req);
        const { vault: v, member, shares, members } = await zk.getVault(tenant, req.params.vaultId);
        // a member gets their own sealed copy of the key, not the owner's wraps
        const own = member === null;
        return {
          ...toSummary(v, tenant.userId),
          kdf: own ? v.kdf : null,
          passphrase_wrapped_key: own ? v.passphraseWrappedKey : null,
          recovery_phrase_wrapped_key: own ? v.recoveryPhraseWrappedKey : null,
          hardware_wrapped_key: own ? v.hardwareWrappedKey : null,
          key_check: v.keyCheck,
          member_sealed_key: member?.sealedKey ?? null,
          share_threshold: v.shareThreshold,
          shares: shares.map((sh) => ({ id: sh.id, holder_id: sh.holderId, index: sh.shareIndex })),
          members: members.map((m) => ({ user_id: m.userId, key_version: m.keyVersion, added_at: ts(m.createdAt) })),
        };
      },
    );

    app.put(
      "/v1/orgs/:orgId/zk-vaults/:vaultId/passphrase",
      {
        config: { permission: "secrets:write" },
        schema: {
          operationId: "setZkVaultPassphrase",
          tags,
          summary: "A new passphrase wrap of the vault key: after a change, or to finish a recovery",
          description: `Completes the vault's open recovery request. ${OWN} Audited as zk.vault.passphrase_changed, or zk.vault.recovered with recovered_with.`,
          security: bearerSecurity,
          params: VaultParams,
          body: SetPassphraseBody,
          response: { 200: VaultSummary, ...errors(...BODY_ERRORS, 401, 403, 404) },
        },
      },
      async (req) => {
        const tenant = requireTenant(req);
        return toSummary(await zk.setPassphrase(tenant, req.params.vaultId, req.body, actorOf(req)), tenant.userId);
      },
    );

    app.delete(
      "/v1/orgs/:orgId/zk-vaults/:vaultId",
      {
        config: { permission: "secrets:write" },
        schema: {
          operationId: "deleteZkVault",
          tags,
          summary: "Delete a vault with its entries, shares and recovery requests",
          description: `${OWN} Audited as zk.vault.deleted.`,
          security: bearerSecurity,
          params: VaultParams,
          response: { 204: Type.Null({ description: "Deleted" }), ...errors(400, 401, 403, 404) },
        },
      },
      async (req, reply) => {
        await zk.deleteVault(requireTenant(req), req.params.vaultId, actorOf(req));
        return reply.code(204).send(null);
      },
    );

    app.post(
      "/v1/orgs/:orgId/zk-vaults/:vaultId/entries",
      {
        config: { permission: "secrets:write" },
        schema: {
          operationId: "createZkEntry",
          tags,
          summary: "Add an entry: its name and the ciphertext your client made",
          description:
            "XChaCha20-Poly1305 under the vault key with a 24-byte nonce, the vault id, name and key version bound in as associated data. key_version must be the vault's. " +
            `409 ZK_ENTRY_EXISTS when the name is taken (change it with PUT). ${SHARED} Audited as zk.entry.created (the name only).`,
          security: bearerSecurity,
          params: VaultParams,
          body: CreateEntryBody,
          response: { 201: Entry, ...errors(...BODY_ERRORS, 401, 403, 404, 409) },
        },
      },
      async (req, reply) => {
        const row = await zk.createEntry(requireTenant(req), req.params.vaultId, req.body, actorOf(req));
        return etag(reply, row.version).code(201).send(toEntry(row));
      },
    );

    app.get(
      "/v1/orgs/:orgId/zk-vaults/:vaultId/entries",
      {
        config: { permission: "secrets:read" },
        schema: {
          operationId: "listZkEntries",
          tags,
          summary: "The vault's entries by name, as ciphertext",
          description: SHARED,
          security: bearerSecurity,
          params: VaultParams,
          querystring: ListQuery,
          response: { 200: EntryPage, ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => {
        const { limit, fetch, cursor } = pageRequest(req.query, nameCursor);
        return page(await zk.listEntries(requireTenant(req), req.params.vaultId, cursor, fetch), limit, (r) => r.name, toEntry);
      },
    );

    app.get(
      "/v1/orgs/:orgId/zk-vaults/:vaultId/entries/:entryName",
      {
        config: { permission: "secrets:read" },
        schema: {
          operationId: "getZkEntry",
          tags,
          summary: "One entry, as ciphertext; the ETag is its version",
          description: SHARED,
          security: bearerSecurity,
          params: EntryParams,
          response: { 200: Entry, ...errors(400, 401, 403, 404) },
        },
      },
      async (req, reply) => {
        const row = await zk.getEntry(requireTenant(req), req.params.vaultId, req.params.entryName);
        return etag(reply, row.version).send(toEntry(row));
      },
    );

    app.put(
      "/v1/orgs/:orgId/zk-vaults/:vaultId/entries/:entryName",
      {
        config: { permission: "secrets:write" },
        schema: {
          operationId: "updateZkEntry",
          tags,
          summary: "Replace an entry's ciphertext",
          description:
            "Send If-Match: <version> (or the body's version) to change only what you read: when it moved on since, 409 ZK_ENTRY_VERSION_CONFLICT naming the current version, " +
            `and nothing changes. ${SHARED} Audited as zk.entry.updated (the name and versions only).`,
          security: bearerSecurity,
          params: EntryParams,
          headers: IfMatchHeaders,
          body: UpdateEntryBody,
          response: { 200: Entry, ...errors(...BODY_ERRORS, 401, 403, 404, 409) },
        },
      },
      async (req, reply) => {
        const { version, ...input } = req.body;
        const expected = expectedVersion(req.headers["if-match"], version);
        const row = await zk.updateEntry(requireTenant(req), req.params.vaultId, req.params.entryName, input, expected, actorOf(req));
        return etag(reply, row.version).send(toEntry(row));
      },
    );

    app.delete(
      "/v1/orgs/:orgId/zk-vaults/:vaultId/entries/:entryName",
      {
        config: { permission: "secrets:write" },
        schema: {
          operationId: "deleteZkEntry",
          tags,
          summary: "Delete an entry",
          description: `With If-Match, only if it is still at that version (409 otherwise). ${SHARED} Audited as zk.entry.deleted.`,
          security: bearerSecurity,
          params: EntryParams,
          headers: IfMatchHeaders,
          response: { 204: Type.Null({ description: "Deleted" }), ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (req, reply) => {
        const expected = expectedVersion(req.headers["if-match"], undefined);
        await zk.deleteEntry(requireTenant(req), req.params.vaultId, req.params.entryName, expected, actorOf(req));
        return reply.code(204).send(null);
      },
    );
  };
}
