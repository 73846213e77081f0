import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { sql, type SQL } from "drizzle-orm";
import type { LightMyRequestResponse } from "fastify";
import { BACKENDS, createTestApp, GOOD_PASSWORD, problemOf, uniqueEmail, type TestApp } from "../../../test/harness.ts";
import { linkIn, startSmtp, type ReceivedMail, type TestSmtp } from "../../../test/smtp.ts";
import { createManualClock } from "../../lib/clock.ts";

const SUBJECT = { verify: /^Verify your email address$/, reset: /^Reset your Plinth password$/, magic: /^Your Plinth sign-in link$/ };
const PATH = { verify: "/auth/verify-email", reset: "/auth/reset-password", magic: "/auth/magic-link" } as const;
const NEW_PASSWORD = "another sturdy passphrase 77";
const SECOND = 1000;
const HOUR = 3600 * SECOND;

async function rows<T>(t: TestApp, q: SQL): Promise<T[]> {
  const r = await t.db.tx({}, (tx) => tx.execute(q));
  return (r as unknown as { rows: T[] }).rows;
}

const hashOf = (token: string) => createHash("sha256").update(token).digest("base64url");

/** Asserts a 400 problem with `code` naming `field` (in `field` or in `errors`). */
function assertFieldError(res: LightMyRequestResponse, code: string, field: string): void {
  assert.equal(res.statusCode, 400, res.body);
  const p = problemOf(res);
  assert.equal(p.code, code, res.body);
  const fields = [p.field, ...(p.errors ?? []).map((e) => e.field)];
  assert.ok(fields.includes(field), `expected an error on ${field}: ${res.body}`);
}

async function register(t: TestApp, email = uniqueEmail()): Promise<{ id: string; email: string }> {
  const res = await t.call("POST", "/v1/auth/register", { email, password: GOOD_PASSWORD, name: "Mail Tester" });
  assert.equal(res.statusCode, 201, res.body);
  return { id: res.json().id, email };
}

async function login(t: TestApp, email: string, password = GOOD_PASSWORD): Promise<{ access_token: string; refresh_token: string }> {
  const res = await t.call("POST", "/v1/auth/login", { email, password });
  assert.equal(res.statusCode, 200, res.body);
  return res.json();
}

async function me(t: TestApp, access: string): Promise<{ id: string; email_verified: boolean }> {
  const res = await t.call("GET", "/v1/me", undefined, access);
  assert.equal(res.statusCode, 200, res.body);
  return res.json();
}

/** Waits for the mail of one kind to `email` and returns the token of its link (checking where the link points). */
async function tokenFrom(smtp: TestSmtp, email: string, kind: keyof typeof PATH): Promise<{ token: string; url: URL; mail: ReceivedMail }> {
  const mail = await smtp.waitFor(email, (m) => SUBJECT[kind].test(m.subject));
  const { url, token } = linkIn(mail, PATH[kind]);
  assert.equal(url.origin, "http://plinth.test");
  assert.equal(url.pathname, PATH[kind]);
  assert.match(token, /^[A-Za-z0-9_-]{43}$/);
  assert.ok(mail.html.includes(token), "the HTML part carries the same link");
  return { token, url, mail };
}

const noMailTo = (smtp: TestSmtp, email: string) => smtp.messages.filter((m) => m.to.toLowerCase() === email.toLowerCase());

