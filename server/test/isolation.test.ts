/**
 * THE TENANT ISOLATION SUITE. Driven by the OpenAPI document: every operation under /v1/orgs/{orgId} is called by
 * nobody, by a stranger, by each built-in role and with malformed org ids, so a new org-scoped route is covered the
 * moment it is registered. If its body or path parameters cannot be derived from its schema, the suite fails naming
 * it: add an entry to EXAMPLE_BODIES / EXAMPLE_PARAMS below.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { sql } from "drizzle-orm";
import { newId } from "../src/lib/ids.ts";
import { BUILT_IN_ROLES, isPermission, type BuiltInRole, type Permission } from "../src/modules/access/permissions.ts";
import { BACKENDS, createTestApp, problemOf, signUp, type TestApp, type TestUser } from "./harness.ts";

/** What a body may need to know about the org it is sent to. */
interface OrgFacts {
  id: string;
  slug: string;
}
/** Bodies the schema cannot yield (keyed "METHOD /path" as in the OpenAPI document); a function gets the target org. */
const EXAMPLE_BODIES: Record<string, unknown> = {
  "DELETE /v1/orgs/{orgId}": (org: OrgFacts) => ({ confirm: org.slug }),
  // another member of the org: "{otherMember}" is replaced per caller
  "POST /v1/orgs/{orgId}/peer-grants": { grantee_id: "{otherMember}", permissions: ["org:read"] },
  "POST /v1/orgs/{orgId}/grant-requests": { grantor_id: "{otherMember}", permissions: ["org:read"] },
};
/** Path parameters other than orgId whose schema does not say what a valid one looks like. */
const EXAMPLE_PARAMS: Record<string, string> = {};

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
];
/** The org-scoped operations that exist today; the suite must find at least these. */
const KNOWN_ORG_OPERATIONS = ["getOrg", "updateOrg", "listRoles", "listAuditEvents", "exportAuditEvents"];
/** Least powerful first, so an operation that destroys the org (owner only) runs last. */
const ROLES: BuiltInRole[] = ["viewer", "developer", "admin", "owner"];
const BAD_ORG_IDS = ["org_x", "../etc", encodeURIComponent("../etc"), "ORG_01ARZ3NDEKTSV4RRFFQ69G5FAV", `org_${"a".repeat(300)}`, encodeURIComponent("org_' or '1'='1"), "org_%00"];

interface Schema {
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
interface Operation {
  operationId?: string;
  security?: unknown;
  "x-permission"?: string;
  parameters?: { in: string; name: string; required?: boolean; schema?: Schema }[];
  requestBody?: { content?: Record<string, { schema?: Schema }> };
}
interface Op {
  key: string;
  method: string;
  path: string;
  permission: Permission;
  op: Operation;
  /** Has path parameters besides orgId (a made-up id of those may answer the resource's own 404). */
  nested: boolean;
  body: unknown;
}

const CROCKFORD = /^\^([a-z]+)_\[0-9a-hjkmnp-tv-z\]\{26\}\$$/;
const fakeId = (prefix: string) => `${prefix}_${newId("request").slice(4)}`;

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
      return candidates.find((c) => c.length >= (s.minLength ?? 0) && c.length <= (s.maxLength ?? Infinity) && (!s.pattern || new RegExp(s.pattern, "u").test(c)));
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
      let nested = false;
      for (const [, name] of path.matchAll(/\{(\w+)\}/g)) {
        if (name === "orgId") continue;
        nested = true;
        const param = op.parameters?.find((p) => p.in === "path" && p.name === name);
        const value = EXAMPLE_PARAMS[name] ?? sample(param?.schema);
        if (typeof value !== "string") assert.fail(`cannot derive path parameter ${name} of ${key}: add it to EXAMPLE_PARAMS`);
        filled = filled.replace(`{${name}}`, encodeURIComponent(value));
      }
      const query = (op.parameters ?? []).filter((p) => p.in === "query" && p.required);
      const qs = query.map((p) => {
        const v = sample(p.schema);
        if (v === undefined) assert.fail(`cannot derive required query parameter ${p.name} of ${key}`);
        return `${p.name}=${encodeURIComponent(String(v))}`;
      });
      ops.push({ key, method, path: qs.length ? `${filled}?${qs.join("&")}` : filled, permission, op, nested, body: bodyFor(key, method, op) });
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
      const res = await t.call("POST", "/v1/orgs", { name: "Tenant A", slug }, owner.access_token);
      assert.equal(res.statusCode, 201, res.body);
      const id = res.json().id as string;
      slugs.set(id, slug);
      for (const role of ROLES.filter((r) => r !== "owner")) {
        await t.db.owner.execute(sql`insert into memberships (org_id, user_id, role) values (${id}, ${members[role].id}, ${role})`);
      }
      await t.deps.access.invalidate(id);
      return id;
    }
    /** Everything an outsider could have changed: the profile, the members, the audit chain. */
    async function snapshot(orgId: string) {
      const [org] = ((await t.db.owner.execute(sql`select * from orgs where id = ${orgId}`)) as unknown as { rows: unknown[] }).rows;
      const m = (await t.db.owner.execute(sql`select user_id, role from memberships where org_id = ${orgId} order by user_id`)) as unknown as { rows: unknown[] };
      const audit = await t.deps.audit.verify(orgId);
      return { org, members: m.rows, audit };
    }

    before(async () => {
      t = await createTestApp({ backend, worker: false });
      doc = t.app.swagger() as unknown as typeof doc;
      ops = orgScopedOperations(doc);
      owner = await signUp(t, "Owner");
      members.owner = owner;
      for (const role of ROLES.filter((r) => r !== "owner")) members[role] = await signUp(t, role);
      stranger = await signUp(t, "Stranger");
      orgA = await orgWithRoles();
      // org B: the stranger's, with a profile and audit history of its own
      const slugB = `tenant-b-${randomBytes(5).toString("hex")}`;
      const b = await t.call("POST", "/v1/orgs", { name: "Tenant B", slug: slugB }, stranger.access_token);
      assert.equal(b.statusCode, 201, b.body);
      orgB = b.json().id;
      slugs.set(orgB, slugB);
      for (const display_name of ["B one", "B two"]) assert.equal((await t.call("PATCH", `/v1/orgs/${orgB}`, { display_name }, stranger.access_token)).statusCode, 200);
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
          const res = await t.call(m.toUpperCase(), path.replace(/\{(\w+)\}/g, (_, n) => (n === "orgId" ? orgA : fakeId("x"))), {});
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

    it("malformed org ids answer 404 or 400, never 5xx", async () => {
      for (const o of ops) {
        for (const bad of BAD_ORG_IDS) {
          const res = await call(o, bad, owner);
          assert.ok([400, 404].includes(res.statusCode), `${o.key} with org id ${bad}: ${res.statusCode} ${res.body.slice(0, 200)}`);
          problemOf(res);
        }
      }
    });
  });
}
