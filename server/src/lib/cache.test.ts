import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { Redis } from "ioredis";
import pino from "pino";
import { redisUrl } from "../../test/harness.ts";
import { createBus, type Bus } from "../pubsub/bus.ts";
import { createCache, createKeyJoiner } from "./cache.ts";
import { createManualClock } from "./clock.ts";

/** A promise and its resolver, to hold a read in flight. */
function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

describe("cache port", () => {
  it("keeps at most max entries, dropping the least recently used", () => {
    const c = createCache<string>({ name: "t", max: 2 });
    c.set("a", "A");
    c.set("b", "B");
    assert.equal(c.get("a"), "A"); // a is now the most recent
    c.set("c", "C");
    assert.equal(c.get("b"), undefined);
    assert.equal(c.get("a"), "A");
    assert.equal(c.get("c"), "C");
    assert.equal(c.size, 2);
  });

  it("an entry is stale from ttlMs on, on the given clock, or sooner when its value says so", () => {
    const clock = createManualClock();
    const c = createCache<{ until?: number }>({ name: "t", max: 10, ttlMs: 1_000, clock, staleAt: (v) => v.until });
    c.set("plain", {});
    c.set("soon", { until: clock.now().getTime() + 100 });
    c.set("later", { until: clock.now().getTime() + 60_000 });
    c.set("due", { until: clock.now().getTime() - 5 });
    assert.equal(c.get("due"), undefined, "a value already past its time is not served");
    clock.advance(99);
    assert.ok(c.get("soon"));
    clock.advance(1);
    assert.equal(c.get("soon"), undefined, "stale from the very millisecond its value says");
    clock.advance(899);
    assert.ok(c.get("plain"));
    clock.advance(1);
    assert.equal(c.get("plain"), undefined, "and from ttlMs on");
    assert.equal(c.get("later"), undefined, "never longer than ttlMs");
  });

  it("fetch reads a key once for every concurrent caller, and again after a failure", async () => {
    let reads = 0;
    let gate = deferred<string>();
    const c = createCache<string, { n: number }>({
      name: "t",
      max: 10,
      fetch: (key, ctx) => {
        reads++;
        return gate.promise.then((v) => `${v}:${key}:${ctx.n}`);
      },
    });
    const all = Promise.all([c.fetch("k", { n: 1 }), c.fetch("k", { n: 2 }), c.fetch("k", { n: 3 })]);
    gate.resolve("v");
    assert.deepEqual(await all, ["v:k:1", "v:k:1", "v:k:1"]);
    assert.equal(reads, 1);
    assert.equal(c.get("k"), "v:k:1");
    assert.equal(await c.fetch("k", { n: 4 }), "v:k:1", "a hit reads nothing");
    assert.equal(reads, 1);

    gate = deferred<string>();
    const failing = [c.fetch("x", { n: 1 }), c.fetch("x", { n: 2 })];
    gate.reject(new Error("database down"));
    for (const f of failing) await assert.rejects(f, /database down/);
    assert.equal(reads, 2, "both callers shared the failed read");
    gate = deferred<string>();
    gate.resolve("ok");
    assert.equal(await c.fetch("x", { n: 5 }), "ok:x:5", "a failure is not cached");
  });

  it("deleteGroup makes every entry of the group stale at once, whether the key or the value names the group", async () => {
    const c = createCache<{ org: string; n: number }>({ name: "t", max: 100, group: (_k, v) => v.org });
    c.set("k1", { org: "org_a", n: 1 });
    c.set("k2", { org: "org_a", n: 2 });
    c.set("k3", { org: "org_b", n: 3 });
    await c.deleteGroup("org_a");
    assert.equal(c.get("k1"), undefined);
    assert.equal(c.get("k2"), undefined);
    assert.equal(c.get("k3")?.n, 3, "another group's entries survive");
    c.set("k1", { org: "org_a", n: 4 });
    assert.equal(c.get("k1")?.n, 4, "a value stored after the invalidation is fresh");
  });

  it("a read in flight during its group's invalidation is not kept, and a caller who asked after it reads again", async () => {
    const gates: ReturnType<typeof deferred<number>>[] = [];
    const c = createCache<number>({
      name: "t",
      max: 10,
      group: (key) => key.split(":")[0],
      fetch: () => {
        const g = deferred<number>();
        gates.push(g);
        return g.promise;
      },
    });
    const early = c.fetch("org_a:u1");
    await c.deleteGroup("org_a"); // e.g. a member removed while their membership was being read
    const late = c.fetch("org_a:u1"); // shares the read in flight...
    gates[0].resolve(1); // ...which read the old fact
    assert.equal(await early, 1, "the caller from before the invalidation is concurrent with it");
    await new Promise((r) => setImmediate(r));
    assert.equal(gates.length, 2, "the later caller reads again");
    gates[1].resolve(2);
    assert.equal(await late, 2);
    assert.equal(c.get("org_a:u1"), 2);
  });

  it("set with a version taken before the read stores nothing when the group was invalidated meanwhile", async () => {
    const c = createCache<string>({ name: "t", max: 10, group: (key) => key.split(":")[0] });
    const before = c.version();
    await c.deleteGroup("org_a");
    c.set("org_a:x", "read before the change", before);
    assert.equal(c.get("org_a:x"), undefined);
    c.set("org_b:x", "another group", before);
    assert.equal(c.get("org_b:x"), "another group");
    const beforeClear = c.version();
    await c.clear();
    c.set("org_b:y", "read before the clear", beforeClear);
    assert.equal(c.get("org_b:y"), undefined);
    assert.equal(c.size, 0);
  });

  it("delete while a key is being read: the caller gets a fresh read, never an error or the old value", async () => {
    let n = 0;
    const gates: ReturnType<typeof deferred<number>>[] = [];
    const c = createCache<number>({
      name: "t",
      max: 10,
      fetch: () => {
        const g = deferred<number>();
        gates.push(g);
        n++;
        return g.promise;
      },
    });
    const pending = c.fetch("k");
    await c.delete("k");
    gates[0].resolve(1);
    await new Promise((r) => setImmediate(r));
    assert.equal(n, 2);
    gates[1].resolve(2);
    assert.equal(await pending, 2);
    assert.equal(c.get("k"), undefined, "the read after the abort is this caller's alone, not cached");
  });
});

