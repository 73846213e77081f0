import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import { BODY_ERRORS, NullableTimestamp, OrgIdParams, bearerSecurity, errors } from "../../http/schemas.ts";
import { actorOf, requireTenant } from "../access/request.ts";
import type { VaultKeysService } from "./vault-keys.service.ts";

const VaultKeyStatus = Type.Object(
  {
    kek_version: Type.Integer({ description: "The organization key (KEK) version new data keys are wrapped under; 0 before the first secret" }),
    rotating: Type.Boolean({ description: "Whether a re-wrap is under way: data keys on an older version, or an older version not yet retired" }),
    pending_versions: Type.Integer({ description: "Secret versions whose data key is still wrapped under an older KEK version" }),
    last_rotated_at: NullableTimestamp("When the current KEK version was made by a rotation (null: never rotated)"),
    rotation_days: Type.Union([Type.Integer(), Type.Null()], { description: "Scheduled rotation period in days (null: only on request)" }),
    keep_versions: Type.Union([Type.Integer(), Type.Null()], {
      description: "How many newest versions each secret keeps, the current one included (null: all)",
    }),
    keep_days: Type.Union([Type.Integer(), Type.Null()], { description: "Old versions are deleted once older than this many days (null: never)" }),
  },
  { description: "The organization's vault keys: their version and rotation" },
);
const RotateResult = Type.Object(
  {
    kek_version: Type.Integer({ description: "The new KEK version, used for new writes from now on" }),
    job_id: Type.String({ description: "The background job re-wrapping the existing data keys" }),
  },
  { description: "A rotation under way" },
);
const UpdateVaultSettingsBody = Type.Object(
  {
    rotation_days: Type.Optional(
      Type.Union([Type.Integer({ minimum: 1, maximum: 3650 }), Type.Null()], {
        description: "Rotate the organization key every this many days (1–3650), or null to rotate only on request",
      }),
    ),
    keep_versions: Type.Optional(
      Type.Union([Type.Integer({ minimum: 1, maximum: 1000 }), Type.Null()], {
        description: "Keep the newest this many versions of each secret, the current one included (1–1000); older ones are deleted. null: keep all",
      }),
    ),
    keep_days: Type.Optional(
      Type.Union([Type.Integer({ minimum: 1, maximum: 3650 }), Type.Null()], {
        description: "Delete versions (never the current one) older than this many days (1–3650). null: keep them forever",
      }),
    ),
  },
  { additionalProperties: false, minProperties: 1, description: "The fields to change; the others stay as they are" },
);

/** Routes of the vault's keys: /v1/orgs/:orgId/vault. Everything needs vault:manage (owner and admin). */
export function vaultKeysRoutes(s: { keys: VaultKeysService }): FastifyPluginAsyncTypebox {
  const tags = ["secrets"];
  return async (app) => {
    app.get(
      "/v1/orgs/:orgId/vault",
      {
        config: { permission: "vault:manage" },
        schema: {
          operationId: "getVaultKeys",
          tags,
          summary: "The organization key's version and rotation state",
          description: "Needs vault:manage. No key material is ever returned.",
          security: bearerSecurity,
          params: OrgIdParams,
          response: { 200: VaultKeyStatus, ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => s.keys.status(requireTenant(req)),
    );

    app.patch(
      "/v1/orgs/:orgId/vault",
      {
        config: { permission: "vault:manage" },
        schema: {
          operationId: "updateVaultKeys",
          tags,
          summary: "Set the organization key's rotation period and the retention of old secret versions",
          description:
            "Needs vault:manage. The next scheduled rotation is the current key's age plus rotation_days. keep_versions and keep_days bound how many " +
            "old versions each secret keeps: a version outside either goes at the next lifecycle pass (hourly, audited as secret.versions_pruned " +
            "with counts), the current version never; a deleted version answers 404 to reveal and rollback. Audited as vault.settings_updated.",
          security: bearerSecurity,
          params: OrgIdParams,
          body: UpdateVaultSettingsBody,
          response: { 200: VaultKeyStatus, ...errors(...BODY_ERRORS, 401, 403, 404) },
        },
      },
      async (req) => s.keys.updateSettings(requireTenant(req), req.body, actorOf(req)),
    );

    app.post(
      "/v1/orgs/:orgId/vault/$rotate",
      {
        config: { permission: "vault:manage" },
        schema: {
          operationId: "rotateVaultKey",
          tags,
          summary: "Rotate the organization key: a new version now, existing data keys re-wrapped in the background",
          description:
            "Needs vault:manage. New writes use the new version at once; reads and writes keep working while a job re-wraps each data key " +
            "(only the wrapping changes, never the secret's ciphertext), then retires the versions nothing uses. Audited as vault.rotated.",
          security: bearerSecurity,
          params: OrgIdParams,
          response: { 202: RotateResult, ...errors(400, 401, 403, 404) },
        },
      },
      async (req, reply) => reply.code(202).send(await s.keys.rotate(requireTenant(req), actorOf(req))),
    );
  };
}
