/**
 * Fixtures of the tenant isolation suite (isolation.test.ts): one real resource of every kind an org-scoped route
 * takes an id of, made through the API; a snapshot of everything a tenant owns; and the id-carrying fields of a
 * request body, found from its schema, so that another tenant's ids can be put into them.
 */
import assert from "node:assert/strict";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { sql } from "drizzle-orm";
import { encodeCursor } from "../src/lib/pagination.ts";
import { newId } from "../src/lib/ids.ts";
import { signUp, uniqueEmail, type TestApp, type TestUser } from "./harness.ts";

/** A well-formed id with `prefix` that names nothing. */
export const fakeId = (prefix: string) => (prefix === "org" ? newId("org") : `${prefix}_${newId("request").slice(4)}`);

/** The part of a JSON schema the suite reads. */
export interface Schema {
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  minProperties?: number;
  anyOf?: Schema[];
  oneOf?: Schema[];
  enum?: unknown[];
  const?: unknown;
  default?: unknown;
  examples?: unknown[];
  format?: string;
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  items?: Schema;
  minItems?: number;
}

/** A tenant with one real resource of each kind, and everything of it another tenant must never see. */
export interface Tenant {
  orgId: string;
  owner: TestUser;
  /** A second member (viewer), in `teamId` and holding the grants. */
  member: TestUser;
  teamId: string;
  subTeamId: string;
  roleName: string;
  /** Path parameter name → this tenant's real ids for it. */
  params: Record<string, string[]>;
  /** Ids by object type (user, team, org), for an `{ type, id }` reference. */
  byType: Record<string, string[]>;
  /** Every id of the tenant's resources. */
  ids: string[];
  /** Names and emails of its members and resources, to search for. */
  names: string[];
  /** Its ids plus the names, emails and slug that are only its own. */
  secrets: string[];
}

/**
 * Gives `orgId` (owned by `owner`, who makes everything through the API) a team with a sub-team, a custom role, a
 * second member in the team, an invitation, a share grant, a peer grant, a pending grant request, keys, a service
 * account with a client, a service key and a team secret shared with the member.
 */
