/**
 * Regression (issue 9, "emails are not normalised"): zero-width characters, homoglyph mixes and compatibility forms
 * registered as new accounts, and invitations were matched by lower-casing in JS while uniqueness used SQL lower().
 * Every address is now made canonical once (lib/email.ts), stored so, and compared so.
 */
import assert from "node:assert/strict";
import { randomInt } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { domainToASCII } from "node:url";
import { sql } from "drizzle-orm";
import type { LightMyRequestResponse } from "fastify";
import { BACKENDS, GOOD_PASSWORD, problemOf, signUp, type TestApp, type TestUser } from "../../../test/harness.ts";
import type { TestSmtp } from "../../../test/smtp.ts";
import { markVerified, newOrg, rows, startKit, tokenFor, type Kit } from "../invitations/invitations.test-kit.ts";

const ZWSP = "\u200b";
/** ASCII letters, digits and punctuation as their fullwidth compatibility forms (NFKC maps them back). */
const fullwidth = (s: string) => s.replace(/[!-~]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 0xfee0));
/** Digits only: a tag that belongs to no script, so it can sit beside letters of any. */
const tag = () => String(randomInt(1e9, 1e10));

/** A 400 VALIDATION_FAILED naming `field`, whose detail matches `reason`. */
function refused(res: LightMyRequestResponse, field: string, reason: RegExp): void {
  assert.equal(res.statusCode, 400, res.body);
  const p = problemOf(res);
  assert.equal(p.code, "VALIDATION_FAILED", res.body);
  assert.equal(p.field, field, res.body);
  assert.match(p.detail, reason);
}