describe("key joiner", () => {
  it("gives one string per pair, the same each time, and stays right once it forgets", () => {
    const join = createKeyJoiner(2);
    const k = join("org_a", "usr_1");
    assert.equal(k, "org_a\u0000usr_1");
    assert.equal(join("org_a", "usr_1"), k);
    assert.notEqual(join("org_a", "usr_2"), k);
    assert.notEqual(join("org_b", "usr_1"), k);
    assert.equal(join("org_a", "usr_1"), "org_a\u0000usr_1", "after forgetting, the same key");
  });
});

describe("cache port across two instances (redis)", () => {
  const log = pino({ level: "silent" });
  let ra: Redis;
  let rb: Redis;
  let busA: Bus;
  let busB: Bus;

  before(async () => {
    const url = await redisUrl();
    ra = new Redis(url);
    rb = new Redis(url);
    [busA, busB] = await Promise.all([createBus({ redis: ra, log }), createBus({ redis: rb, log })]);
  });
  after(async () => {
    await busA.close();
    await busB.close();
    ra.disconnect();
    rb.disconnect();
  });

  /** The same cache on both instances; a unique name, so parallel files cannot cross. */
  function pair(withBus: boolean) {
    const name = `test-${randomBytes(4).toString("hex")}`;
    const make = (bus: Bus) => createCache<{ org: string }>({ name, max: 100, group: (_k, v) => v.org, bus: withBus ? bus : undefined });
    return [make(busA), make(busB)] as const;
  }

  it("delete, deleteGroup and clear on one instance have dropped the entries on the other when they resolve", async () => {
    const [a, b] = pair(true);
    for (const c of [a, b]) {
      c.set("k1", { org: "org_1" });
      c.set("k2", { org: "org_2" });
      c.set("k3", { org: "org_3" });
      c.set("k4", { org: "org_3" });
    }
    await a.delete("k1");
    assert.equal(a.get("k1"), undefined);
    assert.equal(b.get("k1"), undefined, "b dropped it before a's delete resolved");
    assert.ok(b.get("k2"));

    await b.deleteGroup("org_3");
    assert.equal(a.get("k3"), undefined);
    assert.equal(a.get("k4"), undefined);
    assert.ok(a.get("k2"), "another group survives on the other instance");

    await a.clear();
    assert.equal(b.get("k2"), undefined);
    assert.equal(b.size, 0);
  });

  it("a cache without a bus invalidates only its own instance", async () => {
    const [a, b] = pair(false);
    a.set("k", { org: "org_1" });
    b.set("k", { org: "org_1" });
    await a.delete("k");
    await a.deleteGroup("org_1");
    assert.equal(a.get("k"), undefined);
    assert.ok(b.get("k"));
  });
});
