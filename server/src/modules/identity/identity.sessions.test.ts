import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { hash as argonHash, verify as argonVerify } from "@node-rs/argon2";
import { sql, type SQL } from "drizzle-orm";
import { decodeJwt, decodeProtectedHeader } from "jose";
import { BACKENDS, assertProblem, createTestApp, GOOD_PASSWORD, problemOf, signUp, uniqueEmail, type TestApp, type TestUser } from "../../../test/harness.ts";

const NEW_PASSWORD = "another sturdy passphrase 77";

async function rows<T>(t: TestApp, query: SQL): Promise<T[]> {
  const res = await t.db.tx({}, (tx) => tx.execute(query));
  return (res as unknown as { rows: T[] }).rows;
}

for (const backend of BACKENDS) {
  describe(`sessions and the account (${backend})`, () => {
    let t: TestApp;
    before(async () => {
      t = await createTestApp({ backend });
    });
    after(() => t.close());

    const login = (email: string, password: string, headers: Record<string, string> = {}) =>
      t.call("POST", "/v1/auth/login", { email, password }, undefined, headers);
    const refresh = (token: string) => t.call("POST", "/v1/auth/refresh", { refresh_token: token });
    /** A second session of the same user. */
    async function anotherSession(u: TestUser, password = u.password) {
      const res = await login(u.email, password);
      assert.equal(res.statusCode, 200, res.body);
      return res.json() as { access_token: string; refresh_token: string };
    }

    it("login returns a token pair whose access token is an ES256 JWT with the expected claims", async () => {
      const u = await signUp(t);
      const res = await login(u.email, u.password);
      assert.equal(res.statusCode, 200, res.body);
      const body = res.json();
      assert.deepEqual(Object.keys(body).sort(), ["access_token", "expires_in", "refresh_token", "token_type"]);
      assert.equal(body.token_type, "Bearer");
      assert.equal(body.expires_in, 900);
      assert.equal(typeof body.refresh_token, "string");
      assert.ok(body.refresh_token.length >= 32);
      const header = decodeProtectedHeader(body.access_token);
      assert.equal(header.alg, "ES256");
      assert.equal(typeof header.kid, "string");
      assert.equal(typeof header.typ, "string");
      const jwks = (await t.call("GET", "/.well-known/jwks.json")).json();
      assert.ok(
        jwks.keys.some((k: { kid: string }) => k.kid === header.kid),
        "the kid is published",
      );
      const claims = decodeJwt(body.access_token);
      assert.equal(claims.iss, "http://plinth.test");
      assert.equal(claims.aud, "plinth");
      assert.equal(claims.sub, u.id);
      assert.equal(typeof claims.jti, "string");
      assert.equal(typeof claims.iat, "number");
      assert.equal((claims.exp as number) - (claims.iat as number), 900);
      assert.ok(Math.abs((claims.iat as number) - Date.now() / 1000) < 60);
      assert.notEqual(decodeJwt(u.access_token).jti, claims.jti, "every token has its own jti");
    });

    it("signing in for an org scopes the session to it; an org you are not in is refused after the password check", async () => {
      const u = await signUp(t, "Scoped");
      const other = await signUp(t, "Other");
      const mine = (await t.call("GET", "/v1/orgs", undefined, u.access_token)).json().items[0].id as string;
      const theirs = (await t.call("GET", "/v1/orgs", undefined, other.access_token)).json().items[0].id as string;
      const ok = await t.call("POST", "/v1/auth/login", { email: u.email, password: u.password, org_id: mine });
      assert.equal(ok.statusCode, 200, ok.body);
      const sessionsOf = async () =>
        (
          (await t.db.owner.execute(sql`select org_id from sessions where user_id = ${u.id} order by created_at`)) as unknown as {
            rows: { org_id: string | null }[];
          }
        ).rows.map((r) => r.org_id);
      assert.deepEqual((await sessionsOf()).slice(-1), [mine]);
      assertProblem(await t.call("POST", "/v1/auth/login", { email: u.email, password: u.password, org_id: theirs }), 403, "NOT_A_MEMBER", "org_id");
      // a wrong password says nothing about the org
      assertProblem(
        await t.call("POST", "/v1/auth/login", { email: u.email, password: "not the password at all", org_id: theirs }),
        401,
        "INVALID_CREDENTIALS",
      );
      assertProblem(await t.call("POST", "/v1/auth/login", { email: u.email, password: u.password, org_id: "org_nope" }), 400, "VALIDATION_FAILED", "org_id");
      assert.equal((await sessionsOf()).length, 2, "no session was opened by a refused sign-in");
    });

    it("wrong password and unknown email answer 401 with the same body", async () => {
      const u = await signUp(t);
      const wrong = await login(u.email, "not the password at all");
      const unknown = await login(uniqueEmail("ghost"), "not the password at all");
      for (const res of [wrong, unknown]) {
        assertProblem(res, 401, "INVALID_CREDENTIALS");
        assert.match(String(res.headers["www-authenticate"]), /^Bearer/);
      }
      const strip = (b: string) => {
        const o = JSON.parse(b);
        delete o.request_id;
        delete o.instance;
        return JSON.stringify(o);
      };
      assert.equal(strip(wrong.body), strip(unknown.body));
      assert.equal(wrong.json().instance, unknown.json().instance);
      assertProblem(await login("a\u0000b@example.com", "whatever it is"), 400, "VALIDATION_FAILED", "email");
    });

    it("lists every sign-in attempt, newest first, with result, ip and user agent", async () => {
      const u = await signUp(t);
      assert.equal((await login(u.email, "definitely wrong pw", { "user-agent": "agent-fail/1" })).statusCode, 401);
      const ok = await login(u.email, u.password, { "user-agent": "agent-ok/2" });
      assert.equal(ok.statusCode, 200);
      const res = await t.call("GET", "/v1/me/logins", undefined, ok.json().access_token);
      assert.equal(res.statusCode, 200, res.body);
      const { items, next_cursor } = res.json();
      assert.equal(next_cursor, null);
      assert.deepEqual(
        items.map((i: { result: string }) => i.result),
        ["success", "invalid_credentials", "success"],
      );
      assert.deepEqual(items.map((i: { user_agent: string }) => i.user_agent).slice(0, 2), ["agent-ok/2", "agent-fail/1"]);
      for (const i of items) {
        assert.equal(i.ip, "127.0.0.1");
        assert.equal(i.method, "password");
        assert.ok(!Number.isNaN(Date.parse(i.created_at)));
      }
      const times = items.map((i: { created_at: string }) => Date.parse(i.created_at));
      assert.deepEqual(
        [...times].sort((a, b) => b - a),
        times,
        "newest first",
      );
      const other = await signUp(t);
      const theirs = (await t.call("GET", "/v1/me/logins", undefined, other.access_token)).json().items;
      assert.equal(theirs.length, 1, "another user sees only their own attempts");
    });

    it("pages the sign-in history with limit and next_cursor", async () => {
      const u = await signUp(t);
      for (let i = 0; i < 3; i++) assert.equal((await login(u.email, `wrong password ${i}`)).statusCode, 401);
      const all = (await t.call("GET", "/v1/me/logins", undefined, u.access_token)).json().items;
      assert.equal(all.length, 4);
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const q: string = cursor ? `?limit=1&cursor=${cursor}` : "?limit=1";
        const page = await t.call("GET", `/v1/me/logins${q}`, undefined, u.access_token);
        assert.equal(page.statusCode, 200, page.body);
        const body = page.json();
        assert.equal(body.items.length, 1);
        seen.push(body.items[0].id);
        cursor = body.next_cursor;
        assert.ok(seen.length <= 4, "pagination terminates");
      } while (cursor);
      assert.deepEqual(
        seen,
        all.map((i: { id: string }) => i.id),
      );
      const two = (await t.call("GET", "/v1/me/logins?limit=2", undefined, u.access_token)).json();
      assert.equal(two.items.length, 2);
      const rest = (await t.call("GET", `/v1/me/logins?cursor=${two.next_cursor}`, undefined, u.access_token)).json();
      assert.deepEqual(
        rest.items.map((i: { id: string }) => i.id),
        seen.slice(2),
      );
      assert.equal(rest.next_cursor, null);
    });

    const badQueries: [string, string][] = [
      ["limit=0", "limit"],
      ["limit=201", "limit"],
      ["limit=abc", "limit"],
      ["limit=1.5", "limit"],
      ["cursor=not%20a%20cursor!", "cursor"],
      ["cursor=", "cursor"],
      ["cursor=AA", "cursor"], // decodes to a NUL byte
      ["cursor=abc", "cursor"], // decodes to bytes that are no id
      [`cursor=${Buffer.from("usr_01m838njeyw4s4feyw148xksyh").toString("base64url")}`, "cursor"], // an id of another kind
      ["sort=asc", "sort"],
    ];
    for (const [query, field] of badQueries) {
      it(`GET /v1/me/logins?${query} answers 400 naming ${field}`, async () => {
        const u = await signUp(t);
        const res = await t.call("GET", `/v1/me/logins?${query}`, undefined, u.access_token);
        assertProblem(res, 400, "VALIDATION_FAILED", field);
      });
    }

    it("refresh rotates; replaying a spent token revokes the whole family and records a security event", async () => {
      const u = await signUp(t);
      const bystander = await anotherSession(u);
      const r1 = await refresh(u.refresh_token);
      assert.equal(r1.statusCode, 200, r1.body);
      const p1 = r1.json();
      assert.notEqual(p1.refresh_token, u.refresh_token);
      assert.equal(decodeJwt(p1.access_token).sub, u.id);
      assert.equal(decodeJwt(p1.access_token).sid, decodeJwt(u.access_token).sid, "same session");
      const r2 = await refresh(p1.refresh_token);
      assert.equal(r2.statusCode, 200, "the new refresh token works");
      const newest = r2.json().refresh_token;

      assertProblem(await refresh(u.refresh_token), 401, "REFRESH_TOKEN_REUSED", "refresh_token");
      assertProblem(await refresh(newest), 401, "INVALID_REFRESH_TOKEN", "refresh_token");
      const events = await rows<{ kind: string; detail: { session_id: string } }>(
        t,
        sql`select kind, detail from security_events where user_id = ${u.id} and kind = 'refresh_token_reused'`,
      );
      assert.equal(events.length, 1);
      assert.equal(events[0].detail.session_id, decodeJwt(u.access_token).sid);
      const revoked = await rows<{ revoked_reason: string }>(t, sql`select revoked_reason from sessions where id = ${events[0].detail.session_id}`);
      assert.equal(revoked[0].revoked_reason, "refresh_token_reused");

      const b = await refresh(bystander.refresh_token);
      assert.equal(b.statusCode, 200, "another session of the same user is unaffected");
      assertProblem(await refresh("plrt_" + "x".repeat(43)), 401, "INVALID_REFRESH_TOKEN");
    });

    for (const n of [2, 6]) {
      it(`${n} concurrent refreshes with one token: exactly one succeeds`, async () => {
        const u = await signUp(t);
        const results = await Promise.all(Array.from({ length: n }, () => refresh(u.refresh_token)));
        assert.equal(results.filter((r) => r.statusCode === 200).length, 1, results.map((r) => r.statusCode).join(","));
        for (const r of results.filter((x) => x.statusCode !== 200)) {
          assert.equal(r.statusCode, 401);
          assert.match(problemOf(r).code, /^(REFRESH_TOKEN_REUSED|INVALID_REFRESH_TOKEN)$/);
        }
      });
    }

    it("logout revokes the session's refresh tokens and is idempotent", async () => {
      const u = await signUp(t);
      const other = await anotherSession(u);
      const rotated = (await refresh(u.refresh_token)).json().refresh_token;
      const out = await t.call("POST", "/v1/auth/logout", { refresh_token: rotated });
      assert.equal(out.statusCode, 204);
      assert.equal(out.body, "");
      assertProblem(await refresh(rotated), 401, "INVALID_REFRESH_TOKEN");
      assert.equal((await t.call("POST", "/v1/auth/logout", { refresh_token: rotated })).statusCode, 204, "again");
      assert.equal((await t.call("POST", "/v1/auth/logout", { refresh_token: "plrt_never-issued-token-000" })).statusCode, 204, "unknown token");
      assertProblem(await t.call("POST", "/v1/auth/logout", {}), 400, "VALIDATION_FAILED", "refresh_token");
      assert.equal((await refresh(other.refresh_token)).statusCode, 200, "other sessions live on");
    });

    it("logout-all revokes every session and needs an access token", async () => {
      const u = await signUp(t);
      const a = await anotherSession(u);
      const b = await anotherSession(u);
      const stranger = await signUp(t);
      assertProblem(await t.call("POST", "/v1/auth/logout-all"), 401, "UNAUTHENTICATED");
      const res = await t.call("POST", "/v1/auth/logout-all", undefined, a.access_token);
      assert.equal(res.statusCode, 200, res.body);
      assert.deepEqual(res.json(), { revoked_sessions: 3 });
      for (const token of [u.refresh_token, a.refresh_token, b.refresh_token]) assertProblem(await refresh(token), 401, "INVALID_REFRESH_TOKEN");
      assert.equal((await refresh(stranger.refresh_token)).statusCode, 200, "other users are untouched");
      const ev = await rows(t, sql`select 1 from security_events where user_id = ${u.id} and kind = 'logout_all'`);
      assert.equal(ev.length, 1);
    });

    it("changing the password checks the current one, the policy, and signs out the other sessions", async () => {
      const u = await signUp(t);
      const other = await anotherSession(u);
      const change = (body: unknown) => t.call("POST", "/v1/me/password", body, u.access_token);
      assertProblem(await change({ current_password: "not my password!", new_password: NEW_PASSWORD }), 400, "WRONG_CURRENT_PASSWORD", "current_password");
      assertProblem(await change({ current_password: u.password, new_password: "qwerty123456" }), 400, "WEAK_PASSWORD", "new_password");
      assertProblem(await change({ current_password: u.password, new_password: u.email }), 400, "WEAK_PASSWORD", "new_password");
      assertProblem(await change({ current_password: u.password, new_password: "short" }), 400, "VALIDATION_FAILED", "new_password");
      assertProblem(await change({ current_password: u.password }), 400, "VALIDATION_FAILED", "new_password");
      assert.equal((await refresh(other.refresh_token)).statusCode, 200, "rejected changes revoke nothing");
      const other2 = await anotherSession(u);

      const res = await change({ current_password: u.password, new_password: NEW_PASSWORD });
      assert.equal(res.statusCode, 200, res.body);
      assert.deepEqual(res.json(), { revoked_sessions: 2 });
      assertProblem(await refresh(other2.refresh_token), 401, "INVALID_REFRESH_TOKEN");
      assert.equal((await refresh(u.refresh_token)).statusCode, 200, "the current session stays");
      assertProblem(await login(u.email, u.password), 401, "INVALID_CREDENTIALS");
      assert.equal((await login(u.email, NEW_PASSWORD)).statusCode, 200);
    });

    it("reads and patches the profile; null clears a field", async () => {
      const u = await signUp(t, "Original Name");
      const me = await t.call("GET", "/v1/me", undefined, u.access_token);
      assert.equal(me.statusCode, 200);
      assert.equal(me.json().id, u.id);
      assert.equal(me.json().email, u.email);
      assert.equal(me.json().name, "Original Name");
      const patch = { name: "  New Name ", avatar_url: "https://cdn.example.com/a.png", locale: "en-GB", timezone: "Europe/Paris" };
      const res = await t.call("PATCH", "/v1/me", patch, u.access_token);
      assert.equal(res.statusCode, 200, res.body);
      const expected = { name: "New Name", avatar_url: patch.avatar_url, locale: "en-GB", timezone: "Europe/Paris" };
      const read = (await t.call("GET", "/v1/me", undefined, u.access_token)).json();
      for (const [k, v] of Object.entries(expected)) {
        assert.equal(res.json()[k], v, k);
        assert.equal(read[k], v, k);
      }
      assert.ok(Date.parse(read.updated_at) >= Date.parse(me.json().updated_at));
      const cleared = await t.call("PATCH", "/v1/me", { avatar_url: null, locale: null, timezone: null }, u.access_token);
      assert.equal(cleared.statusCode, 200, cleared.body);
      const again = (await t.call("GET", "/v1/me", undefined, u.access_token)).json();
      assert.deepEqual([again.avatar_url, again.locale, again.timezone, again.name], [null, null, null, "New Name"]);
      assertProblem(await t.call("GET", "/v1/me"), 401, "UNAUTHENTICATED");
    });

    const badPatches: [string, unknown, string][] = [
      ["an empty body", {}, "body"],
      ["an unknown field", { email: "x@example.com" }, "email"],
      ["a javascript: avatar", { avatar_url: "javascript:alert(1)" }, "avatar_url"],
      ["a non-URL avatar", { avatar_url: "not a url" }, "avatar_url"],
      ["a bad locale", { locale: "english!!" }, "locale"],
      ["a path as time zone", { timezone: "../../etc" }, "timezone"],
      ["an empty name", { name: "" }, "name"],
      ["a 101-character name", { name: "n".repeat(101) }, "name"],
      ["a numeric name", { name: 42 }, "name"],
      ["a name holding a NUL", { name: "a\u0000b" }, "name"],
      ["a boolean locale", { locale: true }, "locale"],
      ["an array time zone", { timezone: ["UTC"] }, "timezone"],
      ["a valid name beside a bad avatar", { name: "Fine", avatar_url: "ftp://x.example/a.png" }, "avatar_url"],
    ];
    for (const [label, body, field] of badPatches) {
      it(`PATCH /v1/me refuses ${label} naming ${field} and changes nothing`, async () => {
        const u = await signUp(t, "Steady Name");
        const before = (await t.call("GET", "/v1/me", undefined, u.access_token)).json();
        const res = await t.call("PATCH", "/v1/me", body, u.access_token);
        const p = assertProblem(res, 400, "VALIDATION_FAILED");
        const fields = (p.errors ?? []).map((e) => e.field).concat(p.field ?? []);
        assert.ok(fields.includes(field), `expected ${field} in ${res.body}`);
        assert.deepEqual((await t.call("GET", "/v1/me", undefined, u.access_token)).json(), before);
      });
    }

    it("stores refresh tokens and passwords only as hashes", async () => {
      const u = await signUp(t);
      const rotated = (await refresh(u.refresh_token)).json().refresh_token;
      const second = await anotherSession(u);
      const dump = (table: string) => rows<{ j: string }>(t, sql`select row_to_json(x)::text as j from ${sql.identifier(table)} x`);
      const sessions = await rows<{ id: string }>(t, sql`select id from sessions where user_id = ${u.id}`);
      assert.equal(sessions.length, 2);
      const tokens = await rows(t, sql`select 1 from refresh_tokens where session_id in (select id from sessions where user_id = ${u.id})`);
      assert.equal(tokens.length, 3, "every issued refresh token has a row");
      const everything = [...(await dump("sessions")), ...(await dump("refresh_tokens")), ...(await dump("password_credentials"))].map((r) => r.j).join("\n");
      for (const secret of [u.refresh_token, rotated, second.refresh_token, u.refresh_token.slice(5), GOOD_PASSWORD]) {
        assert.ok(!everything.includes(secret), "a secret is stored in plaintext");
      }
    });

    it("upgrades an argon2id hash made with older parameters on the next successful login", async () => {
      const u = await signUp(t);
      const old = await argonHash(u.password, { algorithm: 2, memoryCost: 4096, timeCost: 1, parallelism: 1 });
      assert.match(old, /^\$argon2id\$v=19\$m=4096,t=1,p=1\$/);
      await t.db.tx({}, (tx) => tx.execute(sql`update password_credentials set hash = ${old} where user_id = ${u.id}`));
      const stored = async () => (await rows<{ hash: string }>(t, sql`select hash from password_credentials where user_id = ${u.id}`))[0].hash;

      assert.equal((await login(u.email, "not the right password")).statusCode, 401);
      assert.equal(await stored(), old, "a failed login does not rehash");
      assert.equal((await login(u.email, u.password)).statusCode, 200, "the old hash still verifies");
      const upgraded = await stored();
      assert.match(upgraded, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
      assert.ok(await argonVerify(upgraded, u.password));
      assert.equal((await login(u.email, u.password)).statusCode, 200);
      assert.equal(await stored(), upgraded, "a current hash is left alone");
    });
  });
}
