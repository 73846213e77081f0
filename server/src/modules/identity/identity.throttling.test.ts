import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { Redis } from "ioredis";
import { BACKENDS, createTestApp, GOOD_PASSWORD, problemOf, redisUrl, uniqueEmail, type TestApp } from "../../../test/harness.ts";
import { createThrottle, type LimiterStore } from "../../limits/throttle.ts";
import type { AbuseRules } from "./abuse.ts";

/**
 * Strict rules with short lockouts. Every test sends from its own random IP (remoteAddress), so per-IP counts do not
 * leak between tests, suites or other files sharing the Redis server.
 */
const RULES: AbuseRules = {
  loginPerAccount: { points: 5, windowSeconds: 900, baseBlockSeconds: 2, maxBlockSeconds: 60 },
  loginPerIp: { points: 8, windowSeconds: 900, baseBlockSeconds: 60, maxBlockSeconds: 3600 },
  registerPerIp: { points: 3, windowSeconds: 3600, baseBlockSeconds: 300, maxBlockSeconds: 86_400 },
  registerPerEmail: { points: 2, windowSeconds: 3600, baseBlockSeconds: 300, maxBlockSeconds: 86_400 },
  emailPerIp: { points: 3, windowSeconds: 3600, baseBlockSeconds: 300, maxBlockSeconds: 86_400 },
  emailPerAccount: { points: 2, windowSeconds: 900, baseBlockSeconds: 300, maxBlockSeconds: 3600 },
  credentialFailuresPerIp: { points: 5, windowSeconds: 60, baseBlockSeconds: 60, maxBlockSeconds: 3600 },
};
const WRONG = "not the right passphrase";
const STORES = ["memory", "redis"] as const;

function newIp(): string {
  const b = randomBytes(3);
  return `10.${b[0]}.${b[1]}.${b[2]}`;
}

const post = (t: TestApp, url: string, body: unknown, ip: string) => t.inject({ method: "POST", url, payload: body as object, remoteAddress: ip });
const login = (t: TestApp, email: string, password: string, ip = newIp()) => post(t, "/v1/auth/login", { email, password }, ip);

async function registered(t: TestApp): Promise<string> {
  const email = uniqueEmail("thr");
  const res = await post(t, "/v1/auth/register", { email, password: GOOD_PASSWORD, name: "Throttled" }, newIp());
  assert.equal(res.statusCode, 201, res.body);
  return email;
}

/** Asserts a 429 problem with a whole, positive Retry-After and returns it. */
function limited(res: LightMyRequestResponse): number {
  assert.equal(res.statusCode, 429, res.body);
  assert.equal(problemOf(res).code, "RATE_LIMITED");
  const header = String(res.headers["retry-after"]);
  assert.match(header, /^[1-9]\d*$/, `Retry-After is a positive whole number of seconds: ${header}`);
  return Number(header);
}

async function failLogins(t: TestApp, email: string, n: number, ip = newIp()): Promise<void> {
  for (let i = 0; i < n; i++) {
    const res = await login(t, email, WRONG, ip);
    assert.equal(res.statusCode, 401, `failure ${i + 1}: ${res.body}`);
    assert.equal(problemOf(res).code, "INVALID_CREDENTIALS");
  }
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const r = await fn();
  return [r, performance.now() - t0];
}
const withoutRequestId = (res: LightMyRequestResponse) => ({ ...res.json(), request_id: undefined });

