import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { sql } from "drizzle-orm";
import { BACKENDS, createTestApp, GOOD_PASSWORD, problemOf, uniqueEmail, type TestApp } from "../../../test/harness.ts";

for (const backend of BACKENDS) {
  describe(`registration (${backend})`, () => {
    let t: TestApp;
    before(async () => {
      t = await createTestApp({ backend });
    });
    after(() => t.close());

    it("creates the user and a personal org they own, and normalises the email", async () => {
      const local = `Mixed.${Date.now()}`;
      const res = await t.call("POST", "/v1/auth/register", { email: `  ${local}@Example.ORG `, password: GOOD_PASSWORD, name: "  Ada  " });
      assert.equal(res.statusCode, 201, res.body);
      const user = res.json();
      assert.match(user.id, /^usr_[0-9a-z]{26}$/);
      assert.equal(user.email, `${local.toLowerCase()}@example.org`, "stored in the one canonical form: lower-cased");
      assert.equal(user.name, "Ada");
      assert.equal(user.email_verified, false);
      assert.equal("password" in user, false);

      const login = await t.call("POST", "/v1/auth/login", { email: `${local.toLowerCase()}@EXAMPLE.org`, password: GOOD_PASSWORD });
      assert.equal(login.statusCode, 200, "login matches the email case-insensitively");
      const orgs = await t.call("GET", "/v1/orgs", undefined, login.json().access_token);
      assert.equal(orgs.statusCode, 200);
      const items = orgs.json().items;
      assert.equal(items.length, 1);
      assert.equal(items[0].role, "owner");
      assert.equal(items[0].personal, true);
      assert.match(items[0].id, /^org_/);
    });

    it("stores only an argon2id hash with OWASP parameters", async () => {
      const email = uniqueEmail();
      const res = await t.call("POST", "/v1/auth/register", { email, password: GOOD_PASSWORD, name: "Hash" });
      const rows = await t.db.tx({}, (tx) => tx.execute(sql`select hash from password_credentials where user_id = ${res.json().id}`));
      const hash = (rows as unknown as { rows: { hash: string }[] }).rows[0].hash;
      assert.match(hash, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
      assert.ok(!hash.includes(GOOD_PASSWORD));
    });

    it("refuses a duplicate email (any case) with 409 naming the field", async () => {
      const email = uniqueEmail();
      assert.equal((await t.call("POST", "/v1/auth/register", { email, password: GOOD_PASSWORD, name: "One" })).statusCode, 201);
      const dup = await t.call("POST", "/v1/auth/register", { email: email.toUpperCase(), password: GOOD_PASSWORD, name: "Two" });
      assert.equal(dup.statusCode, 409);
      const p = problemOf(dup);
      assert.equal(p.code, "EMAIL_TAKEN");
      assert.equal(p.field, "email");
    });

    const invalid: [string, Record<string, unknown>, string, string][] = [
      ["short password", { password: "short pass" }, "password", "must be at least 12 characters"],
      ["long password", { password: "x".repeat(257) }, "password", "must be at most 256 characters"],
      ["common password", { password: "qwerty123456" }, "password", "most common"],
      ["missing email", { email: undefined }, "email", "is required"],
      ["bad email", { email: "not-an-email" }, "email", "invalid format"],
      ["email with two @", { email: "a@b@example.com" }, "email", "invalid format"],
      ["long email", { email: `${"a".repeat(250)}@example.com` }, "email", "at most 254"],
      ["empty name", { name: "" }, "name", "at least 1"],
      ["blank name", { name: "   " }, "name", "invalid format"],
      ["long name", { name: "n".repeat(101) }, "name", "at most 100"],
      ["name of wrong type", { name: 42 }, "name", "type string"],
      ["unknown field", { role: "admin" }, "role", "not a known field"],
    ];
    for (const [label, patch, field, reason] of invalid) {
      it(`rejects ${label} with a field error and creates nothing`, async () => {
        const body: Record<string, unknown> = { email: uniqueEmail(), password: GOOD_PASSWORD, name: "Val", ...patch };
        for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
        const res = await t.call("POST", "/v1/auth/register", body);
        assert.equal(res.statusCode, 400, res.body);
        const p = problemOf(res);
        const err = (p.errors ?? [{ field: p.field ?? "", reason: p.detail }]).find((e) => e.field === field);
        assert.ok(err, `no error for ${field}: ${res.body}`);
        assert.match(err.reason, new RegExp(reason));
        if (typeof body.email === "string") {
          const login = await t.call("POST", "/v1/auth/login", { email: body.email.slice(0, 254), password: GOOD_PASSWORD });
          assert.notEqual(login.statusCode, 200);
        }
      });
    }

    it("rejects a password equal to the email", async () => {
      const email = uniqueEmail();
      const res = await t.call("POST", "/v1/auth/register", { email, password: email, name: "Same" });
      assert.equal(res.statusCode, 400);
      const p = problemOf(res);
      assert.equal(p.code, "WEAK_PASSWORD");
      assert.equal(p.field, "password");
    });

    it("rolls back the whole registration when the personal org cannot be created", async () => {
      const email = uniqueEmail();
      const orgs = t.deps.orgs as { createPersonalOrg: (...a: unknown[]) => Promise<unknown> };
      const original = orgs.createPersonalOrg;
      orgs.createPersonalOrg = async () => {
        throw new Error("simulated failure");
      };
      try {
        const res = await t.call("POST", "/v1/auth/register", { email, password: GOOD_PASSWORD, name: "Half" });
        assert.equal(res.statusCode, 500);
        assert.equal(problemOf(res).code, "INTERNAL");
        assert.ok(!res.body.includes("simulated failure"), "internal error detail does not leak");
      } finally {
        orgs.createPersonalOrg = original;
      }
      const again = await t.call("POST", "/v1/auth/register", { email, password: GOOD_PASSWORD, name: "Whole" });
      assert.equal(again.statusCode, 201, "no half-written user blocks the email");
    });
  });
}