export async function seedTenant(t: TestApp, orgId: string, owner: TestUser, label: string): Promise<Tenant> {
  const tag = `${label.toLowerCase()}${randomBytes(4).toString("hex")}`;
  const post = async (path: string, body: unknown, status = 201, method = "POST") => {
    const res = await t.call(method, `/v1/orgs/${orgId}${path}`, body, owner.access_token);
    assert.equal(res.statusCode, status, `${method} ${path} for tenant ${label}: ${res.body}`);
    return res.json();
  };
  const member = await signUp(t, `Member ${tag}`);
  await t.db.owner.execute(sql`insert into memberships (org_id, user_id, role) values (${orgId}, ${member.id}, 'viewer')`);
  await t.deps.access.invalidate(orgId);

  const team = await post("/teams", { name: `Team ${tag}`, description: `About ${tag}` });
  const subTeam = await post("/teams", { name: `Sub-team ${tag}`, parent_id: team.id });
  await post(`/teams/${team.id}/members/${member.id}`, { role: "member" }, 201, "PUT");
  const role = await post("/roles", { name: `role-${tag}`, description: `Role of ${tag}`, permissions: ["org:read", "teams:read"] });
  const email = uniqueEmail(`invitee-${tag}`);
  const invitation = await post("/invitations", { email, role: role.name, teams: [team.id] });
  const grant = await post("/grants", { subject: { type: "user", id: member.id }, relation: "read", object: { type: "team", id: subTeam.id } });
  const peer = (await post("/peer-grants", { grantee_id: member.id, permissions: ["audit:read"] })).items[0];
  const request = await post("/grant-requests", { grantor_id: member.id, permissions: ["org:read"], reason: `Reason ${tag}` });
  const key = await post("/keys", { name: `key${tag}`, roles: ["viewer"] });
  const account = await post("/service-accounts", { name: `sa${tag}`, description: `Robot ${tag}`, roles: ["viewer"] });
  const client = await post(`/service-accounts/${account.id}/clients`, { name: `client${tag}` });
  const jwk = generateKeyPairSync("ed25519").publicKey.export({ format: "jwk" });
  const serviceKey = await post("/service-keys", {
    service: `svc-${tag}`,
    kid: `kid-${tag}`,
    alg: "EdDSA",
    jwk,
    roles: ["viewer"],
    description: `Service ${tag}`,
  });
  const secret = await post("/secrets", { name: `SECRET_${tag.toUpperCase()}`, value: `value of ${tag}`, description: `Secret ${tag}`, team_id: team.id });
  const lease = await post("/secret-leases", { secret_ids: [secret.id], ttl_seconds: 3600, max_ttl_seconds: 86_400 });
  // the secret shared with the member (a viewer, without secrets:read): a grant naming a secret of this tenant
  const secretGrant = await post("/grants", { subject: { type: "user", id: member.id }, relation: "read", object: { type: "secret", id: secret.id } });
  // what a resolve serves besides the team's: an org secret and the owner's personal one (GET …/secrets/resolve)
  const orgSecret = await post("/secrets", { name: `ORG_SECRET_${tag.toUpperCase()}`, value: `org value of ${tag}` });
  const personal = await post("/secrets", { name: `MY_SECRET_${tag.toUpperCase()}`, value: `personal value of ${tag}`, user_id: owner.id });
  // an integration connection (its token set a vault secret of kind oauth_connection); its token endpoint is never
  // called: the token is valid for a day, and only the tenant's own $refresh would call it
  const connection = await post("/connections", {
    provider: "jira",
    name: `Connection ${tag}`,
    token_url: "http://127.0.0.1:9/oauth/token",
    client_id: `client-${tag}`,
    access_token: `access token of ${tag}`,
    refresh_token: `refresh token of ${tag}`,
    expires_in: 86_400,
  });
  // a webhook endpoint (never called: the suite runs no worker) and a delivery to it, by $test
  const endpoint = await post("/webhooks/endpoints", { url: "http://127.0.0.1:9/hook", description: `Hook ${tag}` });
  const delivery = await post(`/webhooks/endpoints/${endpoint.id}/$test`, undefined, 202);
  // ingested events (never processed: the suite runs no worker), one naming the tenant in its id, type and data
  await post("/events:batch", { events: [{ id: `evt-${tag}`, type: `iso.${tag}`, data: { note: `Event of ${tag}` } }] }, 202);
  // a zero-knowledge vault of the owner's (the server cannot tell real material from random bytes of the right sizes),
  // with an entry, 2-of-2 shares held by the member and a second member, an open recovery request, shared with the second
  const b64 = (n: number) => randomBytes(n).toString("base64");
  const kdf = { algorithm: "argon2id", version: 19, memory_kib: 19456, iterations: 2, parallelism: 1, salt: b64(16) };
  await post("/zk-keys/me", { public_key: b64(32), encrypted_private_key: b64(72), kdf }, 200, "PUT");
  const holder = await signUp(t, `Holder ${tag}`);
  await t.db.owner.execute(sql`insert into memberships (org_id, user_id, role) values (${orgId}, ${holder.id}, 'viewer')`);
  await t.deps.access.invalidate(orgId);
  const zkVault = await post("/zk-vaults", {
    name: `Vault ${tag}`,
    kdf,
    passphrase_wrapped_key: b64(72),
    recovery_phrase_wrapped_key: b64(72),
    hardware_wrapped_key: b64(72),
    key_check: b64(32),
  });
  const zkEntry = await post(`/zk-vaults/${zkVault.id}/entries`, { name: `ZK_${tag.toUpperCase()}`, nonce: b64(24), ciphertext: b64(40), key_version: 1 });
  const zkShares = await post(
    `/zk-vaults/${zkVault.id}/shares`,
    { threshold: 2, key_version: 1, shares: [member, holder].map((h, i) => ({ holder_user_id: h.id, index: i + 1, sealed_share: b64(105) })) },
    200,
    "PUT",
  );
  const zkRequest = await post(`/zk-vaults/${zkVault.id}/recovery-requests`, { public_key: b64(32) });
  await post(`/zk-vaults/${zkVault.id}/members/${holder.id}`, { key_version: 1, sealed_key: b64(104) }, 200, "PUT");

  const params = {
    teamId: [team.id, subTeam.id],
    userId: [member.id, owner.id],
    roleId: [role.id],
    invitationId: [invitation.id],
    grantId: [grant.id, peer.id, secretGrant.id],
    requestId: [request.id],
    // an API key by name and by id
    name: [key.name, key.id],
    serviceAccountId: [account.id],
    clientId: [client.client_id],
    serviceKeyId: [serviceKey.id],
    secretId: [secret.id, orgSecret.id, personal.id, connection.secret_id],
    leaseId: [lease.id],
    vaultId: [zkVault.id],
    entryName: [zkEntry.name],
    shareId: zkShares.shares.map((x: { id: string }) => x.id),
    recoveryRequestId: [zkRequest.id],
    connectionId: [connection.id],
    endpointId: [endpoint.id],
    deliveryId: [delivery.id],
  };
  const byType = { user: [member.id, owner.id, holder.id], team: [team.id, subTeam.id], org: [orgId] };
  const ids = [
    orgId,
    ...Object.values(params)
      .flat()
      .filter((v) => v !== key.name),
  ];
  const names = [
    team.name,
    subTeam.name,
    `About ${tag}`,
    role.name,
    `Role of ${tag}`,
    email,
    member.email,
    `Member ${tag}`,
    owner.email,
    `Reason ${tag}`,
    key.name,
    account.name,
    `Robot ${tag}`,
    client.name,
    serviceKey.service,
    serviceKey.kid,
    `Service ${tag}`,
    secret.name,
    `Secret ${tag}`,
    `value of ${tag}`,
    orgSecret.name,
    personal.name,
    `org value of ${tag}`,
    `personal value of ${tag}`,
    `Connection ${tag}`,
    `client-${tag}`,
    `access token of ${tag}`,
    `refresh token of ${tag}`,
    `Vault ${tag}`,
    holder.email,
    `Holder ${tag}`,
    `Hook ${tag}`,
    `evt-${tag}`,
    `iso.${tag}`,
    `Event of ${tag}`,
    endpoint.secret,
  ];
  return {
    orgId,
    owner,
    member,
    teamId: team.id,
    subTeamId: subTeam.id,
    roleName: role.name,
    params,
    byType,
    ids,
    names,
    secrets: [...new Set([...ids, ...names])],
  };
}

