/**
 * THE TENANT ISOLATION SUITE. Driven by the OpenAPI document: every operation under /v1/orgs/{orgId} is called by
 * nobody, by a stranger, by each built-in role and with malformed org ids, so a new org-scoped route is covered the
 * moment it is registered. If its body or path parameters cannot be derived from its schema, the suite fails naming
 * it: add an entry to EXAMPLE_BODIES / EXAMPLE_PARAMS below. Org A's owner also names org B's real resources (made in
 * isolation.fixtures.ts) in paths, bodies and list filters, and must get the answer a missing resource gets: a path
 * parameter or id field without an org B resource of its kind fails the suite naming it.
 */
import assert from "node:assert/strict";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { sql } from "drizzle-orm";
import type { LightMyRequestResponse } from "fastify";
import { newId } from "../src/lib/ids.ts";
import { BUILT_IN_ROLES, isPermission, type BuiltInRole, type Permission } from "../src/modules/access/permissions.ts";
import { BACKENDS, addMember, createTestApp, makeOrg, problemOf, signUp, type TestApp, type TestUser } from "./harness.ts";
import {
  fakeId,
  idSlots,
  leaked,
  missingLike,
  seedTenant,
  tenantState,
  valuesFor,
  withValue,
  type IdSlot,
  type Schema,
  type Tenant,
} from "./isolation.fixtures.ts";

/** What a body may need to know about the org it is sent to. */
interface OrgFacts {
  id: string;
  slug: string;
}
const b64 = (n: number) => randomBytes(n).toString("base64");
const zkKdf = () => ({ algorithm: "argon2id", version: 19, memory_kib: 19456, iterations: 2, parallelism: 1, salt: b64(16) });
/** Bodies the schema cannot yield (keyed "METHOD /path" as in the OpenAPI document); a function gets the target org. */
const EXAMPLE_BODIES: Record<string, unknown> = {
  "DELETE /v1/orgs/{orgId}": (org: OrgFacts) => ({ confirm: org.slug }),
  // another member of the org: "{otherMember}" is replaced per caller
  "POST /v1/orgs/{orgId}/peer-grants": { grantee_id: "{otherMember}", permissions: ["org:read"] },
  "POST /v1/orgs/{orgId}/grant-requests": { grantor_id: "{otherMember}", permissions: ["org:read"] },
  // a fresh name each time: names are unique per owner
  "POST /v1/orgs/{orgId}/keys": () => ({ name: `iso-${randomBytes(4).toString("hex")}`, roles: ["viewer"] }),
  "POST /v1/orgs/{orgId}/service-accounts": () => ({ name: `iso-${randomBytes(4).toString("hex")}`, roles: ["viewer"] }),
  "POST /v1/orgs/{orgId}/service-accounts/{serviceAccountId}/keys": () => ({ name: `iso-${randomBytes(4).toString("hex")}`, roles: ["viewer"] }),
  "PATCH /v1/orgs/{orgId}/service-accounts/{serviceAccountId}": { description: "changed by the isolation suite" },
  // a fresh key pair each time: a kid is registered once
  "POST /v1/orgs/{orgId}/service-keys": () => ({
    service: "iso-service",
    kid: `iso-${randomBytes(6).toString("hex")}`,
    alg: "EdDSA",
    jwk: generateKeyPairSync("ed25519").publicKey.export({ format: "jwk" }),
    roles: ["viewer"],
  }),
  "PATCH /v1/orgs/{orgId}/service-keys/{serviceKeyId}": { description: "changed by the isolation suite" },
  // a fresh env-var style name each time: names are unique per scope
  "POST /v1/orgs/{orgId}/secrets": () => ({ name: `ISO_${randomBytes(4).toString("hex").toUpperCase()}`, value: "isolation value" }),
  // a fresh org has no secrets to lease: a name that matches none is the answer a reader gets (422, not 400)
  "POST /v1/orgs/{orgId}/secret-leases": { names: ["ISO_NO_SUCH_SECRET"] },
  "PATCH /v1/orgs/{orgId}/vault": { rotation_days: 90 },
  // the SSRF guard resolves token_url's host: an address, as the test machine may have no DNS (never called)
  "POST /v1/orgs/{orgId}/connections": {
    provider: "jira",
    name: "iso connection",
    token_url: "http://127.0.0.1:9/oauth/token",
    client_id: "iso-client",
    access_token: "iso access token",
    refresh_token: "iso refresh token",
    expires_in: 86_400,
  },
  // the suite runs no worker: the endpoint is never called (127.0.0.1 is allowed in its config)
  "POST /v1/orgs/{orgId}/webhooks/endpoints": { url: "http://127.0.0.1:9/iso", description: "isolation endpoint" },
  "PATCH /v1/orgs/{orgId}/webhooks/endpoints/{endpointId}": { description: "changed by the isolation suite" },
  "POST /v1/orgs/{orgId}/webhooks/endpoints/{endpointId}/$replay-failed": { since: "2020-01-01T00:00:00.000Z" },
  // zero-knowledge material is random bytes of the right sizes to the server: Base64 of exact lengths
  "PUT /v1/orgs/{orgId}/zk-keys/me": () => ({ public_key: b64(32), encrypted_private_key: b64(72), kdf: zkKdf() }),
  "POST /v1/orgs/{orgId}/zk-vaults": () => ({
    name: "iso vault",
    kdf: zkKdf(),
    passphrase_wrapped_key: b64(72),
    recovery_phrase_wrapped_key: b64(72),
    hardware_wrapped_key: b64(72),
    key_check: b64(32),
  }),
  "PUT /v1/orgs/{orgId}/zk-vaults/{vaultId}/passphrase": () => ({ kdf: zkKdf(), passphrase_wrapped_key: b64(72) }),
  "POST /v1/orgs/{orgId}/zk-vaults/{vaultId}/entries": () => ({
    name: `ISO_${randomBytes(4).toString("hex").toUpperCase()}`,
    nonce: b64(24),
    ciphertext: b64(40),
    key_version: 1,
  }),
  "PUT /v1/orgs/{orgId}/zk-vaults/{vaultId}/entries/{entryName}": () => ({ nonce: b64(24), ciphertext: b64(40), key_version: 1 }),
  "PUT /v1/orgs/{orgId}/zk-vaults/{vaultId}/shares": () => ({
    threshold: 2,
    key_version: 1,
    shares: [
      { holder_user_id: "{otherMember}", index: 1, sealed_share: b64(105) },
      { holder_user_id: fakeId("usr"), index: 2, sealed_share: b64(105) },
    ],
  }),
  "POST /v1/orgs/{orgId}/zk-vaults/{vaultId}/recovery-requests": () => ({ public_key: b64(32) }),
  "POST /v1/orgs/{orgId}/zk-vaults/{vaultId}/shares/{shareId}/$release": () => ({ request_id: fakeId("zkr"), sealed_share: b64(105) }),
  "PUT /v1/orgs/{orgId}/zk-vaults/{vaultId}/members/{userId}": () => ({ key_version: 1, sealed_key: b64(104) }),
  // a fresh event id each time: an id sent before is a duplicate (202 either way)
  "POST /v1/orgs/{orgId}/events:batch": () => ({ events: [{ id: `iso-${randomBytes(6).toString("hex")}`, type: "iso.event", data: {} }] }),
  "POST /v1/orgs/{orgId}/zk-vaults/{vaultId}/$rotate": () => ({
    key_version: 2,
    kdf: zkKdf(),
    passphrase_wrapped_key: b64(72),
    recovery_phrase_wrapped_key: b64(72),
    hardware_wrapped_key: b64(72),
    key_check: b64(32),
    entries: [],
    members: [{ user_id: "{otherMember}", sealed_key: b64(104) }],
  }),
};
/**
 * Path parameters other than orgId whose schema does not say what a valid one looks like. Those that are a position
 * inside a resource (a secret's version number) rather than a tenant's resource keep this value when the suite puts
 * org B's resources into the path.
 */
