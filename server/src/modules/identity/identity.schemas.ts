import { Type } from "typebox";
import { Timestamp } from "../../http/schemas.ts";
import { idPattern } from "../../lib/ids.ts";
import { PASSWORD_MAX, PASSWORD_MIN } from "./passwords.ts";
import type { UserRow } from "./identity.repo.ts";

const strict = { additionalProperties: false } as const;

/** Surrounding white space is allowed here; the services make the address canonical (lib/email.ts) and refuse the rest. */
export const Email = Type.String({
  minLength: 3,
  maxLength: 254,
  pattern: "^\\s*[^\\s@\\u0000-\\u001f\\u007f]{1,64}@[^\\s@.\\u0000-\\u001f\\u007f]+(\\.[^\\s@.\\u0000-\\u001f\\u007f]+)+\\s*$",
  description:
    "Email address. Stored and compared in one form: NFKC-normalised, trimmed and lower-cased (a punycode domain in Unicode), " +
    "so ADA@EXAMPLE.COM and fullwidth ａｄａ@example.com are ada@example.com. Refused with 400 naming the field: invisible or " +
    "control characters (zero-width, bidi controls, soft hyphen) and letters of different scripts mixed in the part before " +
    "the @ or in one domain label (Latin with Cyrillic or Greek); an address in one non-Latin script is fine",
});
export const Password = Type.String({ minLength: 1, maxLength: PASSWORD_MAX, description: "The account's password" });
/** Length is checked here; "not common, not the email" by the service (it needs the email). */
export const NewPassword = Type.String({
  minLength: PASSWORD_MIN,
  maxLength: PASSWORD_MAX,
  description: "12–256 characters, not a common password, not the email",
});
const Name = Type.String({ minLength: 1, maxLength: 100, pattern: "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$", description: "Display name" });
const EmailToken = Type.String({ minLength: 16, maxLength: 128, pattern: "^[A-Za-z0-9_-]+$", description: "The token from the emailed link" });
const RefreshToken = Type.String({ minLength: 16, maxLength: 200, description: "The refresh token from sign-in" });

export const RegisterBody = Type.Object({ email: Email, password: NewPassword, name: Name }, strict);
export const LoginBody = Type.Object(
  {
    email: Email,
    password: Password,
    org_id: Type.Optional(
      Type.String({ pattern: idPattern("org"), description: "Sign in for one organization you belong to: the session ends when you leave it or are removed" }),
    ),
  },
  strict,
);
export const RefreshBody = Type.Object({ refresh_token: RefreshToken }, strict);
export const EmailBody = Type.Object({ email: Email }, strict);
export const TokenBody = Type.Object({ token: EmailToken }, strict);
export const ResetConfirmBody = Type.Object({ token: EmailToken, new_password: NewPassword }, strict);
export const ChangePasswordBody = Type.Object(
  { current_password: Password, new_password: NewPassword },
  { ...strict, description: "Needs the current password; signs out every other session" },
);

export const ProfilePatchBody = Type.Object(
  {
    name: Type.Optional(Name),
    avatar_url: Type.Optional(
      Type.Union([Type.String({ format: "uri", maxLength: 2048, pattern: "^https?://" }), Type.Null()], {
        description: "http(s) URL of an avatar image, or null",
      }),
    ),
    locale: Type.Optional(
      Type.Union([Type.String({ pattern: "^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*$", maxLength: 35 }), Type.Null()], {
        description: "BCP 47 language tag, e.g. en-GB",
      }),
    ),
    timezone: Type.Optional(
      Type.Union([Type.String({ pattern: "^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$", maxLength: 64 }), Type.Null()], {
        description: "IANA time zone, e.g. Europe/Paris",
      }),
    ),
  },
  { ...strict, minProperties: 1 },
);

export const User = Type.Object(
  {
    id: Type.String({ description: "usr_… id" }),
    email: Type.String({ description: "Email address, in its canonical form (NFKC, lower-cased)" }),
    email_verified: Type.Boolean({ description: "Whether the address was confirmed by an emailed link" }),
    name: Type.String({ description: "Display name" }),
    avatar_url: Type.Union([Type.String(), Type.Null()], { description: "Avatar image URL" }),
    locale: Type.Union([Type.String(), Type.Null()], { description: "BCP 47 language tag" }),
    timezone: Type.Union([Type.String(), Type.Null()], { description: "IANA time zone" }),
    is_platform_admin: Type.Boolean({ description: "Operator of this Plinth installation" }),
    created_at: Timestamp("When the account was created"),
    updated_at: Timestamp("Last profile change"),
  },
  { $id: "User" },
);

export const TokenPair = Type.Object(
  {
    access_token: Type.String({ description: "JWT for Authorization: Bearer; verify with /.well-known/jwks.json" }),
    refresh_token: Type.String({ description: "Opaque, single use; rotate at POST /v1/auth/refresh" }),
    token_type: Type.Literal("Bearer"),
    expires_in: Type.Integer({ description: "Seconds until the access token expires" }),
  },
  { $id: "TokenPair" },
);

export const LoginAttempt = Type.Object({
  id: Type.String(),
  method: Type.String({ description: "password | magic_link" }),
  result: Type.String({ description: "success | invalid_credentials | account_disabled" }),
  ip: Type.Union([Type.String(), Type.Null()]),
  user_agent: Type.Union([Type.String(), Type.Null()]),
  created_at: Timestamp("When"),
});

export const Accepted = Type.Object({ status: Type.Literal("accepted"), detail: Type.String() });

export function toUser(u: UserRow) {
  return {
    id: u.id,
    email: u.email,
    email_verified: u.emailVerifiedAt !== null,
    name: u.name,
    avatar_url: u.avatarUrl,
    locale: u.locale,
    timezone: u.timezone,
    is_platform_admin: u.isPlatformAdmin,
    created_at: u.createdAt.toISOString(),
    updated_at: u.updatedAt.toISOString(),
  };
}