/** Tenant tables and the columns that order their rows. */
const TENANT_TABLES: Record<string, string> = {
  memberships: "user_id",
  teams: "id",
  team_members: "team_id, user_id",
  custom_roles: "id",
  invitations: "id",
  grants: "id",
  grant_requests: "id",
  audit_events: "seq",
  audit_heads: "org_id",
  api_keys: "id",
  service_accounts: "id",
  oauth_clients: "id",
  service_keys: "id",
  vault_keks: "version",
  vault_secrets: "id",
  vault_secret_versions: "secret_id, version",
  vault_settings: "org_id",
  secret_leases: "id",
  integration_connections: "id",
  zk_user_keys: "user_id",
  zk_vaults: "id",
  zk_vault_members: "vault_id, user_id",
  zk_vault_entries: "vault_id, name",
  zk_vault_shares: "id",
  zk_recovery_requests: "id",
  zk_share_releases: "request_id, share_id",
  webhook_endpoints: "id",
  webhook_deliveries: "id",
  webhook_attempts: "id",
  ingest_events: "id",
  ingest_type_counts: "type",
  ingest_orgs: "org_id",
};

/** Every row the org owns: its profile, its tenant tables and its audit chain (with the chain's own verdict). */
export async function tenantState(t: TestApp, orgId: string) {
  const rows = async (table: string, order: string) => {
    const key = sql.raw(table === "orgs" ? "id" : "org_id");
    const res = await t.db.owner.execute(sql`select * from ${sql.raw(table)} where ${key} = ${orgId} order by ${sql.raw(order)}`);
    // usage bookkeeping (last_used_at, usage_count) is written in batches a few seconds after a credential's use,
    // by design: a request refused with 403 still used its credential, and that is all it may change, so it is left out
    return (res as unknown as { rows: Record<string, unknown>[] }).rows.map(({ last_used_at: _u, usage_count: _c, ...row }) => row);
  };
  const state: Record<string, unknown> = { orgs: await rows("orgs", "id") };
  for (const [table, order] of Object.entries(TENANT_TABLES)) state[table] = await rows(table, order);
  state.audit = await t.deps.audit.verify(orgId);
  return state;
}

/** The secrets that occur in `text`, except those the caller sent itself (an error may name the id it was given). */
export function leaked(text: string, secrets: readonly string[], sent: readonly string[] = []): string[] {
  return secrets.filter((s) => !sent.includes(s) && text.includes(s));
}

type Path = (string | number)[];
/** A string field that takes an id (or a role name): where it sits, the schemas on the way down, what may fill it. */
export interface IdSlot {
  path: Path;
  /** The schema at each step of `path`, the root's first. */
  schemas: Schema[];
  /** An id prefix (team, usr, …), "any" (any prefixed id), "role" (a role name), "text" (a search) or "cursor". */
  kind: string;
  /** The enum of a sibling `type` field: the reference says what kind of object it names. */
  typeEnum?: unknown[];
}