const EXAMPLE_PARAMS: Record<string, string> = { version: "1" };
/**
 * Bodies whose id fields sit in a shape the schema leaves open (a check is a permission OR a relation with an object):
 * the base into which org B's ids are put.
 */
const FOREIGN_ID_BASES: Record<string, unknown> = {
  "POST /v1/orgs/{orgId}/access/check": { checks: [{ relation: "read", object: { type: "team", id: fakeId("team") } }] },
  "POST /v1/orgs/{orgId}/access/explain": { check: { relation: "read", object: { type: "team", id: fakeId("team") } } },
};

/** The /v1 routes that are public on purpose (sign-up, sign-in and the mail-link flows); everything else needs a token. */
const PUBLIC_ROUTES = [
  "POST /v1/auth/register",
  "POST /v1/auth/login",
  "POST /v1/auth/refresh",
  "POST /v1/auth/logout",
  "POST /v1/auth/verify-email",
  "POST /v1/auth/password-reset",
  "POST /v1/auth/password-reset/confirm",
  "POST /v1/auth/magic-link",
  "POST /v1/auth/magic-link/verify",
  "POST /v1/invitations/register",
  // OAuth clients authenticate in the request itself (client credentials, or the subject token of an exchange)
  "POST /v1/oauth/token",
  // services' public keys, for services to verify each other's tokens
  "GET /v1/service-keys/jwks.json",
];
/** The org-scoped operations that exist today; the suite must find at least these (one that disappears fails it). */
const KNOWN_ORG_OPERATIONS = [
  ...["getOrg", "updateOrg", "deleteOrg", "listAuditEvents", "exportAuditEvents"],
  ...["createTeam", "listTeams", "getTeamTree", "getTeam", "updateTeam", "deleteTeam", "moveTeam", "listTeamMembers", "putTeamMember", "removeTeamMember"],
  ...["listMembers", "getMember", "changeMemberRole", "removeMember", "leaveOrg"],
  ...["listRoles", "createRole", "getRole", "updateRole", "deleteRole"],
  ...["createInvitation", "createInvitations", "listInvitations", "getInvitation", "revokeInvitation", "resendInvitation"],
  ...["createGrant", "listGrants", "getGrant", "revokeGrant", "createPeerGrants", "listMyPeerGrants", "revokePeerGrant"],
  ...["createGrantRequest", "listGrantRequests", "getGrantRequest", "approveGrantRequest", "denyGrantRequest", "cancelGrantRequest"],
  ...["checkAccess", "explainAccess"],
  ...["createApiKey", "listApiKeys", "getApiKey", "updateApiKey", "getApiKeyRoles", "putApiKeyRoles", "rotateApiKey", "revokeApiKey"],
  ...[
    "createServiceAccount",
    "listServiceAccounts",
    "getServiceAccount",
    "updateServiceAccount",
    "disableServiceAccount",
    "enableServiceAccount",
    "deleteServiceAccount",
  ],
  ...["registerServiceKey", "listServiceKeys", "getServiceKey", "updateServiceKey", "revokeServiceKey"],
  ...["createOAuthClient", "listOAuthClients", "revokeOAuthClient", "createServiceAccountApiKey"],
  ...[
    "createSecret",
    "listSecrets",
    "getSecret",
    "updateSecret",
    "deleteSecret",
    "revealSecret",
    "listSecretVersions",
    "revealSecretVersion",
    "rollbackSecret",
    "resolveSecrets",
  ],
  ...["issueSecretLease", "listSecretLeases", "getSecretLease", "revealSecretLease", "renewSecretLease", "revokeSecretLease"],
  ...["putMyZkKey", "getMyZkKey", "getZkPublicKey", "createZkVault", "listZkVaults", "getZkVault", "setZkVaultPassphrase", "deleteZkVault"],
  ...["createZkEntry", "listZkEntries", "getZkEntry", "updateZkEntry", "deleteZkEntry"],
  ...["setZkVaultShares", "listHeldZkShares", "openZkRecoveryRequest", "getZkRecoveryRequest", "releaseZkShare"],
  ...["putZkVaultMember", "listZkVaultMembers", "rotateZkVault"],
  ...["getVaultKeys", "updateVaultKeys", "rotateVaultKey"],
  ...["createConnection", "listConnections", "getConnection", "revokeConnection", "refreshConnection", "getConnectionToken"],
];
/** Least powerful first, so an operation that destroys the org (owner only) runs last. */
const ROLES: BuiltInRole[] = ["viewer", "developer", "admin", "owner"];
const BAD_ORG_IDS = [
  "org_x",
  "../etc",
  encodeURIComponent("../etc"),
  "ORG_01ARZ3NDEKTSV4RRFFQ69G5FAV",
  `org_${"a".repeat(300)}`,
  encodeURIComponent("org_' or '1'='1"),
  "org_%00",
];

