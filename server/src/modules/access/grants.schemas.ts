import { Type } from "typebox";
import { NullableTimestamp, OrgIdParams, Timestamp } from "../../http/schemas.ts";
import { idPattern } from "../../lib/ids.ts";
import type { Decision } from "./access.service.ts";
import type { GrantRequestRow, GrantRow } from "./grants.repo.ts";
import { ALL_PERMISSIONS } from "./permissions.ts";
import { OBJECT_TYPES, RELATIONS, SUBJECT_TYPES } from "./relations.ts";

/** Any prefixed id (`usr_…`, `team_…`, `doc_…`): resources of later modules are named by their own prefixes. */
const ANY_ID = "^[a-z]+_[0-9a-hjkmnp-tv-z]{26}$";
const EXAMPLE_OBJECT_ID = "doc_01jd0000000000000000000000";

export const PermissionName = Type.Enum(ALL_PERMISSIONS, { description: "A catalog permission, resource:action (GET /v1/permissions)" });
export const RelationName = Type.Enum([...RELATIONS], {
  description: "owner > admin > share, write, delete > read > list; a relation includes the weaker ones",
});
const Expiry = Type.String({ format: "date-time", description: "When the grant stops counting (in the future); omit for no end" });

export const SubjectRef = Type.Object(
  {
    type: Type.Enum([...SUBJECT_TYPES], { description: "user (a member), team (its members and its sub-teams' members) or org (every member)" }),
    id: Type.Optional(Type.String({ pattern: ANY_ID, description: "usr_… or team_…; for org, this organization's id (may be omitted)" })),
  },
  { additionalProperties: false, description: "Who receives the grant", examples: [{ type: "org" }] },
);

export const ObjectRef = Type.Object(
  {
    type: Type.Enum(Object.keys(OBJECT_TYPES) as (keyof typeof OBJECT_TYPES)[], { description: "Kind of resource" }),
    id: Type.String({ pattern: ANY_ID, description: "The resource's id (a team must exist in this organization)" }),
  },
  { additionalProperties: false, description: "The resource", examples: [{ type: "document", id: EXAMPLE_OBJECT_ID }] },
);

export const GrantIdParams = Type.Object(
  { ...OrgIdParams.properties, grantId: Type.String({ pattern: idPattern("grant"), description: "grt_… id" }) },
  { additionalProperties: false },
);
export const RequestIdParams = Type.Object(
  { ...OrgIdParams.properties, requestId: Type.String({ pattern: idPattern("grantRequest"), description: "grq_… id" }) },
  { additionalProperties: false },
);

export const CreateGrantBody = Type.Object(
  { subject: SubjectRef, relation: RelationName, object: ObjectRef, expires_at: Type.Optional(Expiry) },
  { additionalProperties: false, examples: [{ subject: { type: "org" }, relation: "read", object: { type: "document", id: EXAMPLE_OBJECT_ID } }] },
);

export const Grant = Type.Object({
  id: Type.String({ description: "grt_… id" }),
  kind: Type.Enum(["share", "peer"], { description: "share: a relation on one resource; peer: a permission one member passed to another" }),
  subject: Type.Object({ type: Type.String(), id: Type.String() }, { description: "Who holds it" }),
  relation: Type.String({ description: "The relation (share) or the permission (peer)" }),
  object: Type.Object({ type: Type.String(), id: Type.String() }, { description: "The resource (share), or the organization (peer)" }),
  granted_by: Type.Union([Type.String(), Type.Null()], { description: "The member who made it" }),
  expires_at: NullableTimestamp("When it stops counting; null: never"),
  expired: Type.Boolean({ description: "It has stopped counting (expired grants are kept until revoked or replaced)" }),
  created_at: Timestamp("When it was made"),
});

export function toGrant(g: GrantRow, now: Date) {
  return {
    id: g.id,
    kind: g.kind as "share" | "peer",
    subject: { type: g.subjectType, id: g.subjectId },
    relation: g.relation,
    object: { type: g.objectType, id: g.objectId },
    granted_by: g.grantedBy,
    expires_at: g.expiresAt?.toISOString() ?? null,
    expired: !!g.expiresAt && g.expiresAt <= now,
    created_at: g.createdAt.toISOString(),
  };
}

