import { Type } from "typebox";
import { NullableTimestamp, Timestamp } from "../../http/schemas.ts";
import { idPattern } from "../../lib/ids.ts";
import { Email as AccountEmail, NewPassword } from "../identity/identity.schemas.ts";
import { statusOf, type InvitationRow } from "./invitations.repo.ts";

const strict = { additionalProperties: false } as const;

export const MAX_BULK = 100;
export const MAX_TEAMS = 50;

export const StatusSchema = Type.Union([Type.Literal("pending"), Type.Literal("accepted"), Type.Literal("revoked"), Type.Literal("expired")], {
  description: "pending (the link works) | accepted | revoked | expired (unanswered and out of time)",
});

/** identity's account email rules, with an example for the generated document (and the isolation suite). */
const emailRules = AccountEmail as unknown as { minLength: number; maxLength: number; pattern: string };
const Email = Type.String({
  minLength: emailRules.minLength,
  maxLength: emailRules.maxLength,
  pattern: emailRules.pattern,
  description:
    "Address to invite, made canonical and checked as at sign-up (NFKC, trimmed, lower-cased; invisible characters and " +
    "mixed scripts refused). One open invitation per address and org.",
  examples: ["new.member@example.com"],
});
const Role = Type.String({
  minLength: 1,
  maxLength: 64,
  pattern: "^[^\\u0000-\\u001f\\u007f]+$",
  description: "A built-in role (owner, admin, developer, viewer) or one of the org's custom roles, whose permissions you hold yourself",
  examples: ["viewer"],
});
const TeamIds = Type.Array(Type.String({ pattern: idPattern("team"), description: "team_… id" }), {
  maxItems: MAX_TEAMS,
  uniqueItems: true,
  description: `Teams of this org to join as member on acceptance (at most ${MAX_TEAMS})`,
});

export const InvitationBody = Type.Object({ email: Email, role: Role, teams: Type.Optional(TeamIds) }, strict);
export const BulkBody = Type.Object(
  {
    invitations: Type.Array(InvitationBody, {
      minItems: 1,
      maxItems: MAX_BULK,
      description: `1–${MAX_BULK} invitations; each is created or refused on its own`,
    }),
  },
  strict,
);

export const InvitationIdParams = Type.Object(
  {
    orgId: Type.String({ pattern: idPattern("org"), description: "org_… id" }),
    invitationId: Type.String({ pattern: idPattern("invitation"), description: "inv_… id" }),
  },
  strict,
);

const InvitationToken = Type.String({
  minLength: 16,
  maxLength: 200,
  pattern: "^[A-Za-z0-9._-]+$",
  description: "The token from the emailed link (the `token` query parameter)",
});
export const AcceptBody = Type.Object({ token: InvitationToken }, strict);
export const RegisterBody = Type.Object(
  {
    token: InvitationToken,
    name: Type.String({ minLength: 1, maxLength: 100, pattern: "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$", description: "Display name" }),
    password: NewPassword,
  },
  strict,
);

export const Invitation = Type.Object({
  id: Type.String({ description: "inv_… id" }),
  email: Type.String({ description: "The invited address" }),
  role: Type.String({ description: "Role given on acceptance" }),
  team_ids: Type.Array(Type.String(), { description: "Teams joined on acceptance" }),
  status: StatusSchema,
  invited_by: Type.Union([Type.String(), Type.Null()], {
    description: "usr_… id of the person who invited; null when a service account or registered service did (see invited_by_type)",
  }),
  invited_by_type: Type.Union([Type.Literal("user"), Type.Literal("service_account"), Type.Literal("service")], {
    description:
      "What kind of principal invited: a person (directly or by their API key), a service account (its token or key), or a registered service (its self-signed token)",
  }),
  invited_by_id: Type.Union([Type.String(), Type.Null()], {
    description: "The inviter's id: usr_…, sa_… or svk_… (the service key's registration); null if unknown",
  }),
  expires_at: Timestamp("When the link stops working"),
  sent_count: Type.Integer({ description: "How many mails went out (the first, then each resend)" }),
  last_sent_at: NullableTimestamp("When the latest mail went out"),
  accepted_at: NullableTimestamp("When it was accepted"),
  accepted_by: Type.Union([Type.String(), Type.Null()], { description: "usr_… id of who accepted" }),
  revoked_at: NullableTimestamp("When it was revoked"),
  created_at: Timestamp("When it was created"),
});

/** The API shape of an invitation: never the token or its hash. */
export function toInvitation(r: InvitationRow, now: Date) {
  return {
    id: r.id,
    email: r.email,
    role: r.role,
    team_ids: r.teamIds,
    status: statusOf(r, now),
    invited_by: r.invitedBy,
    invited_by_type: r.invitedByType as "user" | "service_account" | "service",
    invited_by_id: r.invitedById,
    expires_at: r.expiresAt.toISOString(),
    sent_count: r.sentCount,
    last_sent_at: r.lastSentAt?.toISOString() ?? null,
    accepted_at: r.acceptedAt?.toISOString() ?? null,
    accepted_by: r.acceptedBy,
    revoked_at: r.revokedAt?.toISOString() ?? null,
    created_at: r.createdAt.toISOString(),
  };
}

export const BulkResult = Type.Object({
  email: Type.String({ description: "The entry's address" }),
  status: Type.Union([Type.Literal("invited"), Type.Literal("error")]),
  invitation_id: Type.Optional(Type.String({ description: "inv_… id, when invited" })),
  error: Type.Optional(
    Type.Object(
      {
        code: Type.String({ description: "The error code this entry alone would have answered, e.g. ALREADY_MEMBER" }),
        detail: Type.String(),
        field: Type.Optional(Type.String({ description: "The entry's field at fault" })),
      },
      { description: "Why this entry was not invited" },
    ),
  ),
});

export const Joined = Type.Object({
  org: Type.Object({ id: Type.String({ description: "org_… id" }), name: Type.String(), slug: Type.String() }, { description: "The organization joined" }),
  role: Type.String({ description: "Your role in it" }),
  team_ids: Type.Array(Type.String(), { description: "Teams joined as member" }),
});