interface Operation {
  operationId?: string;
  security?: unknown;
  "x-permission"?: string;
  "x-mints-authority"?: boolean;
  "x-person-only"?: boolean;
  parameters?: { in: string; name: string; required?: boolean; schema?: Schema }[];
  requestBody?: { content?: Record<string, { schema?: Schema }> };
  responses?: Record<string, unknown>;
}
interface Op {
  key: string;
  method: string;
  path: string;
  permission: Permission;
  op: Operation;
  /** The path as the document has it, {orgId} and all. */
  route: string;
  /** The required query parameters, "?a=1" or "". */
  query: string;
  /** Path parameters besides orgId (a made-up id of those may answer the resource's own 404). */
  params: string[];
  nested: boolean;
  body: unknown;
}

const CROCKFORD = /^\^([a-z]+)_\[0-9a-hjkmnp-tv-z\]\{26\}\$$/;

/** A value that satisfies `s`, or undefined when the schema does not say enough. */
function sample(s: Schema | undefined): unknown {
  if (!s) return undefined;
  if (s.examples?.length) return s.examples[0];
  if (s.const !== undefined) return s.const;
  if (s.default !== undefined) return s.default;
  if (s.enum?.length) return s.enum[0];
  for (const branch of [...(s.anyOf ?? []), ...(s.oneOf ?? [])]) {
    const v = sample(branch);
    if (v !== undefined && v !== null) return v;
  }
  const type = Array.isArray(s.type) ? s.type.find((x) => x !== "null") : s.type;
  switch (type) {
    case "object": {
      const out: Record<string, unknown> = {};
      for (const k of s.required ?? []) {
        const v = sample(s.properties?.[k]);
        if (v === undefined) return undefined;
        out[k] = v;
      }
      return out;
    }
    case "array":
      return Array.from({ length: s.minItems ?? 0 }, () => sample(s.items));
    case "integer":
    case "number":
      return s.minimum ?? 1;
    case "boolean":
      return false;
    case "null":
      return null;
    case "string": {
      if (s.format === "email") return `isolation.${randomBytes(3).toString("hex")}@example.com`;
      if (s.format === "date-time") return new Date().toISOString();
      if (s.format === "uri") return "https://example.com/isolation";
      const id = s.pattern ? CROCKFORD.exec(s.pattern) : null;
      if (id) return fakeId(id[1]);
      const candidates = ["Isolation check", `iso-${randomBytes(4).toString("hex")}`, "x".repeat(s.minLength ?? 1)];
      return candidates.find(
        (c) => c.length >= (s.minLength ?? 0) && c.length <= (s.maxLength ?? Infinity) && (!s.pattern || new RegExp(s.pattern, "u").test(c)),
      );
    }
    default:
      return undefined;
  }
}

