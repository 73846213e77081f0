import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { sql } from "drizzle-orm";
import type { LightMyRequestResponse } from "fastify";
import { decodeJwt } from "jose";
import { createManualClock } from "../../lib/clock.ts";
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

for (const backend of BACKENDS) {
  describe(`impersonation (${backend})`, () => {
    const clock = createManualClock();
    let t: TestApp;
    let root: TestUser; // platform admin
    let otherRoot: TestUser; // another platform admin
    let owner: TestUser;
    let coOwner: TestUser;
    let admin: TestUser;
    let dev: TestUser;
    let stranger: TestUser;
    let orgId: string;
    let otherOrgId: string;

    const start = (token: string, body: Record<string, unknown>) => t.call("POST", "/v1/impersonations", { reason: "support ticket 4711", ...body }, token);

    before(async () => {
      t = await createTestApp({ backend, worker: false, clock });
      [root, otherRoot, owner, coOwner, admin, dev, stranger] = await Promise.all(
        ["Root", "Other Root", "Olivia Owner", "Cody CoOwner", "Adam Admin", "Dana Dev", "Sam Stranger"].map((n) => signUp(t, n)),
      );
      await t.db.owner.execute(sql`update users set is_platform_admin = true where id in (${root.id}, ${otherRoot.id})`);
      orgId = await makeOrg(t, owner, "Imp Inc", uniqueSlug("imp"));
      otherOrgId = await makeOrg(t, dev, "Elsewhere", uniqueSlug("imp"));
      for (const [u, role] of [
        [coOwner, "owner"],
        [admin, "admin"],
        [dev, "developer"],
      ] as const)
        await addMember(t, orgId, u, role);
    });
    after(() => t.close());

    describe("by a platform admin", () => {
      it("acts as the user with act naming the admin, reads the account but cannot change it", async () => {
        const res = start(root.access_token, { user_id: dev.id, expires_in: 600 });
        const r = await res;
        assert.equal(r.statusCode, 201, r.body);
        const body = r.json();
        assert.equal(body.token_type, "Bearer");
        assert.equal(body.expires_in, 600);
        assert.equal(body.impersonation.basis, "platform_admin");
        assert.equal(body.impersonation.state, "active");
        assert.equal(body.impersonation.impersonator.id, root.id);
        assert.equal(body.impersonation.user.email, dev.email);
        const claims = decodeJwt(body.access_token);
        assert.equal(claims.sub, dev.id);
        assert.deepEqual((claims.act as { sub: string }).sub, root.id);
        assert.equal((claims.exp as number) - (claims.iat as number), 600);

        const me = await t.call("GET", "/v1/me", undefined, body.access_token);
        assert.equal(me.statusCode, 200, me.body);
        assert.equal(me.json().id, dev.id);
        assert.equal((await t.call("GET", "/v1/orgs", undefined, body.access_token)).statusCode, 200);
        // the account itself is read-only under impersonation
        assertProblem(await t.call("PATCH", "/v1/me", { name: "Hacked" }, body.access_token), 403, "FORBIDDEN");
        assertProblem(
          await t.call("POST", "/v1/me/password", { current_password: dev.password, new_password: "another sturdy passphrase 9" }, body.access_token),
          403,
          "FORBIDDEN",
        );
        assertProblem(await t.call("POST", "/v1/auth/logout-all", {}, body.access_token), 403, "FORBIDDEN");
        assert.equal((await t.call("GET", "/v1/me", undefined, dev.access_token)).json().name, "Dana Dev");
        // and it cannot start another impersonation
        assertProblem(await start(body.access_token, { user_id: stranger.id }), 403, "FORBIDDEN");
      });

      it("every action taken in an org records both people in the audit log", async () => {
        const { access_token } = (await start(root.access_token, { user_id: dev.id })).json();
        const team = await t.call("POST", `/v1/orgs/${orgId}/teams`, { name: `imp-team-${randomBytes(3).toString("hex")}` }, access_token);
        assert.equal(team.statusCode, 201, team.body);
        const log = await t.call("GET", `/v1/orgs/${orgId}/audit?action=team.created&target_id=${team.json().id}`, undefined, owner.access_token);
        assert.equal(log.statusCode, 200, log.body);
        const [e] = log.json().items;
        assert.deepEqual(e.actor, { type: "user", id: dev.id, impersonator_id: root.id, via_key_id: null });
      });

      it("bound to an org with org_id: only there, and the start is in that org's audit log", async () => {
        const r = await start(root.access_token, { user_id: dev.id, org_id: orgId });
        assert.equal(r.statusCode, 201, r.body);
        const token = r.json().access_token;
        assert.equal((await t.call("GET", `/v1/orgs/${orgId}`, undefined, token)).statusCode, 200);
        assertProblem(await t.call("GET", `/v1/orgs/${otherOrgId}`, undefined, token), 404, "NOT_FOUND");
        assertProblem(await t.call("GET", "/v1/me", undefined, token), 401, "UNAUTHENTICATED");
        const log = await t.call("GET", `/v1/orgs/${orgId}/audit?action=impersonation.started&target_id=${dev.id}`, undefined, owner.access_token);
        const e = log.json().items.find((x: { diff: Record<string, unknown> }) => (x.diff.impersonation_id as unknown[])[1] === r.json().impersonation.id);
        assert.ok(e, log.body);
        assert.equal(e.actor.id, root.id);
        // a user who is not a member of that org cannot be impersonated there
        assertProblem(await start(root.access_token, { user_id: stranger.id, org_id: orgId }), 404, "USER_NOT_FOUND");
      });

      it("cannot mint anything that outlives it: API keys, rotations, OAuth clients, exchanged tokens", async () => {
        const { access_token } = (await start(root.access_token, { user_id: owner.id, org_id: orgId })).json();
        const keyBody = { name: `imp-key-${randomBytes(3).toString("hex")}`, roles: ["viewer"] };
        const refused = assertProblem(await t.call("POST", `/v1/orgs/${orgId}/keys`, keyBody, access_token), 403, "FORBIDDEN");
        assert.equal(refused.reason, "impersonation");
        // the owner's own key exists; the impersonation may not rotate it for a fresh secret
        const own = await t.call("POST", `/v1/orgs/${orgId}/keys`, keyBody, owner.access_token);
        assert.equal(own.statusCode, 201, own.body);
        assertProblem(await t.call("POST", `/v1/orgs/${orgId}/keys/${keyBody.name}/$rotate`, {}, access_token), 403, "FORBIDDEN");
        const sa = await t.call(
          "POST",
          `/v1/orgs/${orgId}/service-accounts`,
          { name: `imp-sa-${randomBytes(3).toString("hex")}`, roles: ["viewer"] },
          owner.access_token,
        );
        assert.equal(sa.statusCode, 201, sa.body);
        assertProblem(await t.call("POST", `/v1/orgs/${orgId}/service-accounts/${sa.json().id}/clients`, { name: "imp" }, access_token), 403, "FORBIDDEN");
        assertProblem(await t.call("POST", `/v1/orgs/${orgId}/service-accounts/${sa.json().id}/keys`, keyBody, access_token), 403, "FORBIDDEN");
        const exchange = await t.inject({
          method: "POST",
          url: "/v1/oauth/token",
          headers: { "content-type": "application/x-www-form-urlencoded" },
          payload: new URLSearchParams({
            grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
            subject_token: access_token,
            subject_token_type: "urn:ietf:params:oauth:token-type:access_token",
          }).toString(),
        });
        assert.equal(exchange.statusCode, 400, exchange.body);
        assert.equal(exchange.json().error, "invalid_grant");
        assert.match(exchange.json().error_description, /impersonation/);
      });

      it("cannot impersonate a platform admin, themselves, or an unknown user", async () => {
        assertProblem(await start(root.access_token, { user_id: otherRoot.id }), 403, "CANNOT_IMPERSONATE_ADMIN");
        assertProblem(await start(root.access_token, { user_id: root.id }), 400, "CANNOT_IMPERSONATE_SELF");
        assertProblem(await start(root.access_token, { user_id: "usr_00000000000000000000000000" }), 404, "USER_NOT_FOUND");
      });

      it("stops working once the admin is no longer a platform admin", async () => {
        const { access_token } = (await start(otherRoot.access_token, { user_id: stranger.id })).json();
        assert.equal((await t.call("GET", "/v1/me", undefined, access_token)).statusCode, 200);
        await t.db.owner.execute(sql`update users set is_platform_admin = false where id = ${otherRoot.id}`);
        clock.advance(6_000); // past the per-instance check interval
        const p = assertProblem(await t.call("GET", "/v1/me", undefined, access_token), 401, "INVALID_TOKEN");
        assert.match(p.detail, /no longer a platform admin/);
        await t.db.owner.execute(sql`update users set is_platform_admin = true where id = ${otherRoot.id}`);
      });
    });

    describe("by an org owner", () => {
      it("is refused while the org does not allow it, and only an owner may allow it", async () => {
        assertProblem(await start(owner.access_token, { user_id: dev.id, org_id: orgId }), 403, "IMPERSONATION_NOT_ALLOWED");
        const byAdmin = await t.call("PATCH", `/v1/orgs/${orgId}`, { owner_impersonation: true }, admin.access_token);
        assertProblem(byAdmin, 403, "FORBIDDEN");
        assert.equal(problemOf(byAdmin).field, "owner_impersonation");
        const on = await t.call("PATCH", `/v1/orgs/${orgId}`, { owner_impersonation: true }, owner.access_token);
        assert.equal(on.statusCode, 200, on.body);
        assert.equal(on.json().owner_impersonation, true);
      });

      it("acts as a member within the org only; admins, strangers and cross-org starts are refused", async () => {
        const r = await start(owner.access_token, { user_id: dev.id, org_id: orgId });
        assert.equal(r.statusCode, 201, r.body);
        assert.equal(r.json().impersonation.basis, "org_owner");
        const token = r.json().access_token;
        // the developer's permissions: may read members, may not change the org
        assert.equal((await t.call("GET", `/v1/orgs/${orgId}/members`, undefined, token)).statusCode, 200);
        const forbidden = assertProblem(await t.call("PATCH", `/v1/orgs/${orgId}`, { name: "Renamed" }, token), 403, "FORBIDDEN");
        assert.match(forbidden.detail, /impersonated member's role \(developer\)/);
        assertProblem(await t.call("GET", `/v1/orgs/${otherOrgId}`, undefined, token), 404, "NOT_FOUND");
        assertProblem(await t.call("GET", "/v1/me", undefined, token), 401, "UNAUTHENTICATED");

        assertProblem(await start(admin.access_token, { user_id: dev.id, org_id: orgId }), 403, "IMPERSONATION_NOT_ALLOWED");
        assertProblem(await start(stranger.access_token, { user_id: dev.id, org_id: orgId }), 404, "NOT_FOUND");
        assertProblem(await start(owner.access_token, { user_id: dev.id }), 403, "IMPERSONATION_NOT_ALLOWED");
        assertProblem(await start(owner.access_token, { user_id: stranger.id, org_id: orgId }), 404, "USER_NOT_FOUND");
        assertProblem(await start(owner.access_token, { user_id: root.id, org_id: orgId }), 404, "USER_NOT_FOUND");
      });

      it("never exceeds the owner: a demoted owner's impersonation acts no more", async () => {
        const token = (await start(coOwner.access_token, { user_id: admin.id, org_id: orgId })).json().access_token;
        assert.equal((await t.call("GET", `/v1/orgs/${orgId}/members`, undefined, token)).statusCode, 200);
        const demote = await t.call("PATCH", `/v1/orgs/${orgId}/members/${coOwner.id}`, { role: "developer" }, owner.access_token);
        assert.equal(demote.statusCode, 200, demote.body);
        assertProblem(await t.call("GET", `/v1/orgs/${orgId}/members`, undefined, token), 404, "NOT_FOUND");
        await t.call("PATCH", `/v1/orgs/${orgId}/members/${coOwner.id}`, { role: "owner" }, owner.access_token);
      });

      it("stops working when the org turns owner impersonation off", async () => {
        const token = (await start(owner.access_token, { user_id: dev.id, org_id: orgId })).json().access_token;
        assert.equal((await t.call("GET", `/v1/orgs/${orgId}`, undefined, token)).statusCode, 200);
        assert.equal((await t.call("PATCH", `/v1/orgs/${orgId}`, { owner_impersonation: false }, owner.access_token)).statusCode, 200);
        clock.advance(6_000);
        assertProblem(await t.call("GET", `/v1/orgs/${orgId}`, undefined, token), 401, "INVALID_TOKEN");
        assert.equal((await t.call("PATCH", `/v1/orgs/${orgId}`, { owner_impersonation: true }, owner.access_token)).statusCode, 200);
      });
    });

    describe("records", () => {
      it("the impersonated user sees every impersonation of themselves; the impersonator sees theirs", async () => {
        const mine = await t.call("GET", "/v1/me/impersonations?limit=2", undefined, dev.access_token);
        assert.equal(mine.statusCode, 200, mine.body);
        assert.equal(mine.json().items.length, 2);
        assert.ok(mine.json().next_cursor);
        const all: { user: { id: string }; impersonator: { id: string; email: string }; reason: string }[] = [];
        let cursor: string | null = null;
        do {
          const page: LightMyRequestResponse = await t.call(
            "GET",
            `/v1/me/impersonations?limit=2${cursor ? `&cursor=${cursor}` : ""}`,
            undefined,
            dev.access_token,
          );
          all.push(...page.json().items);
          cursor = page.json().next_cursor;
        } while (cursor);
        assert.ok(all.length >= 5, `${all.length}`);
        assert.ok(all.every((x) => x.user.id === dev.id));
        assert.ok(all.some((x) => x.impersonator.id === root.id && x.impersonator.email === root.email));
        assert.ok(all.some((x) => x.impersonator.id === owner.id));
        assert.ok(all.every((x) => x.reason === "support ticket 4711"));
        const started = (await t.call("GET", "/v1/impersonations", undefined, owner.access_token)).json().items;
        assert.ok(started.length >= 2 && started.every((x: { impersonator: { id: string } }) => x.impersonator.id === owner.id));
        assert.equal((await t.call("GET", "/v1/me/impersonations", undefined, coOwner.access_token)).json().items.length, 0); // never impersonated
        assertFieldError(await t.call("GET", "/v1/me/impersonations?cursor=bm9wZQ", undefined, dev.access_token), "cursor");
      });

      it("ending one (by the impersonator or the user) kills its token at once; others cannot end it", async () => {
        for (const ender of [root, dev]) {
          const r = (await start(root.access_token, { user_id: dev.id })).json();
          assert.equal((await t.call("GET", "/v1/me", undefined, r.access_token)).statusCode, 200);
          assertProblem(await t.call("POST", `/v1/impersonations/${r.impersonation.id}/end`, {}, stranger.access_token), 404, "IMPERSONATION_NOT_FOUND");
          const end = await t.call("POST", `/v1/impersonations/${r.impersonation.id}/end`, {}, ender.access_token);
          assert.equal(end.statusCode, 200, end.body);
          assert.equal(end.json().state, "ended");
          assertProblem(await t.call("GET", "/v1/me", undefined, r.access_token), 401, "INVALID_TOKEN");
          assert.equal((await t.call("POST", `/v1/impersonations/${r.impersonation.id}/end`, {}, ender.access_token)).json().state, "ended");
        }
      });

      it("expires within the hour it was given", async () => {
        const r = (await start(root.access_token, { user_id: stranger.id, expires_in: 60 })).json();
        clock.advance(61_000);
        assertProblem(await t.call("GET", "/v1/me", undefined, r.access_token), 401, "INVALID_TOKEN");
      });
    });

    describe("bad input", () => {
      for (const [what, body, field] of [
        ["no reason", { user_id: "usr_00000000000000000000000000", reason: undefined }, "reason"],
        ["a blank reason", { user_id: "usr_00000000000000000000000000", reason: "   " }, "reason"],
        ["more than an hour", { user_id: "usr_00000000000000000000000000", expires_in: 3601 }, "expires_in"],
        ["less than a minute", { user_id: "usr_00000000000000000000000000", expires_in: 10 }, "expires_in"],
        ["a malformed user id", { user_id: "dev" }, "user_id"],
        ["a malformed org id", { user_id: "usr_00000000000000000000000000", org_id: "acme" }, "org_id"],
        ["an unknown field", { user_id: "usr_00000000000000000000000000", scope: "everything" }, "scope"],
      ] as const) {
        it(`${what} → 400 naming ${field}, nothing recorded`, async () => {
          const before = (await t.call("GET", "/v1/impersonations", undefined, root.access_token)).json().items.length;
          assertFieldError(await start(root.access_token, body), field);
          assert.equal((await t.call("GET", "/v1/impersonations", undefined, root.access_token)).json().items.length, before);
        });
      }
      it("without a token → 401", async () => {
        assertProblem(await t.call("POST", "/v1/impersonations", { user_id: dev.id, reason: "x y z" }), 401, "UNAUTHENTICATED");
        assertProblem(await t.call("GET", "/v1/me/impersonations"), 401, "UNAUTHENTICATED");
      });
    });
  });
}
