import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { sql } from "drizzle-orm";
import { BACKENDS, addMember, assertProblem, signUp, uniqueEmail, type TestApp, type TestUser } from "../../../test/harness.ts";
import type { TestSmtp } from "../../../test/smtp.ts";
import { newId } from "../../lib/ids.ts";
import { ALL_PERMISSIONS, BUILT_IN_ROLES } from "../access/permissions.ts";
import { addCustomRole, addTeam, auditActions, newOrg, relogin, rows, sha256, startKit, tokenFor, type Kit } from "./invitations.test-kit.ts";

const DAY = 24 * 3600 * 1000;

for (const backend of BACKENDS) {
  describe(`managing invitations (${backend})`, () => {
    let kit: Kit;
    let t: TestApp;
    let smtp: TestSmtp;
    let owner: TestUser;
    let admin: TestUser;
    let developer: TestUser;
    let inviter: TestUser; // custom role: members:invite + members:read only
    let orgId: string;
    /** Every response body these tests saw, to prove no token ever leaves the server. */
    const bodies: string[] = [];
    before(async () => {
      kit = await startKit(backend);
      ({ t, smtp } = kit);
      [owner, admin, developer, inviter] = [await signUp(t, "Owner"), await signUp(t, "Admin"), await signUp(t, "Dev"), await signUp(t, "Inviter")];
      orgId = await newOrg(t, owner);
      await addMember(t, orgId, admin, "admin");
      await addMember(t, orgId, developer, "developer");
      await addCustomRole(t, orgId, "recruiter", ["members:invite", "members:read"]);
      await addCustomRole(t, orgId, "reader", ["members:read"]);
      await addMember(t, orgId, inviter, "recruiter");
    });
    after(() => kit.close());

    async function call(method: string, path: string, body: unknown, user: TestUser) {
      const res = await t.call(method, `/v1/orgs/${orgId}${path}`, body, user.access_token);
      bodies.push(res.body);
      return res;
    }
    const invite = (body: Record<string, unknown>, user = owner) => call("POST", "/invitations", body, user);
    const count = async () => (await rows<{ n: number }>(t, sql`select count(*)::int as n from invitations where org_id = ${orgId}`))[0].n;
    const eventCount = async () => (await auditActions(t, orgId)).length;

    it("creates an invitation (201), audits it, and mails a link whose token only the mail carries", async () => {
      const team = await addTeam(t, orgId);
      const email = uniqueEmail("invitee");
      const res = await invite({ email: `  ${email}  `, role: "developer", teams: [team] });
      assert.equal(res.statusCode, 201, res.body);
      const inv = res.json();
      assert.match(inv.id, /^inv_[0-9a-z]{26}$/);
      assert.equal(inv.email, email, "trimmed");
      assert.equal(inv.role, "developer");
      assert.deepEqual(inv.team_ids, [team]);
      assert.equal(inv.status, "pending");
      assert.equal(inv.invited_by, owner.id);
      assert.equal(new Date(inv.expires_at).getTime() - new Date(inv.created_at).getTime(), 7 * DAY);
      for (const k of ["token", "token_hash"]) assert.ok(!(k in inv), k);
      const [created] = (await auditActions(t, orgId)).slice(-1);
      assert.equal(created.action, "invitation.created");
      assert.equal(created.actorId, owner.id);
      assert.deepEqual([created.targetType, created.targetId], ["invitation", inv.id]);
      assert.deepEqual(created.diff, { email: [null, email], role: [null, "developer"], team_ids: [null, [team]] });

      const mail = await smtp.waitFor(email, (m) => /^Join Invite Co on Plinth$/.test(m.subject));
      assert.match(mail.text, /Owner invited you to join Invite Co on Plinth as developer/);
      const token = await tokenFor({ ...smtp, waitFor: async () => mail }, email);
      const [row] = await rows<{ token_hash: string; payload: unknown }>(t, sql`select token_hash from invitations where id = ${inv.id}`);
      assert.equal(row.token_hash, sha256(token.split(".")[1]));
      const jobs = await rows<{ payload: unknown }>(t, sql`select payload from jobs where payload::text like ${`%${inv.id}%`}`);
      for (const j of jobs) assert.ok(!JSON.stringify(j.payload).includes(token.split(".")[1]), "no secret in a job payload");
      const listed = await call("GET", "/invitations", undefined, owner);
      assert.equal(listed.json().items[0].sent_count, 1);
      assert.ok(!listed.body.includes(token.split(".")[1]) && !listed.body.includes(row.token_hash));
    });

    it("refuses a role above the caller's own with 403, and a caller without members:invite with 403", async () => {
      const before = [await count(), await eventCount()];
      assertProblem(await invite({ email: uniqueEmail(), role: "owner" }, admin), 403, "ROLE_ABOVE_OWN", {
        field: "role",
        permission: "org:delete",
        missing: ["org:delete"],
      });
      const above = await invite({ email: uniqueEmail(), role: "developer" }, inviter);
      assertProblem(above, 403, "ROLE_ABOVE_OWN", "role");
      assert.equal(above.json().permission, "org:read", "names the first permission the caller lacks");
      // and every one, in catalog order (access/authority.ts)
      // (what a developer holds beyond the recruiter's members:invite and members:read: derived, as the catalog grows)
      assert.deepEqual(
        above.json().missing,
        ALL_PERMISSIONS.filter((p) => (BUILT_IN_ROLES.developer.permissions as readonly string[]).includes(p) && p !== "members:read"),
      );
      assert.ok((above.json().missing as string[]).includes("secrets:write"));
      assertProblem(await invite({ email: uniqueEmail(), role: "admin" }, inviter), 403, "ROLE_ABOVE_OWN", "role");
      const forbidden = await invite({ email: uniqueEmail(), role: "viewer" }, developer);
      assertProblem(forbidden, 403, "FORBIDDEN");
      assert.equal(forbidden.json().permission, "members:invite");
      assert.deepEqual([await count(), await eventCount()], before, "nothing written");
      // within their own permissions they may: a custom role that is a subset, the same role, and owners make owners
      assert.equal((await invite({ email: uniqueEmail(), role: "reader" }, inviter)).statusCode, 201);
      assert.equal((await invite({ email: uniqueEmail(), role: "recruiter" }, inviter)).statusCode, 201);
      assert.equal((await invite({ email: uniqueEmail(), role: "admin" }, admin)).statusCode, 201);
      assert.equal((await invite({ email: uniqueEmail(), role: "owner" }, owner)).statusCode, 201);
    });

    it("placing the invitee in a team needs teams:update or being the team's maintainer", async () => {
      const team = await addTeam(t, orgId, "Recruiting targets");
      const before = await count();
      const res = await invite({ email: uniqueEmail(), role: "reader", teams: [team] }, inviter);
      assertProblem(res, 403, "FORBIDDEN");
      assert.equal(JSON.parse(res.body).permission, "teams:update");
      assert.equal(await count(), before, "nothing written");
      // the recruiter maintains the team: now they may
      const put = await t.call("PUT", `/v1/orgs/${orgId}/teams/${team}/members/${inviter.id}`, { role: "maintainer" }, owner.access_token);
      assert.equal(put.statusCode, 201, put.body);
      const ok = await invite({ email: uniqueEmail(), role: "reader", teams: [team] }, inviter);
      assert.equal(ok.statusCode, 201, ok.body);
    });

    it("refuses unknown roles and teams with 400 naming the field, members with ALREADY_MEMBER, a second invitation with INVITATION_PENDING", async () => {
      const other = await newOrg(t, admin);
      const foreignTeam = await addTeam(t, other);
      const before = [await count(), await eventCount()];
      assertProblem(await invite({ email: uniqueEmail(), role: "wizard" }), 400, "VALIDATION_FAILED", "role");
      assertProblem(await invite({ email: uniqueEmail(), role: "viewer", teams: [foreignTeam] }), 400, "VALIDATION_FAILED", "teams");
      assertProblem(await invite({ email: uniqueEmail(), role: "viewer", teams: [newId("team")] }), 400, "VALIDATION_FAILED", "teams");
      assertProblem(await invite({ email: developer.email.toUpperCase(), role: "viewer" }), 409, "ALREADY_MEMBER", "email");
      assert.deepEqual([await count(), await eventCount()], before, "nothing written");
      const email = uniqueEmail("twice");
      assert.equal((await invite({ email, role: "viewer" })).statusCode, 201);
      assertProblem(await invite({ email: email.toUpperCase(), role: "developer" }), 409, "INVITATION_PENDING", "email");
    });

    const badCreate: [string, Record<string, unknown>, string][] = [
      ["a missing email", { role: "viewer" }, "email"],
      ["a malformed email", { email: "not-an-email", role: "viewer" }, "email"],
      ["an email over 254 characters", { email: `${"a".repeat(250)}@example.com`, role: "viewer" }, "email"],
      ["a missing role", { email: "x@example.com" }, "role"],
      ["an empty role", { email: "x@example.com", role: "" }, "role"],
      ["a 65-character role", { email: "x@example.com", role: "r".repeat(65) }, "role"],
      ["teams that are not team ids", { email: "x@example.com", role: "viewer", teams: ["grp_1"] }, "teams.0"],
      ["repeated teams", { email: "x@example.com", role: "viewer", teams: ["team_00000000000000000000000000", "team_00000000000000000000000000"] }, "teams"],
      ["teams that is not an array", { email: "x@example.com", role: "viewer", teams: "team_00000000000000000000000000" }, "teams"],
      ["an unknown field", { email: "x@example.com", role: "viewer", token: "abc" }, "token"],
    ];
    for (const [label, body, field] of badCreate) {
      it(`POST …/invitations refuses ${label} with 400 naming ${field}, writing nothing`, async () => {
        const before = [await count(), await eventCount()];
        assertProblem(await invite(body), 400, "VALIDATION_FAILED", field);
        assert.deepEqual([await count(), await eventCount()], before);
      });
    }

    it("bulk: creates each valid entry, reports each invalid one in order, and mails only the invited", async () => {
      const team = await addTeam(t, orgId);
      const [a, b, dup] = [uniqueEmail("bulk-a"), uniqueEmail("bulk-b"), uniqueEmail("bulk-dup")];
      const before = await count();
      const res = await call(
        "POST",
        "/invitations/bulk",
        {
          invitations: [
            { email: a, role: "viewer", teams: [team] },
            { email: uniqueEmail(), role: "wizard" },
            { email: developer.email, role: "viewer" },
            { email: dup, role: "viewer" },
            { email: dup, role: "developer" },
            { email: uniqueEmail(), role: "viewer", teams: [newId("team")] },
            { email: b, role: "admin" },
          ],
        },
        admin,
      );
      assert.equal(res.statusCode, 200, res.body);
      const results = res.json().results as { email: string; status: string; invitation_id?: string; error?: { code: string; field?: string } }[];
      assert.deepEqual(
        results.map((r) => r.status),
        ["invited", "error", "error", "invited", "error", "error", "invited"],
      );
      assert.deepEqual(
        results.map((r) => r.error?.code ?? null),
        [null, "VALIDATION_FAILED", "ALREADY_MEMBER", null, "INVITATION_PENDING", "VALIDATION_FAILED", null],
      );
      assert.deepEqual([results[1].error?.field, results[5].error?.field], ["role", "teams"]);
      assert.equal(results[0].email, a);
      assert.equal(await count(), before + 3);
      for (const r of results.filter((x) => x.status === "invited")) {
        const got = await call("GET", `/invitations/${r.invitation_id}`, undefined, owner);
        assert.equal(got.json().email, r.email);
        await tokenFor(smtp, r.email);
      }
      const created = (await auditActions(t, orgId)).filter((e) => e.action === "invitation.created" && results.some((r) => r.invitation_id === e.targetId));
      assert.equal(created.length, 3);
      for (const e of created) assert.equal(e.actorId, admin.id);
    });

    it("bulk: admin inviting an owner is refused for that entry only; 0 or 101 entries and malformed entries answer 400, writing nothing", async () => {
      const res = await call(
        "POST",
        "/invitations/bulk",
        {
          invitations: [
            { email: uniqueEmail(), role: "owner" },
            { email: uniqueEmail(), role: "viewer" },
          ],
        },
        admin,
      );
      assert.deepEqual(
        res.json().results.map((r: { status: string; error?: { code: string } }) => r.error?.code ?? r.status),
        ["ROLE_ABOVE_OWN", "invited"],
      );
      const before = [await count(), await eventCount()];
      const many = Array.from({ length: 101 }, () => ({ email: uniqueEmail(), role: "viewer" }));
      assertProblem(await call("POST", "/invitations/bulk", { invitations: many }, owner), 400, "VALIDATION_FAILED", "invitations");
      assertProblem(await call("POST", "/invitations/bulk", { invitations: [] }, owner), 400, "VALIDATION_FAILED", "invitations");
      assertProblem(await call("POST", "/invitations/bulk", {}, owner), 400, "VALIDATION_FAILED", "invitations");
      const oneBad = [
        { email: uniqueEmail(), role: "viewer" },
        { email: "nope", role: "viewer" },
      ];
      assertProblem(await call("POST", "/invitations/bulk", { invitations: oneBad }, owner), 400, "VALIDATION_FAILED", "invitations.1.email");
      assertProblem(
        await call("POST", "/invitations/bulk", { invitations: [{ email: uniqueEmail(), role: "viewer", x: 1 }] }, owner),
        400,
        "VALIDATION_FAILED",
        "invitations.0.x",
      );
      assertProblem(await call("POST", "/invitations/bulk", { invitations: [{ email: uniqueEmail(), role: "viewer" }] }, developer), 403, "FORBIDDEN");
      assert.deepEqual([await count(), await eventCount()], before);
      // 100 is the limit: each entry is answered (here all refused, so the test does not wait for 100 mails)
      const hundred = await call("POST", "/invitations/bulk", { invitations: many.slice(0, 100).map((m) => ({ ...m, role: "wizard" })) }, owner);
      assert.equal(hundred.statusCode, 200, hundred.body);
      assert.equal(hundred.json().results.length, 100);
      assert.ok(hundred.json().results.every((r: { status: string }) => r.status === "error"));
      assert.deepEqual([await count(), await eventCount()], before);
    });

    it("lists newest first with a status filter and cursor pages, for members:read", async () => {
      const all = await call("GET", "/invitations?limit=200", undefined, owner);
      assert.equal(all.statusCode, 200, all.body);
      const items = all.json().items as { id: string; status: string }[];
      assert.ok(items.length >= 8, `${items.length} invitations`);
      assert.deepEqual(
        items.map((i) => i.id),
        [...items.map((i) => i.id)].sort().reverse(),
      );
      const pages: string[] = [];
      let cursor: string | null = null;
      do {
        const res = await call("GET", `/invitations?status=pending&limit=3${cursor ? `&cursor=${cursor}` : ""}`, undefined, inviter);
        assert.equal(res.statusCode, 200, res.body);
        for (const i of res.json().items) {
          assert.equal(i.status, "pending");
          pages.push(i.id);
        }
        cursor = res.json().next_cursor;
      } while (cursor);
      assert.deepEqual(
        pages,
        items.filter((i) => i.status === "pending").map((i) => i.id),
      );
      assert.equal(new Set(pages).size, pages.length);
      // members:read is enough to list (a viewer), not to invite
      const viewer = await signUp(t, "Viewer");
      await addMember(t, orgId, viewer, "viewer");
      assert.equal((await call("GET", "/invitations?status=revoked", undefined, viewer)).statusCode, 200);
      for (const q of ["status=bogus", "limit=0", "limit=201", "cursor=%24%24", `cursor=${Buffer.from("usr_1").toString("base64url")}`, "sort=asc"]) {
        const field = q.split("=")[0];
        assertProblem(await call("GET", `/invitations?${q}`, undefined, owner), 400, "VALIDATION_FAILED", field);
      }
    });

    it("resend: a new link (the old one dead), a new expiry, sent_count + 1, audited; not for accepted or revoked", async () => {
      const email = uniqueEmail("resend");
      const inv = (await invite({ email, role: "viewer" })).json();
      const first = await tokenFor(smtp, email);
      kit.clock.advance(60_000);
      const res = await call("POST", `/invitations/${inv.id}/resend`, undefined, admin);
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(new Date(res.json().expires_at).getTime(), kit.clock.now().getTime() + 7 * DAY);
      const second = await tokenFor(smtp, email);
      assert.notEqual(second, first);
      const [row] = await rows<{ token_hash: string; sent_count: number }>(t, sql`select token_hash, sent_count from invitations where id = ${inv.id}`);
      assert.equal(row.token_hash, sha256(second.split(".")[1]), "only the new link's hash is kept");
      assert.equal(row.sent_count, 2);
      const [e] = (await auditActions(t, orgId)).slice(-1);
      assert.deepEqual([e.action, e.actorId, e.targetId], ["invitation.resent", admin.id, inv.id]);
      assert.deepEqual(e.diff, { expires_at: [inv.expires_at, res.json().expires_at] });

      assert.equal((await call("DELETE", `/invitations/${inv.id}`, undefined, owner)).statusCode, 204);
      assertProblem(await call("POST", `/invitations/${inv.id}/resend`, undefined, owner), 410, "INVITATION_REVOKED");
      const accepted = (await invite({ email: uniqueEmail("acc"), role: "viewer" })).json();
      await t.db.owner.execute(sql`update invitations set accepted_at = now() where id = ${accepted.id}`);
      assertProblem(await call("POST", `/invitations/${accepted.id}/resend`, undefined, owner), 409, "INVITATION_USED");
      assertProblem(await call("DELETE", `/invitations/${accepted.id}`, undefined, owner), 409, "INVITATION_USED");
      // an admin cannot resend an owner's invitation to the owner role
      const ownerInv = (await invite({ email: uniqueEmail("own"), role: "owner" })).json();
      assertProblem(await call("POST", `/invitations/${ownerInv.id}/resend`, undefined, admin), 403, "ROLE_ABOVE_OWN", {
        permission: "org:delete",
        missing: ["org:delete"],
      });
    });

    it("revoke: 204, audited once, the status is revoked; revoking again changes nothing", async () => {
      const inv = (await invite({ email: uniqueEmail("revoke"), role: "viewer" })).json();
      const res = await call("DELETE", `/invitations/${inv.id}`, undefined, inviter);
      assert.equal(res.statusCode, 204, res.body);
      const [e] = (await auditActions(t, orgId)).slice(-1);
      assert.deepEqual([e.action, e.actorId, e.targetType, e.targetId], ["invitation.revoked", inviter.id, "invitation", inv.id]);
      assert.deepEqual(e.diff, { status: ["pending", "revoked"] });
      const got = (await call("GET", `/invitations/${inv.id}`, undefined, owner)).json();
      assert.equal(got.status, "revoked");
      assert.ok(got.revoked_at);
      const n = await eventCount();
      assert.equal((await call("DELETE", `/invitations/${inv.id}`, undefined, owner)).statusCode, 204);
      assert.equal(await eventCount(), n);
      assertProblem(await call("DELETE", `/invitations/${inv.id}`, undefined, developer), 403, "FORBIDDEN");
      // revoked frees the address for a new invitation
      assert.equal((await invite({ email: inv.email, role: "viewer" })).statusCode, 201);
    });

    it("another org's invitation ids answer 404 on get, resend and revoke, and change nothing", async () => {
      const stranger = await signUp(t, "Stranger");
      const otherOrg = await newOrg(t, stranger);
      const res = await t.call("POST", `/v1/orgs/${otherOrg}/invitations`, { email: uniqueEmail("theirs"), role: "viewer" }, stranger.access_token);
      assert.equal(res.statusCode, 201);
      const theirs = res.json().id as string;
      // the invitation's own mail job may run meanwhile (token, sent_count, last_sent_at): compare everything else
      const snapshot = async () =>
        (
          await rows(
            t,
            sql`select id, org_id, email, role, team_ids, invited_by, expires_at, accepted_at, accepted_by, revoked_at, created_at from invitations where id = ${theirs}`,
          )
        )[0];
      const before = await snapshot();
      for (const [method, path] of [
        ["GET", ""],
        ["POST", "/resend"],
        ["DELETE", ""],
      ] as const) {
        assertProblem(await call(method, `/invitations/${theirs}${path}`, undefined, owner), 404, "INVITATION_NOT_FOUND");
        assertProblem(await call(method, `/invitations/${newId("invitation")}${path}`, undefined, owner), 404, "INVITATION_NOT_FOUND");
        assertProblem(await call(method, `/invitations/inv_nope${path}`, undefined, owner), 400, "VALIDATION_FAILED", "invitationId");
        // and the stranger cannot reach this org's routes at all
        assert.equal((await t.call(method, `/v1/orgs/${orgId}/invitations/${theirs}${path}`, undefined, stranger.access_token)).statusCode, 404);
      }
      assert.deepEqual(await snapshot(), before);
      assert.ok(!(await t.call("GET", `/v1/orgs/${orgId}/invitations?limit=200`, undefined, owner.access_token)).body.includes(theirs));
    });

    // last: it moves the shared clock a week on
    it("an expired, unanswered invitation gives way to a new one for the same address", async () => {
      const email = uniqueEmail("expired");
      const old = (await invite({ email, role: "viewer" })).json();
      kit.clock.advance(7 * DAY + 1000);
      owner = await relogin(t, owner);
      assert.equal((await call("GET", `/invitations/${old.id}`, undefined, owner)).json().status, "expired");
      const expired = await call("GET", "/invitations?status=expired&limit=200", undefined, owner);
      assert.ok(expired.json().items.some((i: { id: string }) => i.id === old.id));
      const res = await invite({ email, role: "developer" });
      assert.equal(res.statusCode, 201, res.body);
      assert.equal((await call("GET", `/invitations/${old.id}`, undefined, owner)).json().status, "revoked");
      const [superseded, created] = (await auditActions(t, orgId)).slice(-2);
      assert.deepEqual(
        [superseded.action, superseded.targetId, superseded.diff],
        ["invitation.revoked", old.id, { status: ["expired", "revoked"], reason: [null, "superseded"] }],
      );
      assert.deepEqual([created.action, created.targetId], ["invitation.created", res.json().id]);
    });

    it("no response carried a token or its hash", async () => {
      const hashes = await rows<{ token_hash: string | null }>(t, sql`select token_hash from invitations where token_hash is not null`);
      assert.ok(hashes.length > 10);
      const all = bodies.join("\n");
      for (const h of hashes) assert.ok(!all.includes(h.token_hash as string));
      for (const m of smtp.messages) {
        const secret = /token=org_[0-9a-z]{26}(?:\.|%2E)([A-Za-z0-9_-]{43})/.exec(m.text)?.[1];
        if (secret) assert.ok(!all.includes(secret), "a mailed secret appeared in a response");
      }
    });
  });
}
