import type { Executor } from "../../db/client.ts";
import { platformError, type AppError, type AppErrorOptions } from "../../lib/errors.ts";
import type { OrgMembership } from "./access.service.ts";
import { ALL_PERMISSIONS, BUILT_IN_ROLES, isBuiltInRole, isPermission, type Permission } from "./permissions.ts";

/**
 * The one rule every credential, role and grant obeys: **nothing holds more than the one who makes it.** API keys and
 * their roles, rotating a key (whoever re-issues a secret must hold all the key can do), service accounts and their
 * OAuth clients, registered service keys, invitations, role changes, custom roles, grants and peer grants all check
 * it here, with one error shape: every missing permission, in catalog order (`missing`), the first as `permission`.
 */

/** The permissions of `wanted` that `held` lacks, in catalog order (unknown names dropped). */
export function missingFrom(held: ReadonlySet<Permission>, wanted: Iterable<string>): Permission[] {
  const want = wanted instanceof Set ? (wanted as ReadonlySet<string>) : new Set(wanted);
  return ALL_PERMISSIONS.filter((p) => want.has(p) && !held.has(p));
}

export interface WithinOptions {
  /** What would hold the permissions: "A key", "The service account", "The role developer". */
  subject: string;
  /** Whose permissions bound it; "you" by default. */
  holder?: string;
  /** The error to answer with: 403 FORBIDDEN by default; a module may name its own 403 code. */
  error?: (detail: string, options: AppErrorOptions) => AppError;
  field?: string;
  /** A sentence after the detail: why the holder holds what it does ("Only what a member's role gives is passed on."). */
  note?: string;
}

/**
 * Throws 403 unless `holder` (a membership: what it may do now, narrowing included; or a permission set) holds every
 * permission in `wanted`. The detail names each missing permission.
 */
export function requireWithin(holder: OrgMembership | ReadonlySet<Permission>, wanted: Iterable<string>, opts: WithinOptions): void {
  const held = holder instanceof Set ? (holder as ReadonlySet<Permission>) : (holder as OrgMembership).permissions;
  const missing = missingFrom(held, wanted);
  if (!missing.length) return;
  const who = opts.holder ?? "you";
  const detail = `${opts.subject} cannot hold more than ${who} ${who === "you" ? "do" : "does"}: it would have ${missing.join(", ")}, which ${who} ${who === "you" ? "do" : "does"} not have.${opts.note ? ` ${opts.note}` : ""}`;
  const options: AppErrorOptions = { field: opts.field, extra: { permission: missing[0], missing } };
  throw opts.error ? opts.error(detail, options) : platformError("FORBIDDEN", detail, options);
}

const ROLE_PERMS = new Map<string, ReadonlySet<Permission>>(Object.entries(BUILT_IN_ROLES).map(([name, r]) => [name, new Set<Permission>(r.permissions)]));

/** A built-in role's permissions (empty for any other name). */
export function builtInRolePermissions(role: string): ReadonlySet<Permission> {
  return ROLE_PERMS.get(role) ?? EMPTY;
}
const EMPTY: ReadonlySet<Permission> = new Set();

/**
 * Role → permissions, the one resolution: a built-in role's, or the org's custom role's (read in the caller's
 * transaction). Undefined when the org has no such role.
 */
export async function permissionsOfRole(
  ex: Executor,
  orgId: string,
  role: string,
  customRole: (ex: Executor, orgId: string, role: string) => Promise<readonly string[] | undefined>,
): Promise<ReadonlySet<Permission> | undefined> {
  if (isBuiltInRole(role)) return ROLE_PERMS.get(role);
  return customRolePermissions(await customRole(ex, orgId, role));
}

/**
 * `permissionsOfRole` for custom roles already read (a key's row carries the definitions of its roles): the built-in
 * role's permissions, the named custom role's, or undefined when neither.
 */
export function permissionsOfRoleIn(
  role: string,
  customRoles: readonly { name: string; permissions: readonly string[] }[] | null | undefined,
): ReadonlySet<Permission> | undefined {
  if (isBuiltInRole(role)) return ROLE_PERMS.get(role);
  return customRolePermissions(customRoles?.find((c) => c.name === role)?.permissions);
}

/**
 * The union of `roles`' permissions (`permissionsOfRoleIn` each; a role that no longer exists gives none) and the
 * listed `extra` ones: what a key or a registered service key holds from its row.
 */
export function permissionsOfRolesIn(
  roles: readonly string[],
  customRoles: readonly { name: string; permissions: readonly string[] }[] | null | undefined,
  extra: readonly string[] = [],
): Set<Permission> {
  const out = new Set<Permission>();
  for (const role of roles) for (const p of permissionsOfRoleIn(role, customRoles) ?? []) out.add(p);
  for (const p of extra) if (isPermission(p)) out.add(p);
  return out;
}

/** A custom role's stored names as permissions: names no longer in the catalog are dropped, never widened into. */
function customRolePermissions(names: readonly string[] | undefined): ReadonlySet<Permission> | undefined {
  return names ? new Set(names.filter(isPermission)) : undefined;
}

/**
 * Whether a membership acts in a role by name (owner-only rules: inviting owners, changing an owner, the
 * impersonation setting, inheriting keys). A narrowed credential (a key with its own permissions, an exchanged token,
 * an owner acting as a member) never does: its membership carries its owner's role name for messages only.
 */
export function actsAsRole(m: OrgMembership, role: string): boolean {
  return m.role === role && !m.permissionsOnly;
}
