import { actsAsRole } from "../access/authority.ts";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import { requireUser } from "../access/request.ts";
import { requireTenant } from "../access/request.ts";
import { BODY_ERRORS, OrgIdParams, bearerSecurity, errors, NullableTimestamp, Timestamp } from "../../http/schemas.ts";
import { platformError } from "../../lib/errors.ts";
import { actorOf } from "../access/request.ts";
import type { OrgRow } from "./orgs.repo.ts";
import type { OrgProfileService } from "./orgs.profile.service.ts";

const Name = Type.String({ minLength: 1, maxLength: 100, pattern: "\\S", description: "Organization name" });
const Slug = Type.String({
  minLength: 3,
  maxLength: 48,
  pattern: "^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$",
  description: "Unique across the platform: a-z, 0-9 and inner hyphens",
});
const Nullable = <T extends ReturnType<typeof Type.String>>(t: T, description: string) => Type.Union([t, Type.Null()], { description });
const Address = Type.Object(
  {
    line1: Type.Optional(Type.String({ maxLength: 200 })),
    line2: Type.Optional(Type.String({ maxLength: 200 })),
    city: Type.Optional(Type.String({ maxLength: 100 })),
    region: Type.Optional(Type.String({ maxLength: 100 })),
    postal_code: Type.Optional(Type.String({ maxLength: 20 })),
    country: Type.Optional(Type.String({ pattern: "^[A-Z]{2}$", description: "ISO 3166-1 alpha-2" })),
  },
  { additionalProperties: false },
);

const Org = Type.Object({
  id: Type.String({ description: "org_… id" }),
  name: Type.String(),
  slug: Type.String(),
  personal: Type.Boolean({ description: "A user's personal organization, made at sign-up" }),
  display_name: Type.Union([Type.String(), Type.Null()], { description: "Branding: name shown in the console and mail" }),
  logo_url: Type.Union([Type.String(), Type.Null()]),
  primary_color: Type.Union([Type.String(), Type.Null()], { description: "#rrggbb" }),
  address: Type.Union([Address, Type.Null()]),
  contact_email: Type.Union([Type.String(), Type.Null()]),
  contact_phone: Type.Union([Type.String(), Type.Null()]),
  owner_impersonation: Type.Boolean({ description: "Whether the org's owners may impersonate its members (POST /v1/impersonations); off by default" }),
  created_at: Timestamp("When the organization was created"),
  updated_at: Timestamp("Last profile change"),
  deleted_at: NullableTimestamp("Set while the organization is deleted and restorable"),
});

export function toOrg(o: OrgRow) {
  return {
    id: o.id,
    name: o.name,
    slug: o.slug,
    personal: o.personal,
    display_name: o.displayName,
    logo_url: o.logoUrl,
    primary_color: o.primaryColor,
    address: (o.address as Record<string, string> | null) ?? null,
    contact_email: o.contactEmail,
    contact_phone: o.contactPhone,
    owner_impersonation: o.ownerImpersonation,
    created_at: o.createdAt.toISOString(),
    updated_at: o.updatedAt.toISOString(),
    deleted_at: o.deletedAt?.toISOString() ?? null,
  };
}

export function orgProfileRoutes(s: { profile: OrgProfileService }): FastifyPluginAsyncTypebox {
  const tags = ["orgs"];
  return async (app) => {
    app.post(
      "/v1/orgs",
      {
        schema: {
          operationId: "createOrg",
          tags,
          summary: "Create an organization; you become its owner",
          security: bearerSecurity,
          body: Type.Object({ name: Name, slug: Slug }, { additionalProperties: false }),
          response: { 201: Org, ...errors(...BODY_ERRORS, 401, 409) },
        },
      },
      async (req, reply) => reply.code(201).send(toOrg(await s.profile.createOrg(requireUser(req).userId, req.body, actorOf(req)))),
    );

    app.get(
      "/v1/orgs/:orgId",
      {
        config: { permission: "org:read" },
        schema: {
          operationId: "getOrg",
          tags,
          summary: "An organization's profile",
          security: bearerSecurity,
          params: OrgIdParams,
          response: { 200: Org, ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => toOrg(await s.profile.getOrg(requireTenant(req).orgId)),
    );

    app.patch(
      "/v1/orgs/:orgId",
      {
        config: { permission: "org:update" },
        schema: {
          operationId: "updateOrg",
          tags,
          summary: "Change name, slug, address, contact or branding",
          description: "Audited as org.updated with each changed field before and after. `owner_impersonation` only by an owner.",
          security: bearerSecurity,
          params: OrgIdParams,
          body: Type.Object(
            {
              name: Type.Optional(Name),
              slug: Type.Optional(Slug),
              display_name: Type.Optional(Nullable(Type.String({ minLength: 1, maxLength: 100 }), "Branding name, or null")),
              logo_url: Type.Optional(Nullable(Type.String({ format: "uri", maxLength: 2048, pattern: "^https://" }), "https URL of a logo, or null")),
              primary_color: Type.Optional(Nullable(Type.String({ pattern: "^#[0-9a-fA-F]{6}$" }), "#rrggbb, or null")),
              address: Type.Optional(Type.Union([Address, Type.Null()])),
              contact_email: Type.Optional(Nullable(Type.String({ format: "email", maxLength: 254 }), "Contact address, or null")),
              contact_phone: Type.Optional(Nullable(Type.String({ pattern: "^\\+?[0-9 ()-]{5,32}$" }), "Phone number, or null")),
              owner_impersonation: Type.Optional(Type.Boolean({ description: "Let owners impersonate members (only an owner may change this)" })),
            },
            { additionalProperties: false, minProperties: 1 },
          ),
          response: { 200: Org, ...errors(...BODY_ERRORS, 401, 403, 404, 409) },
        },
      },
      async (req) => {
        const tenant = requireTenant(req);
        if (req.body.owner_impersonation !== undefined && !actsAsRole(tenant, "owner")) {
          throw platformError("FORBIDDEN", "Only an owner may change owner_impersonation.", { field: "owner_impersonation", extra: { reason: "owner_only" } });
        }
        return toOrg(await s.profile.updateOrg(tenant.orgId, req.body, actorOf(req)));
      },
    );
  };
}
