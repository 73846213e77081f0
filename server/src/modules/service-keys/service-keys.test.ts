import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { sql } from "drizzle-orm";
import { BACKENDS, assertFieldError, assertProblem } from "../../../test/harness.ts";
import { keyPair, registration, serviceName, startKit, type Kit } from "./service-keys.test-kit.ts";

const PRIVATE = ["d", "p", "q", "dp", "dq", "qi", "k", "oth"];

for (const backend of BACKENDS) {
  describe(`service key registry (${backend})`, () => {
    let kit: Kit;
    before(async () => {
      kit = await startKit(backend);
    });
    after(() => kit.close());

    const base = (path = "") => `/v1/orgs/${kit.orgId}/service-keys${path}`;
    const events = async (orgId = kit.orgId) => await kit.t.deps.audit.list(orgId, {}, 1000);
    const rows = async () => ((await kit.t.db.owner.execute(sql`select * from service_keys order by id`)) as unknown as { rows: unknown[] }).rows;
    const register = async (body: Record<string, unknown>, token = kit.owner.access_token, url = base()) => {
      kit.clock.advance(1); // ids are ordered by the (manual) clock's millisecond
      const res = await kit.t.call("POST", url, body, token);
      assert.equal(res.statusCode, 201, res.body);
      return res.json();
    };

    it("registers, lists, gets, updates and revokes an organization's key, each audited, never showing private material", async () => {
      const service = serviceName("billing");
      const k = await keyPair("EdDSA");
      const key = await register(registration(service, k, { roles: ["viewer"], description: "Billing worker" }));
      assert.match(key.id, /^svk_[0-9a-z]{26}$/);
      assert.deepEqual(
        { org_id: key.org_id, service: key.service, kid: key.kid, alg: key.alg, roles: key.roles, state: key.state, created_by: key.created_by },
        { org_id: kit.orgId, service, kid: k.kid, alg: "EdDSA", roles: ["viewer"], state: "active", created_by: kit.owner.id },
      );
      assert.deepEqual(key.jwk, { kty: "OKP", crv: "Ed25519", x: k.jwk.x, kid: k.kid, alg: "EdDSA", use: "sig" });

      // kid and alg may come inside the JWK instead
      const k2 = await keyPair("ES256");
      const viaJwk = await register({ service, jwk: { ...k2.jwk, kid: k2.kid, alg: "ES256", use: "sig", key_ops: ["verify"], ext: true } });
      assert.deepEqual(Object.keys(viaJwk.jwk).sort(), ["alg", "crv", "kid", "kty", "use", "x", "y"]);

      const listed = await kit.t.call("GET", base(`?service=${service}`), undefined, kit.viewer.access_token);
      assert.equal(listed.statusCode, 200, "service-keys:read is every member's");
      assert.deepEqual(
        listed.json().items.map((x: { id: string }) => x.id),
        [key.id, viaJwk.id],
      );
      const page = await kit.t.call("GET", base(`?service=${service}&limit=1`), undefined, kit.viewer.access_token);
      assert.equal(page.json().items.length, 1);
      const rest = await kit.t.call("GET", base(`?service=${service}&cursor=${page.json().next_cursor}`), undefined, kit.viewer.access_token);
      assert.deepEqual(
        rest.json().items.map((x: { id: string }) => x.id),
        [viaJwk.id],
      );
      assert.equal((await kit.t.call("GET", base(`/${key.id}`), undefined, kit.dev.access_token)).json().description, "Billing worker");

      const up = await kit.t.call("PATCH", base(`/${key.id}`), { description: "Billing", roles: ["developer"] }, kit.admin.access_token);
      assert.equal(up.statusCode, 200, up.body);
      assert.deepEqual(up.json().roles, ["developer"]);
      const del = await kit.t.call("DELETE", base(`/${key.id}`), undefined, kit.admin.access_token);
      assert.equal(del.statusCode, 200, del.body);
      assert.equal(del.json().state, "revoked");
      assert.equal(del.json().revoked_by, kit.admin.id);
      assert.equal((await kit.t.call("DELETE", base(`/${key.id}`), undefined, kit.admin.access_token)).statusCode, 200, "revoking again changes nothing");
      assertProblem(await kit.t.call("PATCH", base(`/${key.id}`), { description: "x" }, kit.owner.access_token), 409, "SERVICE_KEY_REVOKED");
      assert.deepEqual(
        (await kit.t.call("GET", base(`?service=${service}`), undefined, kit.owner.access_token)).json().items.map((x: { id: string }) => x.id),
        [viaJwk.id],
      );
      const all = await kit.t.call("GET", base(`?service=${service}&include_revoked=true`), undefined, kit.owner.access_token);
      assert.equal(all.json().items.length, 2);

      const ev = (await events()).filter((e) => e.targetId === key.id);
      assert.deepEqual(ev.map((e) => e.action).sort(), ["service_key.registered", "service_key.revoked", "service_key.updated"]);
      const reg = ev.find((e) => e.action === "service_key.registered");
      assert.equal(reg?.actorId, kit.owner.id);
      assert.deepEqual((reg!.diff as Record<string, unknown>).roles, [null, ["viewer"]]);
      assert.deepEqual(ev.find((e) => e.action === "service_key.updated")?.diff, {
        description: ["Billing worker", "Billing"],
        roles: [["viewer"], ["developer"]],
      });
      assert.equal(ev.find((e) => e.action === "service_key.revoked")?.actorId, kit.admin.id);
      const index = (await kit.t.db.owner.execute(
        sql`select org_id, expires_at from credential_index where kind = 'service_key' and credential_id = ${key.id}`,
      )) as unknown as { rows: { org_id: string; expires_at: unknown }[] };
      assert.equal(index.rows[0].org_id, kit.orgId);
      assert.ok(index.rows[0].expires_at, "its routing row ends at the revocation");
      assert.deepEqual(await kit.t.deps.audit.verify(kit.orgId), { ok: true, events: (await events()).length });
    });

    it("refuses bad JWKs and bad fields with 400 naming the field, changing nothing", async () => {
      const before = await rows();
      const audit = (await events()).length;
      const svc = serviceName();
      const ed = await keyPair("EdDSA");
      const ec = await keyPair("ES256");
      const rsa = await keyPair("RS256");
      const post = (body: Record<string, unknown>) => kit.t.call("POST", base(), body, kit.owner.access_token);
      // private key material: named, whichever member it is
      assertFieldError(await post(registration(svc, { ...ed, jwk: ed.privateJwk })), "jwk.d");
      assertFieldError(await post(registration(svc, { ...rsa, jwk: rsa.privateJwk })), "jwk.d");
      for (const m of PRIVATE) assertFieldError(await post(registration(svc, { ...ec, jwk: { ...ec.jwk, [m]: "AAAA" } })), `jwk.${m}`);
      const secret = await post({ service: svc, kid: "oct-1", alg: "EdDSA", jwk: { kty: "oct", k: "c2VjcmV0" } });
      assertFieldError(secret, "jwk.kty");
      assert.match(secret.json().detail, /symmetric/);
      // alg must match the key; kid and alg are required somewhere, and agree where given twice
      assertFieldError(await post(registration(svc, ec, { alg: "EdDSA" })), "alg");
      assertFieldError(await post(registration(svc, ed, { alg: "ES256" })), "alg");
      assertFieldError(await post(registration(svc, rsa, { alg: "ES384" })), "alg");
      assertFieldError(await post({ service: svc, jwk: ed.jwk, alg: "EdDSA" }), "kid");
      assertFieldError(await post({ service: svc, jwk: { ...ed.jwk, kid: "a" }, kid: "b", alg: "EdDSA" }), "kid");
      assertFieldError(await post({ service: svc, jwk: ed.jwk, kid: "x1" }), "alg");
      assertFieldError(await post({ service: svc, jwk: { ...ed.jwk, alg: "EdDSA" }, kid: "x2", alg: "ES256" }), "alg");
      assertFieldError(await post(registration(svc, ed, { kid: "sig_01j00000000000000000000000" })), "kid");
      assertFieldError(await post(registration(svc, ed, { alg: "HS256" })), "alg");
      assertFieldError(await post(registration(svc, ed, { alg: "none" })), "alg");
      // garbage keys
      assertFieldError(await post(registration(svc, { ...ec, jwk: { ...ec.jwk, x: ec.jwk.y } })), "jwk");
      assertFieldError(await post(registration(svc, { ...ed, jwk: { ...ed.jwk, x: "AAAA" } })), "jwk");
      assertFieldError(await post(registration(svc, { ...ed, jwk: { kty: "OKP", crv: "Ed25519" } })), "jwk.x");
      assertFieldError(await post(registration(svc, { ...ec, jwk: { ...ec.jwk, n: "AQAB" } })), "jwk.n");
      assertFieldError(await post(registration(svc, { ...ed, jwk: { ...ed.jwk, kty: "XYZ" } })), "jwk.kty");
      assertFieldError(await post(registration(svc, { ...ed, jwk: { ...ed.jwk, x5c: ["MIIB"] } })), "jwk.x5c");
      assertFieldError(await post(registration(svc, { ...ed, jwk: { ...ed.jwk, x: "not base64url!" } })), "jwk.x");
      assertFieldError(await post({ ...registration(svc, ed), jwk: "-----BEGIN PUBLIC KEY-----" }), "jwk");
      const weak = generateKeyPairSync("rsa", { modulusLength: 1024 }).publicKey.export({ format: "jwk" });
      assertFieldError(await post({ service: svc, kid: "weak", alg: "RS256", jwk: weak }), "jwk.n");
      // the rest of the body
      assertFieldError(await post(registration("Not A Name", ed)), "service");
      assertFieldError(await post(registration(svc, ed, { roles: ["no-such-role"] })), "roles.0");
      assertFieldError(await post(registration(svc, ed, { expires_at: new Date(kit.clock.now().getTime() - 1000).toISOString() })), "expires_at");
      assertFieldError(await post(registration(svc, ed, { is_admin: true })), "is_admin");
      assertFieldError(await kit.t.call("GET", base("/svk_nope"), undefined, kit.owner.access_token), "serviceKeyId");
      assertFieldError(await kit.t.call("GET", base("?cursor=abc"), undefined, kit.owner.access_token), "cursor");
      assert.deepEqual(await rows(), before, "nothing registered");
      assert.equal((await events()).length, audit, "nothing audited");
    });

    it("a kid is registered once, across organizations and the platform, revoked or not (409)", async () => {
      const k = await keyPair();
      const first = await register(registration(serviceName(), k));
      assertProblem(await kit.t.call("POST", base(), registration(serviceName(), k), kit.owner.access_token), 409, "SERVICE_KEY_KID_TAKEN", { field: "kid" });
      assertProblem(
        await kit.t.call("POST", `/v1/orgs/${kit.otherOrgId}/service-keys`, registration(serviceName(), k), kit.owner.access_token),
        409,
        "SERVICE_KEY_KID_TAKEN",
      );
      assertProblem(await kit.t.call("POST", "/v1/service-keys", registration(serviceName(), k), kit.root.access_token), 409, "SERVICE_KEY_KID_TAKEN");
      await kit.t.call("DELETE", base(`/${first.id}`), undefined, kit.owner.access_token);
      assertProblem(await kit.t.call("POST", base(), registration(serviceName(), k), kit.owner.access_token), 409, "SERVICE_KEY_KID_TAKEN");
    });

    it("needs service-keys:manage to change, and gives a key only roles its registrant could grant (403 naming every missing permission)", async () => {
      const k = await keyPair();
      assertProblem(await kit.t.call("POST", base(), registration(serviceName(), k), kit.dev.access_token), 403, "FORBIDDEN", {
        permission: "service-keys:manage",
      });
      assertProblem(await kit.t.call("POST", base(), registration(serviceName(), k, { roles: ["owner"] }), kit.admin.access_token), 403, "FORBIDDEN", {
        permission: "org:delete",
        missing: ["org:delete"],
        field: "roles",
      });
      const key = await register(registration(serviceName(), k, { roles: ["viewer"] }), kit.admin.access_token);
      assertProblem(await kit.t.call("PATCH", base(`/${key.id}`), { roles: ["viewer", "owner"] }, kit.admin.access_token), 403, "FORBIDDEN", {
        permission: "org:delete",
        missing: ["org:delete"],
      });
      assertProblem(await kit.t.call("DELETE", base(`/${key.id}`), undefined, kit.viewer.access_token), 403, "FORBIDDEN", {
        permission: "service-keys:manage",
      });
      // a custom role of the organization works like a built-in one
      const role = await kit.t.call(
        "POST",
        `/v1/orgs/${kit.orgId}/roles`,
        { name: "svc-reader", permissions: ["org:read", "teams:read"] },
        kit.owner.access_token,
      );
      assert.equal(role.statusCode, 201, role.body);
      assert.deepEqual((await kit.t.call("PATCH", base(`/${key.id}`), { roles: ["svc-reader"] }, kit.admin.access_token)).json().roles, ["svc-reader"]);
      // another organization's key is not found here, whatever the caller's role
      const theirs = await register(registration(serviceName(), await keyPair()), kit.owner.access_token, `/v1/orgs/${kit.otherOrgId}/service-keys`);
      assertProblem(await kit.t.call("GET", base(`/${theirs.id}`), undefined, kit.owner.access_token), 404, "SERVICE_KEY_NOT_FOUND");
      assertProblem(await kit.t.call("DELETE", base(`/${theirs.id}`), undefined, kit.owner.access_token), 404, "SERVICE_KEY_NOT_FOUND");
      assertProblem(await kit.t.call("GET", `/v1/orgs/${kit.otherOrgId}/service-keys`, undefined, kit.admin.access_token), 404, "NOT_FOUND");
    });

    it("an impersonation may read keys but not register or change one (its private half would outlive the impersonation)", async () => {
      const key = await register(registration(serviceName(), await keyPair(), { roles: ["viewer"] }));
      const imp = await kit.t.call(
        "POST",
        "/v1/impersonations",
        { user_id: kit.owner.id, reason: "support ticket 4711", expires_in: 600 },
        kit.root.access_token,
      );
      assert.equal(imp.statusCode, 201, imp.body);
      const token = imp.json().access_token as string;
      assert.equal((await kit.t.call("GET", base(`/${key.id}`), undefined, token)).statusCode, 200);
      assertProblem(await kit.t.call("POST", base(), registration(serviceName(), await keyPair()), token), 403, "FORBIDDEN", { reason: "impersonation" });
      assertProblem(await kit.t.call("PATCH", base(`/${key.id}`), { roles: ["admin"] }, token), 403, "FORBIDDEN", { reason: "impersonation" });
    });

    it("the platform registry is for platform admins, takes built-in roles only, and audits in the platform's chain", async () => {
      const k = await keyPair("ES256");
      for (const [method, path, body] of [
        ["POST", "", registration(serviceName(), k)],
        ["GET", "", undefined],
        ["GET", "/svk_01j0000000000000000000000z", undefined],
        ["DELETE", "/svk_01j0000000000000000000000z", undefined],
      ] as const) {
        assertProblem(await kit.t.call(method, `/v1/service-keys${path}`, body, kit.owner.access_token), 403, "PLATFORM_ADMIN_REQUIRED");
      }
      assertFieldError(
        await kit.t.call("POST", "/v1/service-keys", registration(serviceName(), k, { roles: ["svc-reader"] }), kit.root.access_token),
        "roles.0",
      );
      const svc = serviceName("platform");
      const key = await register(registration(svc, k, { roles: ["viewer"] }), kit.root.access_token, "/v1/service-keys");
      assert.equal(key.org_id, null);
      assert.deepEqual(
        (await kit.t.call("GET", "/v1/service-keys?service=" + svc, undefined, kit.root.access_token)).json().items.map((x: { id: string }) => x.id),
        [key.id],
      );
      assert.equal((await kit.t.call("PATCH", `/v1/service-keys/${key.id}`, { roles: ["developer"] }, kit.root.access_token)).json().roles[0], "developer");
      // an org's routes never show a platform key, nor the platform routes an org's
      assertProblem(await kit.t.call("GET", base(`/${key.id}`), undefined, kit.owner.access_token), 404, "SERVICE_KEY_NOT_FOUND");
      const orgKey = await register(registration(serviceName(), await keyPair()));
      assertProblem(await kit.t.call("GET", `/v1/service-keys/${orgKey.id}`, undefined, kit.root.access_token), 404, "SERVICE_KEY_NOT_FOUND");
      assert.equal((await kit.t.call("DELETE", `/v1/service-keys/${key.id}`, undefined, kit.root.access_token)).json().state, "revoked");
      const ev = (await events("platform")).filter((e) => e.targetId === key.id);
      assert.deepEqual(
        ev.map((e) => e.action),
        ["service_key.revoked", "service_key.updated", "service_key.registered"],
      );
      assert.ok(ev.every((e) => e.actorId === kit.root.id));
      assert.equal((await kit.t.deps.audit.verify("platform")).ok, true);
      // a demoted admin is refused at once
      await kit.t.db.owner.execute(sql`update users set is_platform_admin = false where id = ${kit.root.id}`);
      assertProblem(await kit.t.call("GET", "/v1/service-keys", undefined, kit.root.access_token), 403, "PLATFORM_ADMIN_REQUIRED");
      await kit.t.db.owner.execute(sql`update users set is_platform_admin = true where id = ${kit.root.id}`);
    });

    it("publishes active keys as a JWKS: the platform's, or one organization's, optionally one service's; public members only", async () => {
      const jwks = (query = "") => kit.t.inject({ method: "GET", url: `/v1/service-keys/jwks.json${query}` });
      const svc = serviceName("pub");
      const [a, b, c, p] = [await keyPair("EdDSA"), await keyPair("ES384"), await keyPair("PS256"), await keyPair("ES256")];
      await register(registration(svc, a));
      await register(registration(svc, b, { expires_at: new Date(kit.clock.now().getTime() + 60_000).toISOString() }));
      const revoked = await register(registration(svc, c));
      await kit.t.call("DELETE", base(`/${revoked.id}`), undefined, kit.owner.access_token);
      await register(registration(svc, p), kit.root.access_token, "/v1/service-keys");

      const res = await jwks(`?org=${kit.orgId}&service=${svc}`);
      assert.equal(res.statusCode, 200, res.body);
      assert.match(String(res.headers["cache-control"]), /^public, max-age=\d+$/);
      const keys = res.json().keys as Record<string, unknown>[];
      assert.deepEqual(
        keys.map((k) => k.kid),
        [a.kid, b.kid],
        "active keys only, oldest first",
      );
      for (const k of keys) {
        assert.equal(k.use, "sig");
        assert.ok(typeof k.alg === "string");
        for (const m of PRIVATE) assert.equal(k[m], undefined);
      }
      assert.ok(!res.body.includes(kit.orgId), "a published key never names its organization");
      const platform = (await jwks()).json().keys as { kid: string }[];
      assert.ok(platform.some((k) => k.kid === p.kid));
      assert.ok(!platform.some((k) => k.kid === a.kid), "an organization's keys are not in the platform's set");
      assert.deepEqual((await jwks(`?org=${kit.orgId}&service=nobody`)).json(), { keys: [] });
      assert.deepEqual((await jwks(`?org=${kit.otherOrgId}&service=${svc}`)).json(), { keys: [] });
      assertFieldError(await jwks("?org=not-an-org"), "org");
      assertFieldError(await jwks("?tenant=x"), "tenant");
      kit.clock.advance(61_000);
      assert.deepEqual(
        ((await jwks(`?org=${kit.orgId}&service=${svc}`)).json().keys as { kid: string }[]).map((k) => k.kid),
        [a.kid],
        "an expired key leaves at once",
      );
    });
  });
}