for (const store of STORES) {
  describe(`createThrottle (${store})`, () => {
    let limiterStore: LimiterStore;
    let clients: Redis[] = [];
    before(async () => {
      if (store === "redis") {
        const url = await redisUrl();
        clients = [new Redis(url), new Redis(url)];
      }
      limiterStore = store === "redis" ? { kind: "redis", client: clients[0] } : { kind: "memory" };
    });
    after(() => {
      for (const c of clients) c.disconnect();
    });
    const rule = { points: 2, windowSeconds: 60, baseBlockSeconds: 10, maxBlockSeconds: 25 };
    const name = () => `unit_${randomBytes(4).toString("hex")}`;

    it("blocks once the allowance is spent, then doubles each further lockout up to the cap", async () => {
      const th = createThrottle(limiterStore, name(), rule);
      assert.equal(await th.hit("k"), 0);
      assert.equal(await th.blockedFor("k"), 0, "one point left");
      assert.equal(await th.hit("k"), 0, "the hit that spends the last point is itself allowed");
      const first = await th.blockedFor("k");
      assert.ok(first >= 9 && first <= 10, `first lockout ~10 s, got ${first}`);
      assert.equal(await th.hit("k"), 20, "a hit while blocked is refused and doubles the block");
      const second = await th.blockedFor("k");
      assert.ok(second > first && second <= 20, `second lockout ~20 s, got ${second}`);
      assert.equal(await th.hit("k"), 25, "capped at maxBlockSeconds");
      assert.equal(await th.blockedFor("other"), 0, "keys are independent");
      await th.reset("k");
      assert.equal(await th.blockedFor("k"), 0);
    });

    if (store === "redis") {
      it("two throttles on one Redis (two instances) share counts and blocks", async () => {
        const n = name();
        const a = createThrottle({ kind: "redis", client: clients[0] }, n, rule);
        const b = createThrottle({ kind: "redis", client: clients[1] }, n, rule);
        await a.hit("shared");
        await b.hit("shared");
        assert.ok((await a.blockedFor("shared")) > 0, "A sees the block B's hit set");
        assert.ok((await b.blockedFor("shared")) > 0);
      });
    }
  });
}

