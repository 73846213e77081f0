import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { BACKENDS, assertProblem, makeKey, signUp, uniqueEmail, type TestApp, type TestUser } from "../../../test/harness.ts";
import type { TestSmtp } from "../../../test/smtp.ts";
import { keyPair, registration, serviceName, serviceToken } from "../service-keys/service-keys.test-kit.ts";
import { addTeam, auditActions, markVerified, newOrg, startKit, tokenFor, type Kit } from "./invitations.test-kit.ts";

const FORM = { "content-type": "application/x-www-form-urlencoded" };

// Regression (issue 9): invitations.invited_by is a foreign key to users, and the inviter's membership id went into
// it whatever the caller was: a service account's token or key (sa_…) or a registered service (svk_…) inviting got a
// 500. The invitation now names its inviter of any kind (invited_by_type, invited_by_id); invited_by stays the person.
for (const backend of BACKENDS) {
  describe(`invitations by service principals (${backend})`, () => {
    let kit: Kit;
    let t: TestApp;
    let smtp: TestSmtp;
    let owner: TestUser;
    let orgId: string;
    let saId: string;
    let svkId: string;
    /** Each machine caller, with what the invitation should name as its inviter. */
    let callers: { what: string; token: () => Promise<string>; type: string; id: () => string }[];
    before(async () => {
      kit = await startKit(backend);
      ({ t, smtp } = kit);
      owner = await signUp(t, "Olivia Owner");
      orgId = await newOrg(t, owner);
      const sa = await t.call("POST", `/v1/orgs/${orgId}/service-accounts`, { name: "provisioner", roles: ["admin"] }, owner.access_token);
      assert.equal(sa.statusCode, 201, sa.body);
      saId = sa.json().id;
      const client = (await t.call("POST", `/v1/orgs/${orgId}/service-accounts/${saId}/clients`, { name: "c" }, owner.access_token)).json();
      const tok = await t.inject({
        method: "POST",
        url: "/v1/oauth/token",
        headers: FORM,
        payload: new URLSearchParams({ grant_type: "client_credentials", client_id: client.client_id, client_secret: client.client_secret }).toString(),
      });
      assert.equal(tok.statusCode, 200, tok.body);
      const saKey = await t.call("POST", `/v1/orgs/${orgId}/service-accounts/${saId}/keys`, { name: "k", roles: ["admin"] }, owner.access_token);
      assert.equal(saKey.statusCode, 201, saKey.body);
      const pair = await keyPair("ES256");
      const service = serviceName();
      const reg = await t.call("POST", `/v1/orgs/${orgId}/service-keys`, registration(service, pair, { roles: ["admin"] }), owner.access_token);
      assert.equal(reg.statusCode, 201, reg.body);
      svkId = reg.json().id;
      callers = [
        { what: "a service account's token", token: async () => tok.json().access_token, type: "service_account", id: () => saId },
        { what: "a service account's API key", token: async () => saKey.json().secret, type: "service_account", id: () => saId },
        { what: "a registered service's self-signed token", token: () => serviceToken(kit, service, pair), type: "service", id: () => svkId },
      ];
    });
    after(() => kit.close());

    const url = (path: string) => `/v1/orgs/${orgId}${path}`;

    it("a person's invitation names them in invited_by and as a user inviter", async () => {
      const res = await t.call("POST", url("/invitations"), { email: uniqueEmail("by-person"), role: "viewer" }, owner.access_token);
      assert.equal(res.statusCode, 201, res.body);
      assert.deepEqual([res.json().invited_by, res.json().invited_by_type, res.json().invited_by_id], [owner.id, "user", owner.id]);
      // through the person's API key, the person is still the inviter
      const key = await makeKey(t, orgId, owner, { roles: ["admin"] });
      const viaKey = await t.call("POST", url("/invitations"), { email: uniqueEmail("by-key"), role: "viewer" }, key.secret);
      assert.equal(viaKey.statusCode, 201, viaKey.body);
      assert.deepEqual([viaKey.json().invited_by, viaKey.json().invited_by_type, viaKey.json().invited_by_id], [owner.id, "user", owner.id]);
    });

    it("a service account (by token or key) and a registered service invite, one or in bulk, and resend: named as the inviter, never a 500", async () => {
      for (const c of callers) {
        const token = await c.token();
        const email = uniqueEmail("by-machine");
        const res = await t.call("POST", url("/invitations"), { email, role: "developer" }, token);
        assert.equal(res.statusCode, 201, `${c.what}: ${res.body}`);
        const inv = res.json();
        assert.deepEqual([inv.invited_by, inv.invited_by_type, inv.invited_by_id], [null, c.type, c.id()], c.what);
        const got = await t.call("GET", url(`/invitations/${inv.id}`), undefined, owner.access_token);
        assert.deepEqual([got.json().invited_by_type, got.json().invited_by_id], [c.type, c.id()]);

        const bulk = await t.call("POST", url("/invitations/bulk"), { invitations: [{ email: uniqueEmail("bulk"), role: "viewer" }] }, token);
        assert.equal(bulk.statusCode, 200, `${c.what}: ${bulk.body}`);
        assert.equal(bulk.json().results[0].status, "invited", bulk.body);

        const resent = await t.call("POST", url(`/invitations/${inv.id}/resend`), undefined, await c.token());
        assert.equal(resent.statusCode, 200, `${c.what}: ${resent.body}`);
        await tokenFor(smtp, email); // the mail goes out without an inviter's name
      }
      const created = (await auditActions(t, orgId)).filter((e) => e.action === "invitation.created");
      assert.ok(created.some((e) => e.actorType === "service_account" && e.actorId === saId));
      assert.ok(created.some((e) => e.actorType === "service" && e.actorId === svkId));
    });

    it("a machine never invites an owner (403 ROLE_ABOVE_OWN), as a non-owner member cannot", async () => {
      for (const c of callers) {
        assertProblem(
          await t.call("POST", url("/invitations"), { email: uniqueEmail("owner"), role: "owner" }, await c.token()),
          403,
          "ROLE_ABOVE_OWN",
          "role",
        );
      }
    });

    it("the person a machine invited joins with the role and teams it named", async () => {
      const team = await addTeam(t, orgId);
      const invitee = await signUp(t, "Ivy Invitee");
      await markVerified(t, invitee);
      const res = await t.call("POST", url("/invitations"), { email: invitee.email, role: "developer", teams: [team] }, await callers[0].token());
      assert.equal(res.statusCode, 201, res.body);
      const token = await tokenFor(smtp, invitee.email);
      const joined = await t.call("POST", "/v1/invitations/accept", { token }, invitee.access_token);
      assert.equal(joined.statusCode, 200, joined.body);
      assert.deepEqual([joined.json().role, joined.json().team_ids], ["developer", [team]]);
      const member = await t.call("GET", url(`/members/${invitee.id}`), undefined, owner.access_token);
      assert.deepEqual([member.json().role, member.json().teams.map((x: { id: string }) => x.id)], ["developer", [team]]);
    });
  });
}
