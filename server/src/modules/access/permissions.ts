/**
 * The permission catalog: every action a role can grant, named `resource:action`. Routes name the permission they
 * need; roles are sets of these. `GET /v1/permissions` lists them, and docs/permissions.md shows the built-in roles.
 */
export const PERMISSIONS = {
  "org:read": "See the organization's profile and settings",
  "org:update": "Change the organization's name, slug, address, contact and branding",
  "org:delete": "Delete (and restore) the organization",
  "members:read": "List members and their roles",
  "members:invite": "Invite people by email",
  "members:update": "Change members' roles",
  "members:remove": "Remove members",
  "teams:read": "List teams and their members",
  "teams:create": "Create teams",
  "teams:update": "Rename, move and manage members of teams",
  "teams:delete": "Delete teams",
  "roles:read": "List roles and their permissions",
  "roles:manage": "Create, change and delete custom roles",
  "grants:read": "List sharing and peer grants",
  "grants:manage": "Create and revoke grants on any resource of the organization",
  "audit:read": "Read and export the audit log",
  "keys:read": "List API keys",
  "keys:create": "Create API keys",
  "keys:manage": "Rotate, update and revoke any API key of the organization",
  "service-accounts:manage": "Create, change and disable service accounts",
  "service-keys:read": "List the services' registered public keys",
  "service-keys:manage": "Register, change and revoke services' public keys",
  "secrets:read": "Read secret values",
  "secrets:write": "Create and change secrets",
  "vault:manage": "Rotate the organization's vault keys and change its rotation settings",
  "connections:read": "See integration connections (never their tokens)",
  "connections:use": "Get an integration connection's current access token",
  "connections:manage": "Create, refresh and revoke integration connections",
  "webhooks:read": "See webhook endpoints (never their secrets) and their delivery logs",
  "webhooks:manage": "Create, change, delete and test webhook endpoints, rotate their secrets, replay deliveries",
  "events:read": "List ingested events and see ingestion statistics",
  "events:write": "Send events to the organization's ingestion endpoint",
  "conversations:read": "Read conversations and their events",
  "conversations:write": "Start and continue conversations",
  "usage:read": "See usage, spend and budgets",
  "billing:manage": "Change budgets and quotas",
} as const;

export type Permission = keyof typeof PERMISSIONS;

export const ALL_PERMISSIONS = Object.keys(PERMISSIONS) as Permission[];

export function isPermission(value: string): value is Permission {
  return Object.hasOwn(PERMISSIONS, value);
}

const READ: Permission[] = [
  "org:read",
  "members:read",
  "teams:read",
  "roles:read",
  "grants:read",
  "keys:read",
  "service-keys:read",
  "connections:read",
  "events:read",
  "conversations:read",
  "usage:read",
];

/** The built-in roles, from most to least powerful. Custom roles are any subset of the catalog. */
export const BUILT_IN_ROLES = {
  owner: { description: "Everything, including deleting the organization and managing owners", permissions: ALL_PERMISSIONS },
  admin: {
    description: "Everything except deleting the organization; cannot change owners",
    permissions: ALL_PERMISSIONS.filter((p) => p !== "org:delete"),
  },
  developer: {
    description: "Builds with the platform: keys, secrets, conversations; reads the rest",
    permissions: [
      ...READ,
      "keys:create",
      "secrets:read",
      "secrets:write",
      "connections:use",
      "connections:manage",
      "conversations:write",
      "events:write",
      "teams:create",
    ] as Permission[],
  },
  viewer: { description: "Reads what the organization has; changes nothing", permissions: READ },
} as const satisfies Record<string, { description: string; permissions: readonly Permission[] }>;

export type BuiltInRole = keyof typeof BUILT_IN_ROLES;

export const ROLE_RANK: Record<BuiltInRole, number> = { owner: 4, admin: 3, developer: 2, viewer: 1 };

export function isBuiltInRole(value: string): value is BuiltInRole {
  return Object.hasOwn(BUILT_IN_ROLES, value);
}

/** Markdown table of roles × permissions, for docs/permissions.md (kept true by a test). */
export function permissionsTable(): string {
  const roles = Object.keys(BUILT_IN_ROLES) as BuiltInRole[];
  const head = `| permission | meaning | ${roles.join(" | ")} |\n|---|---|${roles.map(() => ":-:").join("|")}|`;
  const rows = ALL_PERMISSIONS.map(
    (p) => `| \`${p}\` | ${PERMISSIONS[p]} | ${roles.map((r) => ((BUILT_IN_ROLES[r].permissions as readonly string[]).includes(p) ? "✓" : "")).join(" | ")} |`,
  );
  return [head, ...rows].join("\n");
}