for (const backend of BACKENDS) {
  describe(`email addresses are canonical (${backend})`, () => {
    let kit: Kit;
    let t: TestApp;
    let smtp: TestSmtp;
    before(async () => {
      kit = await startKit(backend);
      ({ t, smtp } = kit);
    });
    after(() => kit.close());

    const register = (email: string, name = "Ada") => t.call("POST", "/v1/auth/register", { email, password: GOOD_PASSWORD, name });
    const login = (email: string) => t.call("POST", "/v1/auth/login", { email, password: GOOD_PASSWORD });
    const count = async (table: "users" | "invitations") => (await rows<{ n: number }>(t, sql`select count(*)::int as n from ${sql.identifier(table)}`))[0].n;

    it("a zero-width space (or another invisible character) in an address answers 400 naming email, on every path, writing nothing", async () => {
      const n = tag();
      const before = await count("users");
      const hidden = `ada${ZWSP}.${n}@example.com`;
      refused(await register(hidden), "email", /invisible.*U\+200B/);
      refused(await login(hidden), "email", /U\+200B/);
      refused(await t.call("POST", "/v1/auth/magic-link", { email: hidden }), "email", /U\+200B/);
      refused(await t.call("POST", "/v1/auth/password-reset", { email: hidden }), "email", /U\+200B/);
      // joiners, soft hyphen, a bidi override and isolate, a variation selector, a Hangul filler, a word joiner
      for (const c of ["\u200c", "\u200d", "\u00ad", "\u202e", "\u2066", "\ufe0f", "\u3164", "\u2060"]) {
        const code = `U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}`;
        refused(await register(`ad${c}a.${n}@example.com`), "email", new RegExp(code.replace("+", "\\+")));
        refused(await register(`ada.${n}@exam${c}ple.com`), "email", /invisible/);
      }
      // a BOM inside is white space, refused by the schema itself (at either end it is trimmed)
      assert.equal(problemOf(await register(`ad\ufeffa.${n}@example.com`)).field, "email");
      assert.equal(await count("users"), before, "no account (so no mail)");
      // the address without it is fine
      assert.equal((await register(`ada.${n}@example.com`)).statusCode, 201);
    });

    it("ADA@EXAMPLE.COM and fullwidth ａｄａ@example.com are ada@example.com: one account, stored lower-cased", async () => {
      const local = `ada.fi.${tag()}`;
      const canonical = `${local}@example.com`;
      const created = await register(`${local.toUpperCase()}@EXAMPLE.COM`);
      assert.equal(created.statusCode, 201, created.body);
      for (const variant of [`${fullwidth(local)}@example.com`, `${local}@${fullwidth("example")}.${fullwidth("com")}`, canonical]) {
        const res = await login(variant);
        assert.equal(res.statusCode, 200, `${variant}: ${res.body}`);
        const me = await t.call("GET", "/v1/me", undefined, res.json().access_token);
        assert.equal(me.json().id, created.json().id, variant);
      }
      assert.equal(created.json().email, canonical, "stored in the canonical form");
      // registering again in any of its forms is the duplicate it is: 409 EMAIL_TAKEN on email
      for (const variant of [canonical.toUpperCase(), `${fullwidth(local)}@example.com`, `${local.replace("fi", "\ufb01")}@example.com`]) {
        const dup = await register(variant, "Twin");
        assert.equal(dup.statusCode, 409, `${variant}: ${dup.body}`);
        assert.equal(problemOf(dup).code, "EMAIL_TAKEN");
        assert.equal(problemOf(dup).field, "email");
      }
      // the emailed flows find the account through a compatibility form too
      assert.equal((await t.call("POST", "/v1/auth/magic-link", { email: `${fullwidth(local)}@example.com` })).statusCode, 202);
      await smtp.waitFor(canonical, (m) => /sign-in link/.test(m.subject));
    });

    it("refuses Latin mixed with Cyrillic or Greek (also in a punycode domain), and takes an address in one non-Latin script", async () => {
      const n = tag();
      const before = await count("users");
      refused(await register(`\u0430da.${n}@example.com`), "email", /mixes Cyrillic and Latin letters before the @/);
      refused(await register(`b\u03bfb.${n}@example.com`), "email", /mixes Latin and Greek letters before the @/);
      refused(await register(`ada.${n}@ex\u0430mple.com`), "email", /mixes Latin and Cyrillic letters in the domain part "ex\u0430mple"/);
      const puny = domainToASCII("ex\u0430mple.com");
      assert.match(puny, /^xn--/);
      refused(await register(`ada.${n}@${puny}`), "email", /mixes Latin and Cyrillic/);
      refused(await login(`\u0430da.${n}@example.com`), "email", /mixes/);
      assert.equal(await count("users"), before);

      const ivan = `иван.${n}@пример.рф`;
      const res = await register(ivan.toUpperCase(), "Иван");
      assert.equal(res.statusCode, 201, res.body);
      assert.equal(res.json().email, ivan);
      // the same domain spelt in punycode is the same account
      const viaPuny = await login(`иван.${n}@${domainToASCII("пример.рф")}`);
      assert.equal(viaPuny.statusCode, 200, viaPuny.body);
      const me = await t.call("GET", "/v1/me", undefined, viaPuny.json().access_token);
      assert.equal(me.json().id, res.json().id);
    });

    it("an invitation to Bob@Example.com (or fullwidth ｂｏｂ) is accepted by bob@example.com; one with a zero-width character is refused at creation", async () => {
      const owner = await signUp(t, "Owner");
      const n = tag();
      const bobEmail = `bob.${n}@example.com`;
      assert.equal((await register(bobEmail, "Bob")).statusCode, 201);
      const { access_token, refresh_token } = (await login(bobEmail)).json();
      const me = await t.call("GET", "/v1/me", undefined, access_token);
      const bob: TestUser = { id: me.json().id, email: bobEmail, password: GOOD_PASSWORD, access_token, refresh_token };
      await markVerified(t, bob);

      const invite = (orgId: string, email: string) => t.call("POST", `/v1/orgs/${orgId}/invitations`, { email, role: "viewer" }, owner.access_token);
      for (const address of [`${fullwidth(`bob.${n}`)}@example.com`, `Bob.${n}@Example.com`]) {
        const orgId = await newOrg(t, owner);
        const res = await invite(orgId, address);
        assert.equal(res.statusCode, 201, res.body);
        const accepted = await t.call("POST", "/v1/invitations/accept", { token: await tokenFor(smtp, res.json().email) }, bob.access_token);
        assert.equal(accepted.statusCode, 200, `${address}: ${accepted.body}`);
        assert.equal(accepted.json().org.id, orgId);
        assert.equal(res.json().email, bobEmail, "the invitation holds the canonical address");
        // now a member under any spelling
        const again = await invite(orgId, `${fullwidth("BOB")}.${n}@EXAMPLE.com`);
        assert.equal(again.statusCode, 409, again.body);
        assert.equal(problemOf(again).code, "ALREADY_MEMBER");
      }

      // registering through a link sent to another spelling of an existing account is refused, not a second account
      const orgId = await newOrg(t, owner);
      assert.equal((await invite(orgId, `${fullwidth("BOB")}.${n}@example.com`)).statusCode, 201);
      const users = await count("users");
      const viaLink = await t.call("POST", "/v1/invitations/register", { token: await tokenFor(smtp, bobEmail), name: "Bob Twin", password: GOOD_PASSWORD });
      assert.equal(viaLink.statusCode, 409, viaLink.body);
      assert.equal(problemOf(viaLink).code, "EMAIL_TAKEN");
      assert.equal(await count("users"), users);

      const invitations = await count("invitations");
      refused(await invite(orgId, `carol${ZWSP}.${n}@example.com`), "email", /U\+200B/);
      refused(await invite(orgId, `c\u0430rol.${n}@example.com`), "email", /mixes/);
      const bulk = await t.call(
        "POST",
        `/v1/orgs/${orgId}/invitations/bulk`,
        {
          invitations: [
            { email: `dave.${n}@example.com`, role: "viewer" },
            { email: `erin${ZWSP}.${n}@example.com`, role: "viewer" },
          ],
        },
        owner.access_token,
      );
      refused(bulk, "invitations.1.email", /U\+200B/);
      assert.equal(await count("invitations"), invitations, "a refused address creates no invitation, not even its valid neighbours");
    });
  });
}
