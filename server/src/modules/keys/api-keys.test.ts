import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { sql } from "drizzle-orm";
import type { LightMyRequestResponse } from "fastify";
import {
  BACKENDS,
  addMember,
  assertFieldError,
  assertProblem,
  createTestApp,
  makeOrg,
  problemOf,
  signUp,
  uniqueSlug,
  type TestApp,
  type TestUser,
} from "../../../test/harness.ts";

const SECRET = /^plk_live_[0-9A-Za-z]{38}$/;

for (const backend of BACKENDS) {
  describe(`API keys: management (${backend})`, () => {
    let t: TestApp;
    let owner: TestUser;
    let dev: TestUser;
    let viewer: TestUser;
    let admin: TestUser;
    let orgId: string;
    before(async () => {
      t = await createTestApp({ backend, worker: false });
      owner = await signUp(t, "Olivia Owner");
      dev = await signUp(t, "Dev");
      viewer = await signUp(t, "Viewer");
      admin = await signUp(t, "Admin");
      orgId = await makeOrg(t, owner, "Keys Inc", uniqueSlug("keys"));
      for (const [u, role] of [
        [dev, "developer"],
        [viewer, "viewer"],
        [admin, "admin"],
      ] as const)
        await addMember(t, orgId, u, role);
    });
    after(() => t.close());

    const keys = (path = "") => `/v1/orgs/${orgId}/keys${path}`;
    const create = (user: TestUser, body: Record<string, unknown>) => t.call("POST", keys(), body, user.access_token);
    type Diff = Record<string, unknown[] | unknown>;
    const events = async () => (await t.deps.audit.list(orgId, {}, 1000)).map((e) => ({ ...e, diff: e.diff as Diff }));
    const keyRows = async () =>
      ((await t.db.owner.execute(sql`select * from api_keys where org_id = ${orgId} order by id`)) as unknown as { rows: unknown[] }).rows;
    const uniqueName = (tag = "k") => `${tag}-${randomBytes(4).toString("hex")}`;

    it("creates a key with its secret shown once: never in the list, get, database or audit log", async () => {
      const name = uniqueName("ci deploy");
      const res = await create(dev, {
        name,
        roles: ["viewer"],
        permissions: ["secrets:read"],
        rate_limit_per_minute: 100,
        ip_allowlist: ["10.0.0.0/8", "2001:db8::/32"],
      });
      assert.equal(res.statusCode, 201, res.body);
      const k = res.json();
      assert.match(k.secret, SECRET);
      assert.match(k.id, /^key_[0-9a-z]{26}$/);
      assert.equal(k.prefix, k.secret.slice(0, 15));
      assert.deepEqual(k.owner, { type: "user", id: dev.id });
      assert.deepEqual([k.roles, k.permissions, k.inherit, k.state], [["viewer"], ["secrets:read"], false, "active"]);
      assert.equal(k.created_by, dev.id);
      const list = await t.call("GET", keys(), undefined, viewer.access_token);
      assert.equal(list.statusCode, 200, list.body);
      const listed = list.json().items.find((x: { id: string }) => x.id === k.id);
      const { secret, ...withoutSecret } = k;
      assert.deepEqual(listed, withoutSecret);
      const got = await t.call("GET", keys(`/${encodeURIComponent(name)}`), undefined, dev.access_token);
      assert.deepEqual(got.json(), withoutSecret);
      assert.deepEqual((await t.call("GET", keys(`/${k.id}`), undefined, viewer.access_token)).json(), withoutSecret);
      for (const body of [list.body, got.body, JSON.stringify(await keyRows()), JSON.stringify(await events())])
        assert.ok(!body.includes(secret), "the secret leaked");
      const ev = (await events()).find((e) => e.action === "key.created" && e.targetId === k.id);
      assert.ok(ev);
      assert.equal(ev.actorId, dev.id);
      assert.deepEqual(ev.diff.name, [null, name]);
      assert.deepEqual(ev.diff.roles, [null, ["viewer"]]);
    });

    it("refuses a key with more than its creator holds: 403 naming the first missing permission, nothing created", async () => {
      const before = await keyRows();
      assertProblem(await create(dev, { name: uniqueName(), roles: ["admin"] }), 403, "FORBIDDEN", { permission: "org:update" });
      assertProblem(await create(dev, { name: uniqueName(), roles: ["viewer"], permissions: ["members:remove"] }), 403, "FORBIDDEN", {
        permission: "members:remove",
      });
      assertProblem(await create(viewer, { name: uniqueName(), roles: ["viewer"] }), 403, "FORBIDDEN", { permission: "keys:create" });
      assert.deepEqual(await keyRows(), before);
    });

    it("inherit: only owners and admins, without roles or permissions", async () => {
      assertProblem(await create(dev, { name: uniqueName(), inherit: true }), 403, "INHERIT_NOT_ALLOWED");
      assertFieldError(await create(admin, { name: uniqueName(), inherit: true, roles: ["viewer"] }), "inherit");
      const res = await create(admin, { name: uniqueName(), inherit: true });
      assert.equal(res.statusCode, 201, res.body);
      assert.deepEqual([res.json().inherit, res.json().roles], [true, []]);
      const name = res.json().name;
      assertProblem(await t.call("PUT", keys(`/${name}/roles`), { roles: ["viewer"] }, admin.access_token), 409, "API_KEY_INHERITS");
    });

    it("names are unique per owner (409), the same name may belong to several owners, and a name resolves to your own key first", async () => {
      const name = uniqueName("shared");
      assert.equal((await create(dev, { name, roles: ["viewer"] })).statusCode, 201);
      assertProblem(await create(dev, { name, roles: ["viewer"] }), 409, "API_KEY_NAME_TAKEN", { field: "name" });
      const adminKey = await create(admin, { name, roles: ["viewer"] });
      assert.equal(adminKey.statusCode, 201);
      assert.equal((await t.call("GET", keys(`/${name}`), undefined, admin.access_token)).json().owner.id, admin.id);
      assert.equal((await t.call("GET", keys(`/${name}`), undefined, dev.access_token)).json().owner.id, dev.id);
      assertProblem(await t.call("GET", keys(`/${name}`), undefined, viewer.access_token), 409, "API_KEY_NAME_AMBIGUOUS");
      assert.equal((await t.call("GET", keys(`/${adminKey.json().id}`), undefined, viewer.access_token)).statusCode, 200);
      assertProblem(await t.call("GET", keys("/no-such-key"), undefined, viewer.access_token), 404, "API_KEY_NOT_FOUND");
    });

    it("renames (audited key.updated; 409 on a taken name) and only the owner or keys:manage may change a key", async () => {
      const k = (await create(dev, { name: uniqueName(), roles: ["viewer"] })).json();
      const taken = (await create(dev, { name: uniqueName(), roles: ["viewer"] })).json();
      const newName = uniqueName("renamed");
      const res = await t.call("PATCH", keys(`/${k.id}`), { name: newName }, dev.access_token);
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(res.json().name, newName);
      const ev = (await events()).find((e) => e.action === "key.updated" && e.targetId === k.id);
      assert.deepEqual(ev?.diff, { name: [k.name, newName] });
      assertProblem(await t.call("PATCH", keys(`/${k.id}`), { name: taken.name }, dev.access_token), 409, "API_KEY_NAME_TAKEN");
      // an owner's key is not the developer's: keys:manage needed
      const ownerKey = (await create(owner, { name: uniqueName(), roles: ["viewer"] })).json();
      assertProblem(await t.call("PATCH", keys(`/${ownerKey.id}`), { name: uniqueName() }, dev.access_token), 403, "FORBIDDEN", { permission: "keys:manage" });
      assertProblem(await t.call("DELETE", keys(`/${ownerKey.id}`), undefined, dev.access_token), 403, "FORBIDDEN", { permission: "keys:manage" });
      // the admin holds keys:manage
      assert.equal((await t.call("PATCH", keys(`/${k.id}`), { name: uniqueName() }, admin.access_token)).statusCode, 200);
    });

    it("GET|PUT …/roles: replaces roles within what the caller holds, audited key.roles_changed", async () => {
      const k = (await create(dev, { name: uniqueName(), roles: ["viewer"] })).json();
      const got = await t.call("GET", keys(`/${k.name}/roles`), undefined, viewer.access_token);
      assert.deepEqual(got.json(), { roles: ["viewer"], permissions: [], inherit: false });
      const put = await t.call("PUT", keys(`/${k.name}/roles`), { roles: ["developer"] }, dev.access_token);
      assert.equal(put.statusCode, 200, put.body);
      assert.deepEqual(put.json().roles, ["developer"]);
      const ev = (await events()).find((e) => e.action === "key.roles_changed" && e.targetId === k.id);
      assert.deepEqual(ev?.diff, { roles: [["viewer"], ["developer"]] });
      assertProblem(await t.call("PUT", keys(`/${k.name}/roles`), { roles: ["admin"] }, dev.access_token), 403, "FORBIDDEN", { permission: "org:update" });
      assertFieldError(await t.call("PUT", keys(`/${k.name}/roles`), { roles: ["no-such-role"] }, dev.access_token), "roles.0");
      assertFieldError(await t.call("PUT", keys(`/${k.name}/roles`), { roles: [] }, dev.access_token), "roles");
      assert.deepEqual((await t.call("GET", keys(`/${k.id}/roles`), undefined, dev.access_token)).json().roles, ["developer"]);
    });

    it("POST …/$rotate gives a new secret, audited key.rotated without it", async () => {
      const k = (await create(dev, { name: uniqueName(), roles: ["viewer"] })).json();
      const res = await t.call("POST", keys(`/${k.name}/$rotate`), { grace_seconds: 30 }, dev.access_token);
      assert.equal(res.statusCode, 200, res.body);
      const r = res.json();
      assert.match(r.secret, SECRET);
      assert.notEqual(r.secret, k.secret);
      assert.equal(r.prefix, r.secret.slice(0, 15));
      assert.ok(r.previous_secret_expires_at);
      const again = await t.call("POST", keys(`/${k.id}/$rotate`), {}, dev.access_token);
      assert.equal(again.statusCode, 200, again.body);
      // the literal segment is matched as sent
      assertProblem(await t.call("POST", keys(`/${k.id}/%24rotate`), {}, dev.access_token), 404, "ROUTE_NOT_FOUND");
      const ev = (await events()).filter((e) => e.action === "key.rotated" && e.targetId === k.id);
      assert.equal(ev.length, 2);
      assert.equal((ev.find((e) => e.diff.grace_seconds === 30)!.diff.prefix as string[])[0], k.prefix);
      assert.ok(!JSON.stringify(ev).includes(r.secret));
      const doc = t.app.swagger() as { paths: Record<string, Record<string, { operationId?: string }>> };
      assert.equal(doc.paths["/v1/orgs/{orgId}/keys/{name}/$rotate"]?.post?.operationId, "rotateApiKey");
    });

    it("DELETE revokes (soft): listed only with include_revoked, name free again, idempotent, audited key.revoked", async () => {
      const name = uniqueName();
      const k = (await create(dev, { name, roles: ["viewer"] })).json();
      const res = await t.call("DELETE", keys(`/${name}`), undefined, dev.access_token);
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(res.json().state, "revoked");
      assert.equal(res.json().revoked_reason, "revoked");
      const live = (await t.call("GET", keys("?limit=200"), undefined, dev.access_token)).json().items.map((x: { id: string }) => x.id);
      assert.ok(!live.includes(k.id));
      const all = (await t.call("GET", keys("?include_revoked=true&limit=200"), undefined, dev.access_token)).json().items.map((x: { id: string }) => x.id);
      assert.ok(all.includes(k.id));
      assert.equal((await t.call("DELETE", keys(`/${k.id}`), undefined, dev.access_token)).statusCode, 200);
      assertProblem(await t.call("PATCH", keys(`/${k.id}`), { name: uniqueName() }, dev.access_token), 409, "API_KEY_REVOKED");
      assertProblem(await t.call("POST", keys(`/${k.id}/$rotate`), {}, dev.access_token), 409, "API_KEY_REVOKED");
      assert.equal((await create(dev, { name, roles: ["viewer"] })).statusCode, 201, "the name is free again");
      assert.equal((await events()).filter((e) => e.action === "key.revoked" && e.targetId === k.id).length, 1);
      // a viewer (keys:read) may revoke their own key? they have none; someone else's needs keys:manage
      assertProblem(await t.call("DELETE", keys(`/${name}`), undefined, viewer.access_token), 403, "FORBIDDEN", { permission: "keys:manage" });
    });

    it("lists page by page with a cursor", async () => {
      const all = (await t.call("GET", keys("?include_revoked=true&limit=200"), undefined, owner.access_token)).json().items as { id: string }[];
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const page: LightMyRequestResponse = await t.call(
          "GET",
          keys(`?include_revoked=true&limit=2${cursor ? `&cursor=${cursor}` : ""}`),
          undefined,
          owner.access_token,
        );
        assert.equal(page.statusCode, 200, page.body);
        seen.push(...page.json().items.map((x: { id: string }) => x.id));
        cursor = page.json().next_cursor;
      } while (cursor);
      assert.deepEqual(
        seen,
        all.map((x) => x.id),
      );
    });

    const badCreate: [string, Record<string, unknown>, string][] = [
      ["an empty name", { name: "" }, "name"],
      ["a name with a leading space", { name: " ci" }, "name"],
      ["a 65-character name", { name: "n".repeat(65) }, "name"],
      ["a name with a slash", { name: "a/b" }, "name"],
      ["a missing name", { name: undefined }, "name"],
      ["an unknown role", { roles: ["nope-role"] }, "roles.0"],
      ["a malformed role", { roles: ["Bad Role"] }, "roles.0"],
      ["an unknown permission", { permissions: ["keys:fly"] }, "permissions.0"],
      ["neither roles nor permissions", { roles: undefined }, "roles"],
      ["an expiry in the past", { expires_at: "2001-01-01T00:00:00Z" }, "expires_at"],
      ["an expiry before not_before", { not_before: "2999-01-02T00:00:00Z", expires_at: "2999-01-01T00:00:00Z" }, "expires_at"],
      ["a malformed expiry", { expires_at: "tomorrow" }, "expires_at"],
      ["a bad CIDR", { ip_allowlist: ["10.0.0.0/33"] }, "ip_allowlist.0"],
      ["a hostname in the allowlist", { ip_allowlist: ["10.0.0.1", "example.com"] }, "ip_allowlist.1"],
      ["a zero rate limit", { rate_limit_per_minute: 0 }, "rate_limit_per_minute"],
      ["a fractional rate limit", { rate_limit_per_minute: 1.5 }, "rate_limit_per_minute"],
      ["inherit as a string", { inherit: "yes" }, "inherit"],
      ["an unknown field", { owner_id: "usr_x" }, "owner_id"],
    ];
    for (const [label, patch, field] of badCreate) {
      it(`POST …/keys refuses ${label} with 400 naming ${field}, creating nothing`, async () => {
        const before = await keyRows();
        const body: Record<string, unknown> = { name: uniqueName(), roles: ["viewer"], ...patch };
        for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
        assertFieldError(await create(owner, body), field);
        assert.deepEqual(await keyRows(), before);
      });
    }

    it("every other route refuses bad input with 400 naming the field, changing nothing", async () => {
      const k = (await create(dev, { name: uniqueName(), roles: ["viewer"] })).json();
      const before = await keyRows();
      const eventsBefore = (await events()).length;
      const cases: [string, string, unknown, string][] = [
        ["PATCH", `/${k.id}`, {}, "body"],
        ["PATCH", `/${k.id}`, { name: "" }, "name"],
        ["PATCH", `/${k.id}`, { name: "x", extra: 1 }, "extra"],
        ["PUT", `/${k.id}/roles`, {}, "roles"],
        ["PUT", `/${k.id}/roles`, { roles: "viewer" }, "roles"],
        ["PUT", `/${k.id}/roles`, { roles: ["viewer", "viewer"] }, "roles"],
        ["POST", `/${k.id}/$rotate`, { grace_seconds: -1 }, "grace_seconds"],
        ["POST", `/${k.id}/$rotate`, { grace_seconds: 7 * 86_400 + 1 }, "grace_seconds"],
        ["POST", `/${k.id}/$rotate`, { secret: "mine" }, "secret"],
        ["GET", "?limit=0", undefined, "limit"],
        ["GET", "?include_revoked=maybe", undefined, "include_revoked"],
        ["GET", "?cursor=bm90LWFuLWlk", undefined, "cursor"],
        ["GET", "?sort=name", undefined, "sort"],
        ["GET", `/${"n".repeat(65)}`, undefined, "name"],
        ["DELETE", "/bad%2Fname", undefined, "name"],
        ["GET", "/bad%24name/roles", undefined, "name"],
      ];
      for (const [method, path, body, field] of cases) {
        const res = await t.call(method, keys(path), body, dev.access_token);
        assert.equal(res.statusCode, 400, `${method} ${path}: ${res.body}`);
        const p = problemOf(res);
        const fields = [...(p.errors ?? []).map((e) => e.field), p.field];
        assert.ok(fields.includes(field), `${method} ${path}: expected ${field} in ${res.body}`);
      }
      assert.deepEqual(await keyRows(), before);
      assert.equal((await events()).length, eventsBefore);
    });
  });
}
