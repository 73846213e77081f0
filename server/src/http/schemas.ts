import { Type, type TSchema } from "typebox";
import { idPattern } from "../lib/ids.ts";

/** RFC 9457 problem document, as every error leaves the server. */
export const Problem = Type.Object(
  {
    type: Type.String({ description: "URN naming the error kind" }),
    title: Type.String({ description: "Short human summary of the kind" }),
    status: Type.Integer({ description: "HTTP status" }),
    code: Type.String({ description: "Stable machine-readable error code, e.g. VALIDATION_FAILED" }),
    detail: Type.String({ description: "What went wrong with this request, in words" }),
    field: Type.Optional(Type.String({ description: "The request field at fault" })),
    errors: Type.Optional(
      Type.Array(Type.Object({ field: Type.String(), reason: Type.String() }, { description: "One invalid field" }), {
        description: "Every invalid field, for validation errors",
      }),
    ),
    reason: Type.Optional(Type.String({ description: "Why a token was refused (expired, bad_signature, …)" })),
    permission: Type.Optional(Type.String({ description: "The permission the caller's role lacks (403)" })),
    missing: Type.Optional(
      Type.Array(Type.String(), {
        description: "Every permission the caller lacks for what it asked to create or re-issue, in catalog order (403; the first is `permission`)",
      }),
    ),
    current_version: Type.Optional(
      Type.Integer({ description: "The resource's version now, for a version conflict (409): re-read it, or retry naming this version" }),
    ),
    instance: Type.String({ description: "The request path" }),
    request_id: Type.String({ description: "Echo of x-request-id; quote it when reporting a problem" }),
  },
  { $id: "Problem", description: "RFC 9457 problem details" },
);

const DESCRIPTIONS: Record<number, string> = {
  400: "Invalid input: the problem names the field and the reason",
  401: "Missing, invalid or expired credentials",
  403: "Authenticated but not allowed",
  404: "No such resource (or not yours)",
  409: "Conflicts with existing state",
  410: "Gone: it existed but can no longer be used (expired, revoked, past its restore window)",
  413: "Body over 1 MiB",
  415: "Body is not application/json",
  422: "Understood, but too large or not possible as asked: the problem says how to narrow it",
  429: "Throttled: wait Retry-After seconds",
  503: "Not ready",
};

/** The error responses a route documents, each a problem+json document. */
export function errors(...statuses: number[]): Record<number, TSchema> {
  const out: Record<number, TSchema> = {};
  for (const s of statuses) out[s] = Type.Ref("Problem", { description: DESCRIPTIONS[s] ?? "Error" });
  return out;
}

/** Routes that take a body can also fail on the body itself. */
export const BODY_ERRORS = [400, 413, 415] as const;

export const bearerSecurity = [{ bearerAuth: [] }];

export const Timestamp = (description: string) => Type.String({ format: "date-time", description });
export const NullableTimestamp = (description: string) => Type.Union([Type.String({ format: "date-time" }), Type.Null()], { description });

export const Cursor = Type.String({
  minLength: 1,
  maxLength: 200,
  pattern: "^[A-Za-z0-9_-]+$",
  description: "Opaque cursor from a previous page's next_cursor",
});
export const Limit = Type.Integer({ minimum: 1, maximum: 200, default: 50, description: "Page size (1–200)" });

export function encodeCursor(id: string): string {
  return Buffer.from(id).toString("base64url");
}

export function decodeCursor(cursor: string | undefined): string | undefined {
  return cursor === undefined ? undefined : Buffer.from(cursor, "base64url").toString("utf8");
}

/** Path parameters of every org-scoped route. */
export const OrgIdParams = Type.Object({ orgId: Type.String({ pattern: idPattern("org"), description: "org_… id" }) }, { additionalProperties: false });