for (const backend of BACKENDS) {
  describe(`email flows over SMTP (${backend})`, () => {
    let t: TestApp;
    let smtp: TestSmtp;
    const clock = createManualClock();
    before(async () => {
      smtp = await startSmtp();
      t = await createTestApp({ backend, clock, env: { SMTP_URL: smtp.url } });
    });
    after(async () => {
      await t.close();
      await smtp.close();
    });

    describe("email verification", () => {
      it("shows a landing page on GET without verifying; POST verifies once", async () => {
        const u = await register(t);
        const { access_token } = await login(t, u.email);
        const { token, url } = await tokenFrom(smtp, u.email, "verify");

        const page = await t.inject({ method: "GET", url: url.pathname + url.search });
        assert.equal(page.statusCode, 200);
        assert.match(String(page.headers["content-type"]), /^text\/html/);
        assert.match(page.body, /<form/);
        assert.equal((await me(t, access_token)).email_verified, false, "GET must not verify (mail scanners follow links)");

        const ok = await t.call("POST", "/v1/auth/verify-email", { token });
        assert.equal(ok.statusCode, 204, ok.body);
        assert.equal((await me(t, access_token)).email_verified, true);

        assertFieldError(await t.call("POST", "/v1/auth/verify-email", { token }), "INVALID_EMAIL_TOKEN", "token");
      });

      it("a verification link lives 24 hours", async () => {
        const a = await register(t);
        const b = await register(t);
        const ta = await tokenFrom(smtp, a.email, "verify");
        const tb = await tokenFrom(smtp, b.email, "verify");
        clock.advance(24 * HOUR - SECOND);
        assert.equal((await t.call("POST", "/v1/auth/verify-email", { token: ta.token })).statusCode, 204, "still valid just before 24 h");
        clock.advance(2 * SECOND);
        assertFieldError(await t.call("POST", "/v1/auth/verify-email", { token: tb.token }), "INVALID_EMAIL_TOKEN", "token");
        assert.equal((await me(t, (await login(t, b.email)).access_token)).email_verified, false);
      });

      it("resend mails a new link that replaces the old one; after verification it answers 409", async () => {
        const u = await register(t);
        const { access_token } = await login(t, u.email);
        const first = await tokenFrom(smtp, u.email, "verify");
        assert.equal((await t.call("POST", "/v1/auth/verify-email/resend")).statusCode, 401, "resend needs a signed-in user");

        const res = await t.call("POST", "/v1/auth/verify-email/resend", undefined, access_token);
        assert.equal(res.statusCode, 202, res.body);
        assert.equal(res.json().status, "accepted");
        const second = await tokenFrom(smtp, u.email, "verify");
        assert.notEqual(second.token, first.token);

        assertFieldError(await t.call("POST", "/v1/auth/verify-email", { token: first.token }), "INVALID_EMAIL_TOKEN", "token");
        assert.equal((await me(t, access_token)).email_verified, false);
        assert.equal((await t.call("POST", "/v1/auth/verify-email", { token: second.token })).statusCode, 204);

        const again = await t.call("POST", "/v1/auth/verify-email/resend", undefined, access_token);
        assert.equal(again.statusCode, 409, again.body);
        assert.equal(problemOf(again).code, "EMAIL_ALREADY_VERIFIED");
      });

      const malformed: [string, Record<string, unknown>, string][] = [
        ["too short", { token: "abc" }, "token"],
        ["too long", { token: "a".repeat(129) }, "token"],
        ["bad characters", { token: "abcdefghijklmnop.qrstuvwxyz+/=" }, "token"],
        ["missing", {}, "token"],
        ["not a string", { token: 1234567890 }, "token"],
        ["an extra field", { token: "a".repeat(43), user_id: "usr_x" }, "user_id"],
      ];
      for (const url of ["/v1/auth/verify-email", "/v1/auth/magic-link/verify"]) {
        for (const [label, body, field] of malformed) {
          it(`${url} rejects a token body with ${label} (400 naming ${field})`, async () => {
            assertFieldError(await t.call("POST", url, body), "VALIDATION_FAILED", field);
          });
        }
      }
    });

    describe("password reset", () => {
      it("sets a new password through the mailed link and ends every earlier session", async () => {
        const u = await register(t);
        const s1 = await login(t, u.email);
        const s2 = await login(t, u.email);
        const rotated = await t.call("POST", "/v1/auth/refresh", { refresh_token: s1.refresh_token });
        assert.equal(rotated.statusCode, 200);
        const s1b = rotated.json().refresh_token as string;

        const req = await t.call("POST", "/v1/auth/password-reset", { email: u.email });
        assert.equal(req.statusCode, 202, req.body);
        assert.equal(req.json().status, "accepted");
        const { token, url } = await tokenFrom(smtp, u.email, "reset");
        const page = await t.inject({ method: "GET", url: url.pathname + url.search });
        assert.equal(page.statusCode, 200);
        assert.match(String(page.headers["content-type"]), /^text\/html/);

        const ok = await t.call("POST", "/v1/auth/password-reset/confirm", { token, new_password: NEW_PASSWORD });
        assert.equal(ok.statusCode, 204, ok.body);

        assert.equal((await t.call("POST", "/v1/auth/login", { email: u.email, password: GOOD_PASSWORD })).statusCode, 401);
        const fresh = await login(t, u.email, NEW_PASSWORD);
        for (const old of [s1b, s2.refresh_token]) {
          const r = await t.call("POST", "/v1/auth/refresh", { refresh_token: old });
          assert.equal(r.statusCode, 401, `a refresh token from before the reset still works: ${r.body}`);
        }
        assert.equal((await t.call("POST", "/v1/auth/refresh", { refresh_token: fresh.refresh_token })).statusCode, 200);

        assertFieldError(
          await t.call("POST", "/v1/auth/password-reset/confirm", { token, new_password: "yet another passphrase 99" }),
          "INVALID_EMAIL_TOKEN",
          "token",
        );
        await login(t, u.email, NEW_PASSWORD);
      });

      it("refuses a weak new password without spending the token", async () => {
        const u = await register(t);
        await t.call("POST", "/v1/auth/password-reset", { email: u.email });
        const { token } = await tokenFrom(smtp, u.email, "reset");
        const confirm = (new_password: string) => t.call("POST", "/v1/auth/password-reset/confirm", { token, new_password });

        assertFieldError(await confirm("qwerty123456"), "WEAK_PASSWORD", "new_password");
        assertFieldError(await confirm(u.email.toUpperCase()), "WEAK_PASSWORD", "new_password");
        assertFieldError(await confirm("short pass"), "VALIDATION_FAILED", "new_password");
        await login(t, u.email, GOOD_PASSWORD);

        assert.equal((await confirm(NEW_PASSWORD)).statusCode, 204, "the token survived the refused attempts");
        await login(t, u.email, NEW_PASSWORD);
      });

      it("a reset link lives 1 hour", async () => {
        const a = await register(t);
        const b = await register(t);
        await Promise.all([a, b].map((u) => t.call("POST", "/v1/auth/password-reset", { email: u.email })));
        const ta = await tokenFrom(smtp, a.email, "reset");
        const tb = await tokenFrom(smtp, b.email, "reset");
        clock.advance(HOUR - SECOND);
        assert.equal((await t.call("POST", "/v1/auth/password-reset/confirm", { token: ta.token, new_password: NEW_PASSWORD })).statusCode, 204);
        clock.advance(2 * SECOND);
        const late = await t.call("POST", "/v1/auth/password-reset/confirm", { token: tb.token, new_password: NEW_PASSWORD });
        assertFieldError(late, "INVALID_EMAIL_TOKEN", "token");
        await login(t, b.email, GOOD_PASSWORD);
      });
    });

    describe("magic link", () => {
      it("signs in once, verifies the email and records the login", async () => {
        const u = await register(t);
        const req = await t.call("POST", "/v1/auth/magic-link", { email: u.email });
        assert.equal(req.statusCode, 202, req.body);
        const { token, url } = await tokenFrom(smtp, u.email, "magic");
        const page = await t.inject({ method: "GET", url: url.pathname + url.search });
        assert.equal(page.statusCode, 200);
        assert.match(String(page.headers["content-type"]), /^text\/html/);

        const res = await t.call("POST", "/v1/auth/magic-link/verify", { token });
        assert.equal(res.statusCode, 200, res.body);
        const pair = res.json();
        assert.equal(pair.token_type, "Bearer");
        const who = await me(t, pair.access_token);
        assert.equal(who.id, u.id);
        assert.equal(who.email_verified, true, "a magic link proves the address");
        assert.equal((await t.call("POST", "/v1/auth/refresh", { refresh_token: pair.refresh_token })).statusCode, 200);

        assertFieldError(await t.call("POST", "/v1/auth/magic-link/verify", { token }), "INVALID_EMAIL_TOKEN", "token");

        const logins = await t.call("GET", "/v1/me/logins", undefined, pair.access_token);
        assert.equal(logins.statusCode, 200, logins.body);
        const items = logins.json().items as { method: string; result: string }[];
        assert.equal(items.filter((i) => i.method === "magic_link" && i.result === "success").length, 1, logins.body);
      });

      it("of two concurrent uses of one link exactly one signs in", async () => {
        const u = await register(t);
        await t.call("POST", "/v1/auth/magic-link", { email: u.email });
        const { token } = await tokenFrom(smtp, u.email, "magic");
        const both = await Promise.all([1, 2].map(() => t.call("POST", "/v1/auth/magic-link/verify", { token })));
        assert.deepEqual(both.map((r) => r.statusCode).sort(), [200, 400], both.map((r) => r.body).join("\n"));
        assert.equal(problemOf(both.find((r) => r.statusCode === 400)!).code, "INVALID_EMAIL_TOKEN");
        const sessions = await rows<{ n: number }>(t, sql`select count(*)::int as n from sessions where user_id = ${u.id} and method = 'magic_link'`);
        assert.equal(sessions[0].n, 1);
      });

      it("a magic link lives 15 minutes", async () => {
        const a = await register(t);
        const b = await register(t);
        await Promise.all([a, b].map((u) => t.call("POST", "/v1/auth/magic-link", { email: u.email })));
        const ta = await tokenFrom(smtp, a.email, "magic");
        const tb = await tokenFrom(smtp, b.email, "magic");
        clock.advance(15 * 60 * SECOND - SECOND);
        assert.equal((await t.call("POST", "/v1/auth/magic-link/verify", { token: ta.token })).statusCode, 200);
        clock.advance(2 * SECOND);
        assertFieldError(await t.call("POST", "/v1/auth/magic-link/verify", { token: tb.token }), "INVALID_EMAIL_TOKEN", "token");
      });
    });

    for (const [url, kind] of [
      ["/v1/auth/password-reset", "reset"],
      ["/v1/auth/magic-link", "magic"],
    ] as const) {
      it(`${url} answers an unknown address like a known one and mails nothing`, async () => {
        const known = await register(t);
        const unknown = uniqueEmail("nobody");
        const [a, b] = await Promise.all([t.call("POST", url, { email: unknown }), t.call("POST", url, { email: known.email })]);
        assert.equal(a.statusCode, 202, a.body);
        assert.equal(b.statusCode, 202, b.body);
        assert.deepEqual(a.json(), b.json());
        await tokenFrom(smtp, known.email, kind);
        await t.deps.jobs.drain();
        assert.deepEqual(noMailTo(smtp, unknown), []);
      });
    }

    it("keeps mailed tokens only as hashes, and never in job payloads", async () => {
      const enqueued: unknown[] = [];
      const jobs = t.deps.jobs;
      const original = jobs.enqueue;
      jobs.enqueue = (tx, kind, payload, opts) => {
        enqueued.push({ kind, payload });
        return original.call(jobs, tx, kind, payload, opts);
      };
      let u: { id: string; email: string };
      const tokens: string[] = [];
      try {
        u = await register(t);
        tokens.push((await tokenFrom(smtp, u.email, "verify")).token);
        await t.call("POST", "/v1/auth/password-reset", { email: u.email });
        tokens.push((await tokenFrom(smtp, u.email, "reset")).token);
        await t.call("POST", "/v1/auth/magic-link", { email: u.email });
        tokens.push((await tokenFrom(smtp, u.email, "magic")).token);
      } finally {
        jobs.enqueue = original;
      }
      assert.deepEqual(enqueued, [
        { kind: "identity.send-email", payload: { purpose: "verify_email", userId: u.id } },
        { kind: "identity.send-email", payload: { purpose: "reset_password", userId: u.id } },
        { kind: "identity.send-email", payload: { purpose: "magic_link", userId: u.id } },
      ]);

      // ids share the manual clock's instant, so compare the hashes as sets
      const stored = await rows<Record<string, unknown>>(t, sql`select * from email_tokens where user_id = ${u.id}`);
      assert.deepEqual(stored.map((r) => r.token_hash).sort(), tokens.map(hashOf).sort(), "each mailed token is stored as its SHA-256");
      const jobRows = await rows<Record<string, unknown>>(t, sql`select * from jobs`);
      const dump = JSON.stringify(stored) + JSON.stringify(jobRows) + JSON.stringify(enqueued);
      for (const token of tokens) assert.ok(!dump.includes(token), "a raw token is stored");
      // the tokens still work: the hashes above are what lookups use
      assert.equal((await t.call("POST", "/v1/auth/magic-link/verify", { token: tokens[2] })).statusCode, 200);
    });
  });

  describe(`email flows with the dev outbox (${backend})`, () => {
    let t: TestApp;
    before(async () => {
      // no worker: drain() is then the only thing running jobs, so its return means the mail was written
      t = await createTestApp({ backend, worker: false });
    });
    after(() => t.close());

    it("keeps the verification mail in mail_outbox when SMTP_URL is unset", async () => {
      assert.equal(t.deps.mailer.kind, "outbox");
      const u = await register(t);
      assert.deepEqual(await rows(t, sql`select id from mail_outbox where "to" = ${u.email}`), [], "nothing is mailed before the job runs");
      assert.ok((await t.deps.jobs.drain()) >= 1);
      const mails = await rows<{ to: string; subject: string; text: string; html: string | null }>(
        t,
        sql`select "to", subject, text, html from mail_outbox where "to" = ${u.email}`,
      );
      assert.equal(mails.length, 1);
      assert.match(mails[0].subject, SUBJECT.verify);
      const { url, token } = linkIn({ ...mails[0], html: mails[0].html ?? "" }, PATH.verify);
      assert.equal(url.origin + url.pathname, "http://plinth.test/auth/verify-email");
      assert.equal((await t.call("POST", "/v1/auth/verify-email", { token })).statusCode, 204);
      assert.equal((await me(t, (await login(t, u.email)).access_token)).email_verified, true);
    });
  });
}