const ID_IN_PATTERN = /(?:^|[(|^])(\[a-z\]\+|[a-z]+)_\[0-9a-(?:hjkmnp-tv-)?z\]\{26\}/;
/** Fields that name a tenant's resource although their schema carries no id pattern (q: a search; cursor: a page's last id). */
const NAMED_FIELDS: Record<string, string> = {
  role: "role",
  parent_id: "team",
  grantee_id: "usr",
  grantor_id: "usr",
  subject_id: "any",
  object_id: "any",
  q: "text",
  cursor: "cursor",
};

/** Every field of `s` (optional ones too, array items as index 0) that takes an id or a role name. */
export function idSlots(s: Schema | undefined, path: Path = [], schemas: Schema[] = [], name = "", typeEnum?: unknown[]): IdSlot[] {
  if (!s) return [];
  const here = [...schemas, s];
  const branches = [...(s.anyOf ?? []), ...(s.oneOf ?? [])];
  if (branches.length) {
    const found = branches.flatMap((b) => idSlots(b, path, schemas, name, typeEnum));
    return found.filter((slot, i) => found.findIndex((o) => JSON.stringify(o.path) === JSON.stringify(slot.path)) === i);
  }
  const type = Array.isArray(s.type) ? s.type.find((x) => x !== "null") : s.type;
  if (type === "object" || s.properties) {
    return Object.entries(s.properties ?? {}).flatMap(([k, p]) => idSlots(p, [...path, k], here, k, k === "id" ? s.properties?.type?.enum : undefined));
  }
  if (type === "array") return idSlots(s.items, [...path, 0], here, name);
  if (type !== "string" || s.enum || s.const !== undefined) return [];
  const m = s.pattern ? ID_IN_PATTERN.exec(s.pattern) : null;
  const kind = m ? (m[1] === "[a-z]+" ? "any" : m[1]) : NAMED_FIELDS[name];
  return kind ? [{ path, schemas: here, kind, typeEnum }] : [];
}

/** `body` with `value` at the slot's path; missing containers on the way are sampled from their schemas by `sample`. */
export function withValue(body: unknown, slot: IdSlot, value: string, type: string | undefined, sample: (s: Schema) => unknown): unknown {
  const root = structuredClone(body ?? sample(slot.schemas[0]) ?? {}) as Record<string | number, unknown>;
  let node = root;
  for (let i = 0; i < slot.path.length - 1; i++) {
    const key = slot.path[i];
    if (node[key] === undefined || node[key] === null) {
      node[key] = sample(slot.schemas[i + 1]) ?? (typeof slot.path[i + 1] === "number" ? [] : {});
    }
    node = node[key] as Record<string | number, unknown>;
  }
  node[slot.path[slot.path.length - 1]] = value;
  if (type !== undefined) node.type = type;
  return root;
}

/**
 * The tenant's values that fit a slot, each with the `type` to set beside it (for `{ type, id }` references), or
 * undefined when the tenant has nothing of that kind (the caller fails naming the field).
 */
export function valuesFor(slot: IdSlot, tenant: Tenant): { value: string; type?: string }[] | undefined {
  if (slot.kind === "role") return [{ value: tenant.roleName }];
  if (slot.kind === "text") return tenant.names.map((value) => ({ value }));
  if (slot.kind === "cursor") return tenant.ids.map((id) => ({ value: encodeCursor(id) }));
  if (slot.typeEnum) {
    // kinds the tenant has nothing of (document, project…) are left out until they exist
    return slot.typeEnum.flatMap((type) => (tenant.byType[String(type)] ?? []).map((value) => ({ value, type: String(type) })));
  }
  if (slot.kind === "any") return tenant.ids.map((value) => ({ value }));
  const values = tenant.ids.filter((id) => id.startsWith(`${slot.kind}_`));
  return values.length ? values.map((value) => ({ value })) : undefined;
}

/** A value like `value` (of a slot of `kind`) that names nothing: the answer to it is what a missing resource gets. */
export function missingLike(kind: string, value: string): string {
  if (kind === "role") return `gone-${randomBytes(4).toString("hex")}`;
  if (kind === "text") return `nobody ${randomBytes(4).toString("hex")}`;
  if (kind === "cursor") return encodeCursor(missingLike("any", Buffer.from(value, "base64url").toString("utf8")));
  return fakeId(value.slice(0, value.indexOf("_")));
}
