import { Type } from "typebox";
import { NullableTimestamp, OrgIdParams, Timestamp } from "../../http/schemas.ts";
import { idPattern } from "../../lib/ids.ts";
import { Page, pageQuery } from "../../lib/pagination.ts";
import type { SecretKind, SecretRow, SecretVersionRow } from "./vault.repo.ts";

/** Days before expires_at an expiry notice goes out when the secret names none (lifecycle.service.ts). */
export const DEFAULT_NOTIFY_BEFORE_DAYS = 7;
/** Largest value, in UTF-8 bytes. */
export const MAX_VALUE_BYTES = 64 * 1024;
export const SECRET_ID_PATTERN = idPattern("secret");
const VERSION_PATTERN = "^[1-9][0-9]{0,8}$";

export const SecretId = Type.String({ pattern: SECRET_ID_PATTERN, description: "sec_… id" });
const SecretName = Type.String({
  minLength: 1,
  maxLength: 128,
  pattern: "^[A-Z_][A-Z0-9_]*$",
  description: "Environment-variable friendly (A–Z, 0–9, _; not starting with a digit), unique in its scope",
});
const Value = Type.String({ maxLength: MAX_VALUE_BYTES, description: "The secret value (up to 64 KiB of UTF-8)" });
const Description = Type.String({ maxLength: 500, description: "What the secret is for (never the value)" });
const Tag = Type.String({ minLength: 1, maxLength: 64, pattern: "^[A-Za-z0-9][A-Za-z0-9._:/-]*$", description: "A label: letters, digits, . _ : / -" });
const Tags = Type.Array(Tag, { maxItems: 20, uniqueItems: true, description: "Up to 20 distinct labels" });
const ExpiresAt = Type.Union([Type.String({ format: "date-time" }), Type.Null()], {
  description: "When the value stops being served (410 after); null: never",
});
const NotifyBeforeDays = Type.Union([Type.Integer({ minimum: 1, maximum: 365 }), Type.Null()], {
  description:
    "Days before expires_at the expiry notice goes to the secret's creator and the organization's owners and admins (1–365; null: 7). Kept without an expiry, for a later one",
});
const RotationReminderDays = Type.Union([Type.Integer({ minimum: 1, maximum: 3650 }), Type.Null()], {
  description: "Remind the same people once the current version is older than this many days (1–3650; null: no reminder)",
});
const versionNumber = (description: string) => Type.Integer({ minimum: 1, maximum: 999_999_999, description });
const TeamId = Type.String({ pattern: idPattern("team"), description: "team_… id: the secret belongs to this team of the organization" });
const UserId = Type.String({ pattern: idPattern("user"), description: "usr_… id: the secret belongs to this member (yourself) within the organization" });
const Scope = Type.Union([Type.Literal("org"), Type.Literal("team"), Type.Literal("user")], {
  description: "Where the secret lives: the whole org, one team, or one member",
});

const Kind = Type.Union([Type.Literal("generic"), Type.Literal("oauth_connection")], {
  description:
    "generic: a value set by hand; oauth_connection: an integration connection's token set, changed and used only through /v1/orgs/{orgId}/connections",
});

export const SecretParams = Type.Object({ orgId: OrgIdParams.properties.orgId, secretId: SecretId }, { additionalProperties: false });
export const SecretVersionParams = Type.Object(
  { ...SecretParams.properties, version: Type.String({ pattern: VERSION_PATTERN, description: "A version number of the secret" }) },
  { additionalProperties: false },
);
/** Optimistic concurrency: the version the caller last saw. */
export const IfMatchHeaders = Type.Object({
  "if-match": Type.Optional(
    Type.String({
      maxLength: 20,
      pattern: '^(W/)?"?[1-9][0-9]{0,8}"?$',
      description: "The current version the change is based on (the ETag of GET); a stale one answers 409",
    }),
  ),
});