for (const backend of BACKENDS) {
  for (const store of STORES) {
    describe(`sign-in and email throttles (${backend}, ${store} store)`, () => {
      let t: TestApp;
      let env: Record<string, string>;
      before(async () => {
        env = store === "redis" ? { REDIS_URL: await redisUrl() } : {};
        t = await createTestApp({ backend, env, abuseRules: RULES, worker: false });
      });
      after(() => t.close());

      it("locks the account after 5 failed sign-ins, even for the right password and from another IP", async () => {
        const email = await registered(t);
        const ip = newIp();
        await failLogins(t, email, 5, ip);
        const wait = limited(await login(t, email, GOOD_PASSWORD, ip));
        assert.ok(wait <= RULES.loginPerAccount.baseBlockSeconds, `first lockout is the base block, got ${wait}`);
        const res = await login(t, email, GOOD_PASSWORD, newIp());
        limited(res);
        assert.match(problemOf(res).detail, /Try again in \d+ seconds/);
      });

      it("lockouts grow: the second block is longer than the first", async () => {
        const email = await registered(t);
        await failLogins(t, email, 5);
        const first = limited(await login(t, email, GOOD_PASSWORD));
        // The block runs on real time (rate-limiter-flexible); wait as long as the server said, then lock again.
        await sleep(first * 1000 + 250);
        await failLogins(t, email, 5); // each one answers 401 again: the first block has expired
        const second = limited(await login(t, email, GOOD_PASSWORD));
        assert.ok(second > first, `second lockout (${second} s) is longer than the first (${first} s)`);
      });

      it("counts per account: another account from the same IP still signs in", async () => {
        const [a, b] = [await registered(t), await registered(t)];
        const ip = newIp();
        await failLogins(t, a, 5, ip);
        limited(await login(t, a, GOOD_PASSWORD, ip));
        assert.equal((await login(t, b, GOOD_PASSWORD, ip)).statusCode, 200);
      });

      it("counts per IP: failures across many accounts block that IP only", async () => {
        const victim = await registered(t);
        const ip = newIp();
        for (let i = 0; i < RULES.loginPerIp.points; i++) await failLogins(t, uniqueEmail("spray"), 1, ip);
        limited(await login(t, victim, GOOD_PASSWORD, ip));
        limited(await login(t, uniqueEmail("spray"), WRONG, ip));
        assert.equal((await login(t, victim, GOOD_PASSWORD, newIp())).statusCode, 200, "the account itself is not locked");
      });

      it("throttles unknown emails exactly like known ones", async () => {
        const outcomes: { statuses: number[]; last: LightMyRequestResponse }[] = [];
        for (const email of [await registered(t), uniqueEmail("ghost")]) {
          const ip = newIp();
          const statuses: number[] = [];
          for (let i = 0; i < 5; i++) statuses.push((await login(t, email, WRONG, ip)).statusCode);
          const last = await login(t, email, GOOD_PASSWORD, ip);
          outcomes.push({ statuses: [...statuses, last.statusCode], last });
        }
        const [known, unknown] = outcomes;
        assert.deepEqual(known.statuses, [401, 401, 401, 401, 401, 429]);
        assert.deepEqual(unknown.statuses, known.statuses);
        const [a, b] = [limited(known.last), limited(unknown.last)];
        assert.ok(Math.abs(a - b) <= 1, `same Retry-After: ${a} vs ${b}`);
        const strip = (r: LightMyRequestResponse) => ({ ...withoutRequestId(r), detail: undefined, instance: undefined });
        assert.deepEqual(strip(unknown.last), strip(known.last));
      });

      it("answers an unknown email like a wrong password, in about the same time", async () => {
        const email = await registered(t);
        // pairs back to back, so a pause of a loaded machine tends to hit both halves of a pair alike
        const ratios: number[] = [];
        // five pairs: the account's failed-sign-in allowance (the sixth would answer 429)
        for (let i = 0; i < 5; i++) {
          const [u, uMs] = await timed(() => login(t, uniqueEmail("ghost"), WRONG));
          const [w, wMs] = await timed(() => login(t, email, WRONG));
          ratios.push(uMs / wMs);
          assert.equal(u.statusCode, 401);
          assert.equal(w.statusCode, 401);
          assert.deepEqual(withoutRequestId(u), withoutRequestId(w));
          assert.equal(u.headers["www-authenticate"], w.headers["www-authenticate"]);
          assert.equal(u.headers["content-type"], w.headers["content-type"]);
        }
        // an unknown email skipping the password hash would answer in a few percent of the time; the median pair
        // ratio ignores the pairs a pause hit on one side only
        const median = ratios.sort((a, b) => a - b)[Math.floor(ratios.length / 2)];
        assert.ok(median >= 0.5, `unknown/wrong time ratios ${ratios.map((r) => r.toFixed(2)).join(", ")}`);
      });

      it("throttles registration per IP and per email (any case)", async () => {
        const ip = newIp();
        for (let i = 0; i < RULES.registerPerIp.points; i++) {
          assert.equal((await post(t, "/v1/auth/register", { email: uniqueEmail("reg"), password: GOOD_PASSWORD, name: "R" }, ip)).statusCode, 201);
        }
        const refused = uniqueEmail("reg");
        limited(await post(t, "/v1/auth/register", { email: refused, password: GOOD_PASSWORD, name: "R" }, ip));
        assert.equal(
          (await post(t, "/v1/auth/register", { email: refused, password: GOOD_PASSWORD, name: "R" }, newIp())).statusCode,
          201,
          "other IPs may register",
        );
        // one address from fresh IPs: created, then taken, then refused (the count ignores case)
        const email = uniqueEmail("reg");
        const statuses: number[] = [];
        for (const e of [email, email, email.toUpperCase()])
          statuses.push((await post(t, "/v1/auth/register", { email: e, password: GOOD_PASSWORD, name: "R" }, newIp())).statusCode);
        assert.deepEqual(statuses, [201, 409, 429]);
        limited(await post(t, "/v1/auth/register", { email, password: GOOD_PASSWORD, name: "R" }, newIp()));
      });

      for (const [flow, url] of [
        ["password-reset", "/v1/auth/password-reset"],
        ["magic-link", "/v1/auth/magic-link"],
      ] as const) {
        it(`throttles ${flow} requests per IP and per email, for known and unknown addresses alike`, async () => {
          const ip = newIp();
          for (let i = 0; i < RULES.emailPerIp.points; i++) assert.equal((await post(t, url, { email: uniqueEmail("mail") }, ip)).statusCode, 202);
          limited(await post(t, url, { email: uniqueEmail("mail") }, ip));
          for (const email of [await registered(t), uniqueEmail("ghost")]) {
            const statuses: number[] = [];
            for (let i = 0; i <= RULES.emailPerAccount.points; i++) statuses.push((await post(t, url, { email }, newIp())).statusCode);
            assert.deepEqual(statuses, [202, 202, 429], email);
            limited(await post(t, url, { email }, newIp()));
          }
        });
      }

      it(store === "redis" ? "shares counts across instances through Redis" : "without Redis, each instance counts alone", async () => {
        const other = await createTestApp({ backend, env, abuseRules: RULES, worker: false, sameDatabaseAs: t });
        try {
          const [a, b] = [await registered(t), await registered(t)];
          assert.equal((await login(other, b, GOOD_PASSWORD)).statusCode, 200, "the second instance sees the first one's database");
          await failLogins(t, a, 5);
          limited(await login(t, a, GOOD_PASSWORD));
          const there = await login(other, a, GOOD_PASSWORD);
          if (store === "redis") limited(there);
          else assert.equal(there.statusCode, 200, "in-process limits are per instance (REDIS_URL shares them)");
        } finally {
          await other.close();
        }
      });
    });
  }
}