export const PeerGrant = Type.Object({
  id: Type.String({ description: "grt_… id" }),
  grantor_id: Type.Union([Type.String(), Type.Null()], { description: "The member who passed the permission on" }),
  grantee_id: Type.String({ description: "The member who received it" }),
  permission: Type.String({ description: "resource:action" }),
  expires_at: NullableTimestamp("When it stops counting; null: never"),
  expired: Type.Boolean(),
  created_at: Timestamp("When it was given"),
});

export function toPeerGrant(g: GrantRow, now: Date) {
  return {
    id: g.id,
    grantor_id: g.grantedBy,
    grantee_id: g.subjectId,
    permission: g.relation,
    expires_at: g.expiresAt?.toISOString() ?? null,
    expired: !!g.expiresAt && g.expiresAt <= now,
    created_at: g.createdAt.toISOString(),
  };
}

export const Permissions = Type.Array(PermissionName, { minItems: 1, maxItems: ALL_PERMISSIONS.length, uniqueItems: true, description: "Catalog permissions" });

export const GrantRequest = Type.Object({
  id: Type.String({ description: "grq_… id" }),
  requester_id: Type.String({ description: "Who asked" }),
  grantor_id: Type.String({ description: "Whom they asked (the only one who can approve or deny)" }),
  permissions: Type.Array(Type.String(), { description: "What was asked for" }),
  reason: Type.Union([Type.String(), Type.Null()], { description: "Why, in the requester's words" }),
  expires_at: NullableTimestamp("Until when access was asked for; null: no end"),
  status: Type.Enum(["pending", "approved", "denied", "cancelled"]),
  decided_at: NullableTimestamp("When it was approved, denied or cancelled"),
  decided_by: Type.Union([Type.String(), Type.Null()]),
  grant_ids: Type.Array(Type.String(), { description: "The peer grants an approval made" }),
  created_at: Timestamp("When it was asked"),
});

export function toGrantRequest(r: GrantRequestRow) {
  return {
    id: r.id,
    requester_id: r.requesterId,
    grantor_id: r.grantorId,
    permissions: r.permissions,
    reason: r.reason,
    expires_at: r.requestedExpiresAt?.toISOString() ?? null,
    status: r.status as "pending" | "approved" | "denied" | "cancelled",
    decided_at: r.decidedAt?.toISOString() ?? null,
    decided_by: r.decidedBy,
    grant_ids: r.grantIds,
    created_at: r.createdAt.toISOString(),
  };
}

/** One question: `{permission}` (org-wide) or `{relation, object}` (one resource). */
export const Check = Type.Object(
  { permission: Type.Optional(PermissionName), relation: Type.Optional(RelationName), object: Type.Optional(ObjectRef) },
  { additionalProperties: false, description: "Either permission, or relation with object", examples: [{ permission: "org:read" }] },
);

export const CheckSubject = Type.Object(
  { type: Type.Literal("user"), id: Type.String({ pattern: idPattern("user"), description: "usr_… id of a member" }) },
  { additionalProperties: false, description: "Whose access to check (default: yours; another member's needs grants:read)" },
);

export const DecisionStep = Type.Object({
  kind: Type.Enum(["membership", "role", "peer_grant", "grant", "team", "maintainer", "default"]),
  detail: Type.String({ description: "The step in words" }),
  grant_id: Type.Optional(Type.String({ description: "The grant this step rests on" })),
});

export const Explanation = Type.Object({
  allowed: Type.Boolean(),
  permission: Type.String({ description: "The permission or relation asked about" }),
  subject: Type.Object({ type: Type.Literal("user"), id: Type.String() }),
  steps: Type.Array(DecisionStep, { description: "The path of roles, teams and grants that led to the decision, in order" }),
});

export function toExplanation(d: Decision, userId: string) {
  return { allowed: d.allowed, permission: d.permission, subject: { type: "user" as const, id: userId }, steps: d.steps };
}
