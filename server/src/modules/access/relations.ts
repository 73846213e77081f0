import { isPermission, type Permission } from "./permissions.ts";

/**
 * Relations a subject can hold on a resource, from strongest to weakest. A stronger relation includes the weaker
 * ones it lists: `owner` everything, `admin` everything but ownership, `write` and `delete` and `share` each include
 * `read`, and `read` includes `list`.
 */
export const RELATIONS = ["owner", "admin", "share", "write", "delete", "read", "list"] as const;
export type Relation = (typeof RELATIONS)[number];

/** The relations that can be granted by sharing (`owner` is held, e.g. by a creator, and granted only by admins). */
export const SHARE_RELATIONS: readonly Relation[] = RELATIONS;

const INCLUDES: Record<Relation, readonly Relation[]> = {
  owner: RELATIONS,
  admin: ["admin", "share", "write", "delete", "read", "list"],
  share: ["share", "read", "list"],
  write: ["write", "read", "list"],
  delete: ["delete", "read", "list"],
  read: ["read", "list"],
  list: ["list"],
};

export function isRelation(value: string): value is Relation {
  return (RELATIONS as readonly string[]).includes(value);
}

/** Does holding `held` give `wanted`? */
export function includes(held: Relation, wanted: Relation): boolean {
  return INCLUDES[held].includes(wanted);
}

/** The relations that give `wanted` when held (`read`: read, write, delete, share, admin, owner). */
export function relationsIncluding(wanted: Relation): Relation[] {
  return RELATIONS.filter((held) => INCLUDES[held].includes(wanted));
}

/** The relations `held` gives, for narrowing and explanation. */
export function impliedBy(held: Relation): readonly Relation[] {
  return INCLUDES[held];
}

/**
 * Kinds of resource a grant can name, with the permission resource that covers all of them org-wide: a role holding
 * `conversations:read` reads every conversation of the org without a grant. Later modules add their types here.
 */
export const OBJECT_TYPES = {
  team: "teams",
  conversation: "conversations",
  secret: "secrets",
  api_key: "keys",
  service_account: "service-accounts",
  agent: "agents",
  project: "projects",
  document: "documents",
} as const;
export type ObjectType = keyof typeof OBJECT_TYPES;

export function isObjectType(value: string): value is ObjectType {
  return Object.hasOwn(OBJECT_TYPES, value);
}

/** Who a grant is to: a user, a team (and so the members of it and of its sub-teams), or every member of the org. */
export const SUBJECT_TYPES = ["user", "team", "org"] as const;
export type SubjectType = (typeof SUBJECT_TYPES)[number];

const ACTIONS_FOR: Record<Relation, readonly string[]> = {
  list: ["read"],
  read: ["read"],
  write: ["write", "update"],
  delete: ["delete"],
  share: ["manage"],
  admin: ["manage"],
  owner: [],
};

/**
 * The org-wide permissions that give `relation` on every resource of `type` (RBAC reaching a resource): only names
 * that exist in the catalog count. `grants:manage` gives `share` on any resource: managing who holds what.
 */
export function permissionsFor(type: ObjectType, relation: Relation): Permission[] {
  const out: Permission[] = [];
  for (const action of ACTIONS_FOR[relation]) {
    const p = `${OBJECT_TYPES[type]}:${action}`;
    if (isPermission(p)) out.push(p);
  }
  if (relation === "share") out.push("grants:manage");
  return out;
}