export const CreateSecretBody = Type.Object(
  {
    name: SecretName,
    value: Value,
    description: Type.Optional(Description),
    tags: Type.Optional(Tags),
    expires_at: Type.Optional(ExpiresAt),
    notify_before_days: Type.Optional(NotifyBeforeDays),
    rotation_reminder_days: Type.Optional(RotationReminderDays),
    team_id: Type.Optional(TeamId),
    user_id: Type.Optional(UserId),
  },
  { additionalProperties: false, description: "Scope: neither team_id nor user_id for the org, team_id for a team, user_id (your own) for you within the org" },
);
export const UpdateSecretBody = Type.Object(
  {
    value: Type.Optional(Value),
    description: Type.Optional(Description),
    tags: Type.Optional(Tags),
    expires_at: Type.Optional(ExpiresAt),
    notify_before_days: Type.Optional(NotifyBeforeDays),
    rotation_reminder_days: Type.Optional(RotationReminderDays),
    version: Type.Optional(versionNumber("The current version the change is based on (or If-Match); a stale one answers 409")),
  },
  { additionalProperties: false, minProperties: 1, description: "A new value makes a new version; the rest changes the metadata" },
);
export const RollbackBody = Type.Object(
  { version: versionNumber("The version whose value becomes current again, as a new version") },
  { additionalProperties: false },
);
export const ListSecretsQuery = Type.Object(
  { ...pageQuery, scope: Type.Optional(Scope), team_id: Type.Optional(TeamId), kind: Type.Optional(Kind) },
  { additionalProperties: false },
);
export const ResolveQuery = Type.Object(
  {
    team_id: Type.Optional(Type.String({ pattern: idPattern("team"), description: "team_… id: add this team's secrets (over the org's)" })),
    user_id: Type.Optional(
      Type.String({ pattern: idPattern("user"), description: "usr_… id, your own: add your personal secrets (over the team's and the org's)" }),
    ),
  },
  { additionalProperties: false },
);
export const ResolvedSecrets = Type.Object(
  {
    data: Type.Array(
      Type.Object({
        name: Type.String({ description: "The variable name" }),
        value: Type.String({ description: "Its value" }),
        source: Type.Object(
          {
            scope: Scope,
            secret_id: Type.String({ description: "sec_… id of the secret served" }),
            version: Type.Integer({ description: "Its version served" }),
            team_id: Type.Optional(Type.String({ description: "The team, for a team secret" })),
            user_id: Type.Optional(Type.String({ description: "The member, for a personal secret" })),
          },
          { description: "Where the value came from: the most specific scope wins a name clash" },
        ),
      }),
      { description: "By name; one entry a name" },
    ),
  },
  { description: "The secrets resolved for (org, team, user), with values (answered with Cache-Control: no-store)" },
);
export const ListVersionsQuery = Type.Object(pageQuery, { additionalProperties: false });

export const Secret = Type.Object(
  {
    id: Type.String({ description: "sec_… id" }),
    name: Type.String({ description: "Unique in its scope" }),
    scope: Scope,
    kind: Kind,
    team_id: Type.Union([Type.String(), Type.Null()], { description: "The team of a team secret" }),
    user_id: Type.Union([Type.String(), Type.Null()], { description: "The member of a personal secret" }),
    description: Type.String({ description: "What it is for" }),
    tags: Type.Array(Type.String(), { description: "Its labels" }),
    expires_at: NullableTimestamp("When its value stops being served"),
    notify_before_days: Type.Union([Type.Integer(), Type.Null()], {
      description: "Days before expires_at its expiry notice goes out (7 unless set; null while it has no expiry and none is set)",
    }),
    rotation_reminder_days: Type.Union([Type.Integer(), Type.Null()], { description: "Rotation reminder period in days (null: none)" }),
    version: Type.Integer({ description: "The current version (also the ETag)" }),
    created_by: Type.Union([Type.String(), Type.Null()], { description: "Who created it" }),
    created_at: Timestamp("When it was created"),
    updated_by: Type.Union([Type.String(), Type.Null()], { description: "Who changed it last" }),
    updated_at: Timestamp("When it last changed"),
  },
  { description: "A secret's metadata: never its value" },
);
export const SecretPage = Page(Secret);
export const SecretValue = Type.Object(
  {
    id: Type.String({ description: "sec_… id" }),
    name: Type.String({ description: "Its name" }),
    version: Type.Integer({ description: "The version revealed" }),
    value: Type.String({ description: "The value" }),
  },
  { description: "A secret's value at one version (answered with Cache-Control: no-store)" },
);
export const SecretVersion = Type.Object(
  {
    version: Type.Integer({ description: "Its number" }),
    current: Type.Boolean({ description: "Whether it is the secret's current value" }),
    kek_version: Type.Integer({ description: "The organization key version that wraps its data key" }),
    created_by: Type.Union([Type.String(), Type.Null()], { description: "Who wrote it" }),
    created_at: Timestamp("When it was written"),
  },
  { description: "One version of a secret (never its value)" },
);
export const SecretVersionPage = Page(SecretVersion);

export function toSecret(r: SecretRow) {
  return {
    id: r.id,
    name: r.name,
    scope: r.scope as "org" | "team" | "user",
    kind: r.kind as SecretKind,
    team_id: r.teamId,
    user_id: r.userId,
    description: r.description,
    tags: r.tags,
    expires_at: r.expiresAt?.toISOString() ?? null,
    notify_before_days: r.notifyBeforeDays ?? (r.expiresAt ? DEFAULT_NOTIFY_BEFORE_DAYS : null),
    rotation_reminder_days: r.rotationReminderDays,
    version: r.currentVersion,
    created_by: r.createdBy,
    created_at: r.createdAt.toISOString(),
    updated_by: r.updatedBy,
    updated_at: r.updatedAt.toISOString(),
  };
}

export function toVersion(current: number) {
  return (r: Pick<SecretVersionRow, "version" | "kekVersion" | "createdBy" | "createdAt">) => ({
    version: r.version,
    current: r.version === current,
    kek_version: r.kekVersion,
    created_by: r.createdBy,
    created_at: r.createdAt.toISOString(),
  });
}