/** A minimal valid body: the required fields, or for a PATCH one harmless field. */
function bodyFor(key: string, method: string, op: Operation): unknown {
  if (!op.requestBody) return undefined;
  if (key in EXAMPLE_BODIES) return EXAMPLE_BODIES[key];
  const schema = op.requestBody.content?.["application/json"]?.schema;
  const fail = () => assert.fail(`cannot derive a request body for ${key} (${op.operationId}): add one to EXAMPLE_BODIES in server/test/isolation.test.ts`);
  if (!schema) return fail();
  const body = sample(schema) as Record<string, unknown> | undefined;
  if (body === undefined) return fail();
  if (typeof body === "object" && body !== null && Object.keys(body).length < (schema.minProperties ?? (method === "PATCH" ? 1 : 0))) {
    const props = Object.keys(schema.properties ?? {});
    const prefer = ["display_name", "description", "name", ...props].filter((p) => props.includes(p));
    const pick = prefer.find((p) => sample(schema.properties?.[p]) !== undefined);
    if (!pick) return fail();
    body[pick] = sample(schema.properties?.[pick]);
  }
  return body;
}

function orgScopedOperations(doc: { paths?: Record<string, Record<string, Operation>> }): Op[] {
  const ops: Op[] = [];
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    if (!path.startsWith("/v1/orgs/{orgId}")) continue;
    for (const [m, op] of Object.entries(item)) {
      if (!["get", "post", "put", "patch", "delete"].includes(m)) continue;
      const method = m.toUpperCase();
      const key = `${method} ${path}`;
      const permission = op["x-permission"] ?? "";
      assert.ok(isPermission(permission), `${key} declares x-permission ${JSON.stringify(op["x-permission"])}, not a known permission`);
      let filled = path.replace("{orgId}", ":orgId");
      const params: string[] = [];
      for (const [, name] of path.matchAll(/\{(\w+)\}/g)) {
        if (name === "orgId") continue;
        params.push(name);
        const param = op.parameters?.find((p) => p.in === "path" && p.name === name);
        const value = EXAMPLE_PARAMS[name] ?? sample(param?.schema);
        if (typeof value !== "string") assert.fail(`cannot derive path parameter ${name} of ${key}: add it to EXAMPLE_PARAMS`);
        filled = filled.replace(`{${name}}`, encodeURIComponent(value));
      }
      const required = (op.parameters ?? []).filter((p) => p.in === "query" && p.required);
      const qs = required.map((p) => {
        const v = sample(p.schema);
        if (v === undefined) assert.fail(`cannot derive required query parameter ${p.name} of ${key}`);
        return `${p.name}=${encodeURIComponent(String(v))}`;
      });
      const query = qs.length ? `?${qs.join("&")}` : "";
      ops.push({ key, method, path: filled + query, route: path, query, permission, op, params, nested: params.length > 0, body: bodyFor(key, method, op) });
    }
  }
  return ops;
}

