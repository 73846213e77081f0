import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { sql } from "drizzle-orm";
import { BACKENDS, addMember, assertProblem, GOOD_PASSWORD, signUp, uniqueEmail, type TestApp, type TestUser } from "../../../test/harness.ts";
import type { TestSmtp } from "../../../test/smtp.ts";
import { addTeam, auditActions, markVerified, newOrg, relogin, rows, sha256, startKit, tokenFor, verifiedUser, type Kit } from "./invitations.test-kit.ts";

const DAY = 24 * 3600 * 1000;

for (const backend of BACKENDS) {
  describe(`answering invitations (${backend})`, () => {
    let kit: Kit;
    let t: TestApp;
    let smtp: TestSmtp;
    let owner: TestUser;
    let orgId: string;
    before(async () => {
      kit = await startKit(backend);
      ({ t, smtp } = kit);
      owner = await signUp(t, "Owner");
      orgId = await newOrg(t, owner);
    });
    after(() => kit.close());

    async function invite(email: string, role = "developer", teams: string[] = []): Promise<{ id: string; token: string }> {
      const res = await t.call("POST", `/v1/orgs/${orgId}/invitations`, { email, role, teams }, owner.access_token);
      assert.equal(res.statusCode, 201, res.body);
      return { id: res.json().id, token: await tokenFor(smtp, email) };
    }
    const accept = (token: string, user: TestUser) => t.call("POST", "/v1/invitations/accept", { token }, user.access_token);
    const membership = async (userId: string) =>
      (await rows<{ role: string }>(t, sql`select role from memberships where org_id = ${orgId} and user_id = ${userId}`))[0];
    const teamsOf = async (userId: string) =>
      await rows<{ team_id: string; role: string }>(
        t,
        sql`select team_id, role from team_members where org_id = ${orgId} and user_id = ${userId} order by team_id`,
      );

    it("invite → mail → accept as the verified invitee: a member with the role and teams, audited, access refreshed", async () => {
      const [teamA, teamB] = [await addTeam(t, orgId), await addTeam(t, orgId)];
      const bob = await verifiedUser(t, "Bob");
      // before: bob is a stranger to the org
      assert.equal((await t.call("GET", `/v1/orgs/${orgId}`, undefined, bob.access_token)).statusCode, 404);
      const { id, token } = await invite(bob.email.toUpperCase().replace("@EXAMPLE.COM", "@Example.com"), "developer", [teamA, teamB]);
      const [stored] = await rows<{ token_hash: string; sent_count: number }>(t, sql`select token_hash, sent_count from invitations where id = ${id}`);
      assert.equal(stored.token_hash, sha256(token.split(".")[1]), "only the secret's SHA-256 is stored");
      assert.equal(stored.sent_count, 1);
      assert.equal(token.split(".")[0], orgId, "the token names its org");

      const res = await accept(token, bob);
      assert.equal(res.statusCode, 200, res.body);
      const body = res.json();
      assert.equal(body.org.id, orgId);
      assert.equal(body.org.name, "Invite Co");
      assert.equal(body.role, "developer");
      assert.deepEqual([...body.team_ids].sort(), [teamA, teamB].sort());
      assert.ok(!res.body.includes(token.split(".")[1]));
      assert.equal((await membership(bob.id))?.role, "developer");
      assert.deepEqual(
        (await teamsOf(bob.id)).map((r) => [r.team_id, r.role]),
        [teamA, teamB].sort().map((x) => [x, "member"]),
      );
      // the cached "stranger" answer is gone: the very next request sees the membership
      assert.equal((await t.call("GET", `/v1/orgs/${orgId}`, undefined, bob.access_token)).statusCode, 200);
      const inv = await t.call("GET", `/v1/orgs/${orgId}/invitations/${id}`, undefined, owner.access_token);
      assert.equal(inv.json().status, "accepted");
      assert.equal(inv.json().accepted_by, bob.id);

      const events = (await auditActions(t, orgId)).slice(-2);
      assert.deepEqual(
        events.map((e) => e.action),
        ["invitation.accepted", "member.joined"],
      );
      for (const e of events) assert.equal(e.actorId, bob.id, "the accepting user is the actor");
      assert.deepEqual([events[0].targetType, events[0].targetId], ["invitation", id]);
      assert.deepEqual([events[1].targetType, events[1].targetId], ["user", bob.id]);
      assert.deepEqual((events[1].diff as { role: unknown }).role, [null, "developer"]);
      assert.ok(!JSON.stringify(events).includes(token.split(".")[1]), "the token is not in the audit log");

      // accepting twice
      assertProblem(await accept(token, bob), 409, "INVITATION_USED", "token");
    });

    it("registers a new account through the link: verified, joined, signed in", async () => {
      const team = await addTeam(t, orgId);
      const email = uniqueEmail("newcomer");
      const { id, token } = await invite(email, "viewer", [team]);
      const res = await t.call("POST", "/v1/invitations/register", { token, name: "Newcomer", password: GOOD_PASSWORD });
      assert.equal(res.statusCode, 201, res.body);
      const body = res.json();
      assert.equal(body.user.email, email);
      assert.equal(body.user.email_verified, true, "the link proved the address");
      assert.equal(body.org.id, orgId);
      assert.equal(body.role, "viewer");
      assert.deepEqual(body.team_ids, [team]);
      assert.equal(body.tokens.token_type, "Bearer");
      assert.ok(!res.body.includes(token.split(".")[1]));
      const me = await t.call("GET", "/v1/me", undefined, body.tokens.access_token);
      assert.equal(me.statusCode, 200, me.body);
      assert.equal(me.json().email_verified, true);
      assert.equal((await t.call("GET", `/v1/orgs/${orgId}`, undefined, body.tokens.access_token)).statusCode, 200, "a member at once");
      const orgs = (await t.call("GET", "/v1/orgs", undefined, body.tokens.access_token)).json().items as { id: string; personal: boolean }[];
      assert.ok(orgs.some((o) => o.id === orgId));
      assert.equal((await membership(body.user.id))?.role, "viewer");
      assert.deepEqual(
        (await teamsOf(body.user.id)).map((r) => r.team_id),
        [team],
      );
      const events = (await auditActions(t, orgId)).slice(-2);
      assert.deepEqual(
        events.map((e) => [e.action, e.actorId]),
        [
          ["invitation.accepted", body.user.id],
          ["member.joined", body.user.id],
        ],
      );
      assert.equal((await t.call("GET", `/v1/orgs/${orgId}/invitations/${id}`, undefined, owner.access_token)).json().status, "accepted");

      // the link is spent, and the address now has an account
      assertProblem(await t.call("POST", "/v1/invitations/register", { token, name: "Again", password: GOOD_PASSWORD }), 409, "INVITATION_USED", "token");
    });

    it("register: an address that already has an account is sent to sign in; weak passwords and bad input answer 400, creating nothing", async () => {
      const existing = await signUp(t, "Existing");
      const { token } = await invite(existing.email);
      assertProblem(await t.call("POST", "/v1/invitations/register", { token, name: "Dup", password: GOOD_PASSWORD }), 409, "EMAIL_TAKEN");

      const email = uniqueEmail("weak");
      const fresh = await invite(email);
      const users = async () => (await rows<{ n: number }>(t, sql`select count(*)::int as n from users where lower(email) = lower(${email})`))[0].n;
      assertProblem(await t.call("POST", "/v1/invitations/register", { token: fresh.token, name: "Weak", password: email }), 400, "WEAK_PASSWORD", "password");
      const bad: [Record<string, unknown>, string][] = [
        [{ name: "X", password: GOOD_PASSWORD }, "token"],
        [{ token: "short", name: "X", password: GOOD_PASSWORD }, "token"],
        [{ token: `${fresh.token}!`, name: "X", password: GOOD_PASSWORD }, "token"],
        [{ token: fresh.token, password: GOOD_PASSWORD }, "name"],
        [{ token: fresh.token, name: "   ", password: GOOD_PASSWORD }, "name"],
        [{ token: fresh.token, name: "X" }, "password"],
        [{ token: fresh.token, name: "X", password: "short" }, "password"],
        [{ token: fresh.token, name: "X", password: GOOD_PASSWORD, email: "other@example.com" }, "email"],
      ];
      for (const [body, field] of bad) assertProblem(await t.call("POST", "/v1/invitations/register", body), 400, "VALIDATION_FAILED", field);
      assert.equal(await users(), 0, "no account was created");
      assert.equal((await t.call("GET", `/v1/orgs/${orgId}/invitations/${fresh.id}`, undefined, owner.access_token)).json().status, "pending");
    });

    it("refuses another account's email (403), an unverified email (403), and leaves the invitation usable", async () => {
      const carol = await signUp(t, "Carol"); // not verified
      const mallory = await verifiedUser(t, "Mallory");
      const { id, token } = await invite(carol.email);
      assertProblem(await accept(token, mallory), 403, "INVITATION_EMAIL_MISMATCH", "token");
      assertProblem(await accept(token, carol), 403, "EMAIL_NOT_VERIFIED");
      assert.equal(await membership(mallory.id), undefined);
      assert.equal(await membership(carol.id), undefined);
      assert.equal((await t.call("GET", `/v1/orgs/${orgId}/invitations/${id}`, undefined, owner.access_token)).json().status, "pending");
      await markVerified(t, carol);
      assert.equal((await accept(token, carol)).statusCode, 200, "once verified, the same link works");
    });

    it("a revoked invitation answers INVITATION_REVOKED; a resent one kills the old link; forged tokens reveal nothing", async () => {
      const dave = await verifiedUser(t, "Dave");
      const first = await invite(dave.email);
      assert.equal((await t.call("POST", `/v1/orgs/${orgId}/invitations/${first.id}/resend`, undefined, owner.access_token)).statusCode, 200);
      const second = await tokenFor(smtp, dave.email);
      assert.notEqual(second, first.token);
      const oldAnswer = await accept(first.token, dave);
      assertProblem(oldAnswer, 400, "INVITATION_INVALID", "token");

      const forgedSecret = `${orgId}.${"A".repeat(43)}`;
      const otherOrg = await newOrg(t, dave);
      const forged = [
        forgedSecret,
        `${otherOrg}.${second.split(".")[1]}`,
        `org_00000000000000000000000000.${second.split(".")[1]}`,
        "not-a-token-at-all-xxxxxxxx",
        second.split(".")[1],
      ];
      for (const token of forged) {
        const res = await accept(token, dave);
        assertProblem(res, 400, "INVITATION_INVALID", "token");
        assert.equal(res.json().detail, oldAnswer.json().detail, "every unknown token gets the same answer");
      }
      assertProblem(
        await t.call("POST", "/v1/invitations/register", { token: forgedSecret, name: "F", password: GOOD_PASSWORD }),
        400,
        "INVITATION_INVALID",
        "token",
      );

      assert.equal((await t.call("DELETE", `/v1/orgs/${orgId}/invitations/${first.id}`, undefined, owner.access_token)).statusCode, 204);
      assertProblem(await accept(second, dave), 410, "INVITATION_REVOKED", "token");
      assertProblem(
        await t.call("POST", "/v1/invitations/register", { token: second, name: "D", password: GOOD_PASSWORD }),
        410,
        "INVITATION_REVOKED",
        "token",
      );
      assert.equal(await membership(dave.id), undefined);
    });

    it("an invitee who joined meanwhile gets ALREADY_MEMBER; accept needs a token and a signed-in user", async () => {
      const erin = await verifiedUser(t, "Erin");
      const { token } = await invite(erin.email);
      await addMember(t, orgId, erin, "viewer");
      assertProblem(await accept(token, erin), 409, "ALREADY_MEMBER");
      assert.equal((await membership(erin.id))?.role, "viewer", "the role is untouched");

      assert.equal((await t.call("POST", "/v1/invitations/accept", { token })).statusCode, 401);
      for (const [body, field] of [
        [{}, "token"],
        [{ token: 42 }, "token"],
        [{ token: "x".repeat(201) }, "token"],
        [{ token: "has spaces in it, sure" }, "token"],
        [{ token, extra: 1 }, "extra"],
      ] as [unknown, string][]) {
        assertProblem(await t.call("POST", "/v1/invitations/accept", body, erin.access_token), 400, "VALIDATION_FAILED", field);
      }
    });

    it("never logs the token", async () => {
      const frank = await verifiedUser(t, "Frank");
      const { token } = await invite(frank.email);
      assert.equal((await accept(token, frank)).statusCode, 200);
      const log = kit.log.join("");
      assert.ok(log.includes("/v1/invitations/accept"), "the log is about these requests");
      assert.ok(!log.includes(token.split(".")[1]), "the secret is not in the log");
    });

    // last: it moves the shared clock a week on
    it("an expired link answers INVITATION_EXPIRED; resending revives it with a new 7-day link", async () => {
      const gina = await verifiedUser(t, "Gina");
      const { id, token } = await invite(gina.email);
      kit.clock.advance(7 * DAY - 1000);
      gina.access_token = (await relogin(t, gina)).access_token;
      owner = await relogin(t, owner);
      const listed = await t.call("GET", `/v1/orgs/${orgId}/invitations/${id}`, undefined, owner.access_token);
      assert.equal(listed.json().status, "pending", "one second to go");
      kit.clock.advance(2000);
      assert.equal((await t.call("GET", `/v1/orgs/${orgId}/invitations/${id}`, undefined, owner.access_token)).json().status, "expired");
      assertProblem(await accept(token, gina), 410, "INVITATION_EXPIRED", "token");
      assertProblem(await t.call("POST", "/v1/invitations/register", { token, name: "G", password: GOOD_PASSWORD }), 410, "INVITATION_EXPIRED", "token");
      assert.equal(await membership(gina.id), undefined);

      const resent = await t.call("POST", `/v1/orgs/${orgId}/invitations/${id}/resend`, undefined, owner.access_token);
      assert.equal(resent.statusCode, 200, resent.body);
      assert.equal(resent.json().status, "pending");
      assert.equal(new Date(resent.json().expires_at).getTime(), kit.clock.now().getTime() + 7 * DAY);
      const fresh = await tokenFor(smtp, gina.email);
      assertProblem(await accept(token, gina), 400, "INVITATION_INVALID", "token");
      assert.equal((await accept(fresh, gina)).statusCode, 200);
      assert.equal((await membership(gina.id))?.role, "developer");
    });
  });
}
