import { Type } from "typebox";
import { NullableTimestamp, Timestamp } from "../../http/schemas.ts";
import { idPattern } from "../../lib/ids.ts";
import { Page } from "../../lib/pagination.ts";
import { MAX_IMPERSONATION_SECONDS } from "./impersonation.service.ts";

const Person = Type.Object({ id: Type.String(), email: Type.Union([Type.String(), Type.Null()]), name: Type.Union([Type.String(), Type.Null()]) });

export const ImpersonationRecord = Type.Object({
  id: Type.String({ description: "imp_… id" }),
  impersonator: Person,
  user: Person,
  org_id: Type.Union([Type.String(), Type.Null()], {
    description: "The org the token was bound to; null: wherever the user is a member (platform admins only)",
  }),
  basis: Type.Union([Type.Literal("platform_admin"), Type.Literal("org_owner")], { description: "The authority it was started under" }),
  reason: Type.String(),
  state: Type.Union([Type.Literal("active"), Type.Literal("ended"), Type.Literal("expired")]),
  created_at: Timestamp("When it started"),
  expires_at: Timestamp("When its token stops working"),
  ended_at: NullableTimestamp("When someone ended it early"),
  ip: Type.Union([Type.String(), Type.Null()], { description: "Where the impersonator started it from" }),
});

export const ImpersonationPage = Page(ImpersonationRecord);

export const StartImpersonationBody = Type.Object(
  {
    user_id: Type.String({ pattern: idPattern("user"), description: "The user to act as" }),
    org_id: Type.Optional(Type.String({ pattern: idPattern("org"), description: "Bind the token to this org (required for org owners)" })),
    reason: Type.String({ minLength: 3, maxLength: 500, pattern: "\\S", description: "Why: shown to the user and kept in the audit log" }),
    expires_in: Type.Optional(Type.Integer({ minimum: 60, maximum: MAX_IMPERSONATION_SECONDS, description: "Seconds, 60–3600 (default 900)" })),
  },
  { additionalProperties: false },
);

export const StartedImpersonation = Type.Object({
  access_token: Type.String({ description: "A JWT for the user, with `act.sub` = you" }),
  token_type: Type.Literal("Bearer"),
  expires_in: Type.Integer(),
  impersonation: ImpersonationRecord,
});

export const ImpersonationParams = Type.Object(
  { impersonationId: Type.String({ pattern: idPattern("impersonation"), description: "imp_… id" }) },
  { additionalProperties: false },
);