for (const backend of BACKENDS) {
  describe(`tenant isolation (${backend})`, () => {
    let t: TestApp;
    let doc: { paths?: Record<string, Record<string, Operation>> };
    let ops: Op[];
    let owner: TestUser;
    let stranger: TestUser;
    const members = {} as Record<BuiltInRole, TestUser>;
    let orgA: string;
    let orgB: string;
    /** Org A's and org B's own resources (B's made by B's owner, the stranger). */
    let A: Tenant;
    let B: Tenant;

    const slugs = new Map<string, string>();
    /** The body for this org and caller: functions get the org, "{otherMember}" becomes a member other than the caller. */
    const bodyAs = (o: Op, orgId: string, user?: TestUser): unknown => {
      const body = typeof o.body === "function" ? o.body({ id: orgId, slug: slugs.get(orgId) ?? "unknown-org" }) : o.body;
      if (body === undefined) return undefined;
      const other = user === owner ? members.viewer.id : owner.id;
      return JSON.parse(JSON.stringify(body).replaceAll('"{otherMember}"', JSON.stringify(other)));
    };
    const call = (o: Op, orgId: string, user?: TestUser) => t.call(o.method, o.path.replace(":orgId", orgId), bodyAs(o, orgId, user), user?.access_token);
    /** Org A with the owner (its creator) and one member of each other built-in role. */
    async function orgWithRoles(): Promise<string> {
      const slug = `tenant-a-${randomBytes(5).toString("hex")}`;
      const id = await makeOrg(t, owner, "Tenant A", slug);
      slugs.set(id, slug);
      for (const role of ROLES.filter((r) => r !== "owner")) await addMember(t, id, members[role], role);
      return id;
    }
    /** Everything an outsider could have changed: the profile, every tenant table, the audit chain. */
    const snapshot = (orgId: string) => tenantState(t, orgId);
    /** Org A's rows must never come to name org B's resources (a grant on B's team, B's user in A's team…). */
    async function assertANamesNothingOfB(what: string) {
      const rows = JSON.stringify(await snapshot(orgA), (_, v: unknown) => (typeof v === "bigint" ? String(v) : v));
      assert.deepEqual(leaked(rows, B.ids), [], `${what}: org A's rows now name org B's resources`);
    }
    /** Path of `o` on `orgId` with these path parameters (and its required query). */
    const urlOf = (o: Op, orgId: string, values: Record<string, string>) =>
      o.route.replace(/\{(\w+)\}/g, (_, n: string) => encodeURIComponent(n === "orgId" ? orgId : values[n])) + o.query;
    /** What a caller learns from an answer: an error's status, code and field; a success's body, with `value` blanked. */
    const answerOf = (res: LightMyRequestResponse, value?: string) => {
      if (res.statusCode >= 400) {
        const p = problemOf(res);
        return { status: res.statusCode, code: p.code, field: p.field };
      }
      return { status: res.statusCode, body: value ? res.body.replaceAll(value, "<id>") : res.body };
    };

    before(async () => {
      // the fixtures' connection and webhook endpoint name 127.0.0.1 (never called): allowed as an operator would
      t = await createTestApp({ backend, worker: false, env: { PLINTH_OUTBOUND_ALLOW: "127.0.0.1" } });
      doc = t.app.swagger() as unknown as typeof doc;
      ops = orgScopedOperations(doc);
      owner = await signUp(t, "Owner");
      members.owner = owner;
      for (const role of ROLES.filter((r) => r !== "owner")) members[role] = await signUp(t, role);
      stranger = await signUp(t, "Stranger");
      orgA = await orgWithRoles();
      // org B: the stranger's, with a profile and audit history of its own
      const slugB = `tenant-b-${randomBytes(5).toString("hex")}`;
      orgB = await makeOrg(t, stranger, "Tenant B", slugB);
      slugs.set(orgB, slugB);
      for (const display_name of ["B one", "B two"])
        assert.equal((await t.call("PATCH", `/v1/orgs/${orgB}`, { display_name }, stranger.access_token)).statusCode, 200);
      B = await seedTenant(t, orgB, stranger, "B");
      B.secrets.push(slugB, "Tenant B", "B one", "B two");
      A = await seedTenant(t, orgA, owner, "A");
    });
    after(() => t.close());

    it("finds every org-scoped operation of today, each with a known x-permission and bearer security", () => {
      const found = ops.map((o) => o.op.operationId);
      for (const id of KNOWN_ORG_OPERATIONS) assert.ok(found.includes(id), `${id} missing from ${found.join(", ")}`);
      assert.ok(ops.length >= KNOWN_ORG_OPERATIONS.length);
      for (const o of ops) assert.deepEqual(o.op.security, [{ bearerAuth: [] }], o.key);
      // the tenant hook (and this suite) recognise an org only as {orgId}: a route naming it otherwise would skip both
      const misnamed = Object.keys(doc.paths ?? {}).filter((p) => p.startsWith("/v1/orgs/{") && !/^\/v1\/orgs\/\{orgId\}(\/|$)/.test(p));
      assert.deepEqual(misnamed, [], "org-scoped paths must name the org {orgId}");
    });

    it("every /v1 operation needs a bearer token unless it is a listed public auth route", async () => {
      const seen = new Set<string>();
      for (const [path, item] of Object.entries(doc.paths ?? {})) {
        if (!path.startsWith("/v1/")) continue;
        for (const [m, op] of Object.entries(item)) {
          const key = `${m.toUpperCase()} ${path}`;
          seen.add(key);
          if (PUBLIC_ROUTES.includes(key)) {
            assert.equal(op.security, undefined, `${key} is public but declares security`);
            continue;
          }
          assert.deepEqual(op.security, [{ bearerAuth: [] }], `${key} must declare bearerAuth (or be listed in PUBLIC_ROUTES)`);
          // and the server agrees: without a token it answers 401 before anything else
          const res = await t.call(
            m.toUpperCase(),
            path.replace(/\{(\w+)\}/g, (_, n) => (n === "orgId" ? orgA : fakeId("x"))),
            {},
          );
          assert.equal(res.statusCode, 401, `${key} without a token: ${res.body}`);
        }
      }
      for (const key of PUBLIC_ROUTES) assert.ok(seen.has(key), `PUBLIC_ROUTES lists ${key}, which the document does not have`);
    });

    it("anonymous callers get 401 UNAUTHENTICATED on every org-scoped operation", async () => {
      for (const o of ops) {
        const res = await call(o, orgA);
        assert.equal(res.statusCode, 401, `${o.key}: ${res.body}`);
        assert.equal(problemOf(res).code, "UNAUTHENTICATED", o.key);
      }
    });

    it("a stranger gets 404 (never 403 or 2xx) on org A, the same answer as for no org at all, and A is unchanged", async () => {
      const before = await snapshot(orgA);
      const missing = newId("org");
      for (const o of ops) {
        const res = await call(o, orgA, stranger);
        assert.equal(res.statusCode, 404, `${o.key} as a stranger: ${res.body}`);
        const p = problemOf(res);
        const none = problemOf(await call(o, missing, stranger));
        assert.deepEqual([p.code, p.field], [none.code, none.field], `${o.key}: a stranger cannot tell a foreign org from a missing one`);
      }
      assert.deepEqual(await snapshot(orgA), before);
    });

    it("members of org A, whatever their role, get 404 on org B, and B is unchanged", async () => {
      const before = await snapshot(orgB);
      for (const o of ops) {
        for (const role of ROLES) {
          const res = await call(o, orgB, members[role]);
          assert.equal(res.statusCode, 404, `${o.key} as A's ${role} on org B: ${res.body}`);
          problemOf(res);
        }
      }
      assert.deepEqual(await snapshot(orgB), before);
    });

    it("each role gets 403 naming the permission exactly when its role lacks it, and is served otherwise", async () => {
      for (const o of ops) {
        const org = await orgWithRoles(); // a fresh org per operation: a destructive one cannot spoil the next
        for (const role of ROLES) {
          const res = await call(o, org, members[role]);
          const what = `${o.key} as ${role}: ${res.statusCode} ${res.body.slice(0, 300)}`;
          const allowed = (BUILT_IN_ROLES[role].permissions as readonly Permission[]).includes(o.permission);
          if (!allowed) {
            assert.equal(res.statusCode, 403, what);
            const p = problemOf(res) as ReturnType<typeof problemOf> & { permission?: string };
            assert.equal(p.code, "FORBIDDEN", what);
            assert.equal(p.permission, o.permission, what);
            continue;
          }
          assert.ok(![401, 403].includes(res.statusCode) && res.statusCode < 500, what);
          assert.notEqual(res.statusCode, 400, `${what} — the derived example is invalid: fix EXAMPLE_BODIES / EXAMPLE_PARAMS`);
          if (res.statusCode === 404) {
            // only a made-up nested resource may be missing; the org itself never is
            assert.ok(o.nested && problemOf(res).field !== "orgId", what);
          }
        }
      }
    });

    it("an impersonation token gets 403 (reason impersonation) on every operation that hands out lasting authority, and changes nothing", async () => {
      const minting = ops.filter((o) => o.op["x-mints-authority"]);
      assert.ok(minting.length >= 10, `only ${minting.length} operations say x-mints-authority`);
      const root = await signUp(t, "Platform admin");
      await t.db.owner.execute(sql`update users set is_platform_admin = true where id = ${root.id}`);
      const imp = await t.call(
        "POST",
        "/v1/impersonations",
        { user_id: owner.id, org_id: orgA, reason: "isolation suite", expires_in: 600 },
        root.access_token,
      );
      assert.equal(imp.statusCode, 201, imp.body);
      const asOwner = { ...owner, access_token: imp.json().access_token as string };
      const before = await snapshot(orgA);
      for (const o of minting) {
        const res = await t.call(o.method, o.path.replace(":orgId", orgA), bodyAs(o, orgA, owner), asOwner.access_token);
        assert.equal(res.statusCode, 403, `${o.key} through an impersonation: ${res.body}`);
        assert.equal((problemOf(res) as { reason?: string }).reason, "impersonation", o.key);
      }
      assert.deepEqual(await snapshot(orgA), before);
    });

    it("on every operation that acts on the person, API keys (inheriting or narrowed) and exchanged tokens get 403 person_only", async () => {
      const personal = ops.filter((o) => o.op["x-person-only"]);
      assert.ok(personal.length >= 1, "no operation says x-person-only");
      const key = async (body: Record<string, unknown>) => {
        const res = await t.call("POST", `/v1/orgs/${orgA}/keys`, { name: `iso-${randomBytes(4).toString("hex")}`, ...body }, members.developer.access_token);
        assert.equal(res.statusCode, 201, res.body);
        return res.json().secret as string;
      };
      const narrowed = await key({ roles: ["viewer"] });
      const exchanged = await t.inject({
        method: "POST",
        url: "/v1/oauth/token",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        payload: new URLSearchParams({
          grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
          subject_token: narrowed,
          subject_token_type: "urn:plinth:api-key",
        }).toString(),
      });
      assert.equal(exchanged.statusCode, 200, exchanged.body);
      const credentials: [string, string][] = [
        ["a narrowed key", narrowed],
        ["an exchanged token", exchanged.json().access_token as string],
      ];
      for (const o of personal) {
        for (const [what, secret] of credentials) {
          const res = await t.call(o.method, o.path.replace(":orgId", orgA), bodyAs(o, orgA, members.developer), secret);
          assert.equal(res.statusCode, 403, `${o.key} with ${what}: ${res.body}`);
          assert.equal((problemOf(res) as { reason?: string }).reason, "person_only", `${o.key} with ${what}`);
        }
      }
      const still = await t.call("GET", `/v1/orgs/${orgA}/members/${members.developer.id}`, undefined, owner.access_token);
      assert.equal(still.statusCode, 200, "the developer is still a member");
    });

    it("a key narrowed to org:read gets 403 naming the permission on every operation that needs another one", async () => {
      const res = await t.call(
        "POST",
        `/v1/orgs/${orgA}/keys`,
        { name: `iso-${randomBytes(4).toString("hex")}`, permissions: ["org:read"] },
        owner.access_token,
      );
      assert.equal(res.statusCode, 201, res.body);
      const secret = res.json().secret as string;
      const before = await snapshot(orgA);
      for (const o of ops.filter((x) => x.permission !== "org:read" && !x.op["x-person-only"])) {
        const r = await t.call(o.method, o.path.replace(":orgId", orgA), bodyAs(o, orgA, owner), secret);
        assert.equal(r.statusCode, 403, `${o.key} with an org:read key: ${r.body}`);
      }
      assert.deepEqual(await snapshot(orgA), before);
    });

    it("malformed org ids answer 404 or 400, never 5xx", async () => {
      for (const o of ops) {
        for (const bad of BAD_ORG_IDS) {
          const res = await call(o, bad, owner);
          assert.ok([400, 404].includes(res.statusCode), `${o.key} with org id ${bad}: ${res.statusCode} ${res.body.slice(0, 200)}`);
          problemOf(res);
        }
      }
    });

    it("org A's owner naming org B's resources in the path gets 404 like for missing ones, learns nothing of B, changes nothing", async () => {
      let calls = 0;
      for (const o of ops.filter((x) => x.nested)) {
        const before = await snapshot(orgB);
        for (const n of o.params) {
          if (!B.params[n] && !(n in EXAMPLE_PARAMS))
            assert.fail(`path parameter ${n} of ${o.key} has no org B resource: make one in seedTenant (server/test/isolation.fixtures.ts)`);
        }
        // every mix of B's ids with each other and with A's own (A's team, B's member), never A's alone
        let combos: { value: string; foreign: boolean }[][] = [[]];
        for (const n of o.params) {
          const choices = B.params[n]
            ? [...B.params[n].map((value) => ({ value, foreign: true })), { value: A.params[n][0], foreign: false }]
            : [{ value: EXAMPLE_PARAMS[n], foreign: false }];
          combos = combos.flatMap((c) => choices.map((x) => [...c, x]));
        }
        for (const combo of combos.filter((c) => c.some((x) => x.foreign))) {
          const values = Object.fromEntries(o.params.map((n, i) => [n, combo[i].value]));
          const res = await t.call(o.method, urlOf(o, orgA, values), bodyAs(o, orgA, owner), owner.access_token);
          const what = `${o.key} as A's owner with ${JSON.stringify(values)}: ${res.statusCode} ${res.body.slice(0, 300)}`;
          const documented = Object.keys(o.op.responses ?? {}).includes(String(res.statusCode));
          assert.ok(res.statusCode === 404 || ([400, 403].includes(res.statusCode) && documented), what);
          assert.deepEqual(leaked(res.body, B.secrets, Object.values(values)), [], `${what}: the answer shows org B's data`);
          const missing = Object.fromEntries(o.params.map((n, i) => [n, combo[i].foreign ? missingLike("any", combo[i].value) : combo[i].value]));
          const none = await t.call(o.method, urlOf(o, orgA, missing), bodyAs(o, orgA, owner), owner.access_token);
          assert.deepEqual(answerOf(res), answerOf(none), `${what}: org B's resource must look like a missing one`);
          calls++;
        }
        assert.deepEqual(await snapshot(orgB), before, `${o.key} changed org B`);
      }
      assert.ok(calls >= 25, `only ${calls} calls with org B's ids in the path`);
      await assertANamesNothingOfB("after org B's ids in paths");
    });

    /** Calls `o` on org A as its owner with each of org B's values in each slot, each answer beside a missing value's. */
    async function tryForeignValues(o: Op, slots: IdSlot[], send: (slot: IdSlot, value: string, type: string | undefined) => { url: string; body: unknown }) {
      let calls = 0;
      for (const slot of slots) {
        const field = slot.path.join(".");
        const candidates = valuesFor(slot, B);
        if (!candidates)
          assert.fail(`${o.key}: ${field} takes ${slot.kind}_… ids and org B has none: make one in seedTenant (server/test/isolation.fixtures.ts)`);
        for (const { value, type } of candidates) {
          const req = send(slot, value, type);
          const res = await t.call(o.method, req.url, req.body, owner.access_token);
          const what = `${o.key} as A's owner with org B's ${value} in ${field}: ${res.statusCode} ${res.body.slice(0, 300)}`;
          assert.ok(res.statusCode < 500, what);
          if (res.statusCode >= 300) {
            assert.ok([400, 403, 404, 409].includes(res.statusCode), what);
          } else {
            assert.ok(!res.body.includes('"allowed":true'), `${what}: A's owner is allowed on org B's resource`);
          }
          // the value sent may come back (an error naming it, a check repeating its question); nothing else of B may
          assert.deepEqual(leaked(res.body, B.secrets, [value]), [], `${what}: the answer shows org B's data`);
          if (slot.kind !== "cursor") {
            // (a cursor's id is a position: a missing one pages from elsewhere)
            const missing = missingLike(slot.kind, value);
            const other = send(slot, missing, type);
            const none = await t.call(o.method, other.url, other.body, owner.access_token);
            assert.deepEqual(answerOf(res, value), answerOf(none, missing), `${what}: org B's ${value} must look like a missing one`);
          }
          calls++;
        }
      }
      return calls;
    }

    it("org A's owner putting org B's ids into a body is refused like for missing ids, learns nothing of B, changes nothing", async () => {
      const before = await snapshot(orgB);
      let calls = 0;
      for (const o of ops.filter((x) => x.op.requestBody)) {
        const slots = idSlots(o.op.requestBody?.content?.["application/json"]?.schema);
        if (!slots.length) continue;
        // the path names A's own resources, so the body is what is judged
        const values = Object.fromEntries(
          o.params.map((n) => [n, A.params[n]?.[0] ?? assert.fail(`path parameter ${n} of ${o.key} has no org A resource in seedTenant`)]),
        );
        const base = FOREIGN_ID_BASES[o.key] ?? bodyAs(o, orgA, owner);
        calls += await tryForeignValues(o, slots, (slot, value, type) => ({ url: urlOf(o, orgA, values), body: withValue(base, slot, value, type, sample) }));
        assert.deepEqual(await snapshot(orgB), before, `${o.key} changed org B`);
      }
      assert.ok(calls >= 20, `only ${calls} calls with org B's ids in a body`);
      await assertANamesNothingOfB("after org B's ids in bodies");
    });

    it("org A's owner filtering lists by org B's ids, names or cursors finds nothing of B", async () => {
      const before = await snapshot(orgB);
      let calls = 0;
      for (const o of ops.filter((x) => x.method === "GET")) {
        const query = (o.op.parameters ?? []).filter((p) => p.in === "query");
        const schema: Schema = { type: "object", properties: Object.fromEntries(query.map((p) => [p.name, p.schema ?? {}])) };
        const slots = idSlots(schema);
        if (!slots.length) continue;
        const values = Object.fromEntries(
          o.params.map((n) => [n, A.params[n]?.[0] ?? assert.fail(`path parameter ${n} of ${o.key} has no org A resource in seedTenant`)]),
        );
        calls += await tryForeignValues(o, slots, (slot, value) => {
          const url = urlOf(o, orgA, values);
          return { url: `${url}${url.includes("?") ? "&" : "?"}${String(slot.path[0])}=${encodeURIComponent(value)}`, body: bodyAs(o, orgA, owner) };
        });
        assert.deepEqual(await snapshot(orgB), before, `${o.key} changed org B`);
      }
      assert.ok(calls >= 20, `only ${calls} calls with org B's values in a query`);
      await assertANamesNothingOfB("after org B's values in queries");
    });
  });
}
