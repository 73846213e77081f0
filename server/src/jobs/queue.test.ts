/**
 * Job schedules: a scheduled kind runs once per period across every instance sharing the database, keeps its
 * schedule when the handler fails, and never runs twice at once.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { eq } from "drizzle-orm";
import pino from "pino";
import { jobs } from "../db/schema/index.ts";
import { createManualClock } from "../lib/clock.ts";
import { BACKENDS, createTestApp, type TestApp } from "../../test/harness.ts";
import { createJobQueue } from "./queue.ts";

for (const backend of BACKENDS) {
  describe(`job schedules (${backend})`, () => {
    let t: TestApp;
    const clock = createManualClock(new Date("2032-02-01T08:00:00Z"));
    before(async () => {
      t = await createTestApp({ backend, worker: false, clock });
    });
    after(() => t.close());
    const log = pino({ level: "silent" });

    it("runs once per period across two instances, and again only when the period has passed", async () => {
      const runs: string[] = [];
      const [a, b] = [createJobQueue({ db: t.db, clock, log }), createJobQueue({ db: t.db, clock, log })];
      await a.schedule("test.tick", 60_000, async () => void runs.push("a"));
      await b.schedule("test.tick", 60_000, async () => void runs.push("b"));
      await Promise.all([a.drain(), b.drain()]);
      assert.equal(runs.length, 1, `ran ${runs.join(",")}`);
      await Promise.all([a.drain(), b.drain()]);
      assert.equal(runs.length, 1, "not again within the period");
      clock.advance(60_001);
      await Promise.all([b.drain(), a.drain()]);
      assert.equal(runs.length, 2, `ran ${runs.join(",")}`);
      const rows = await t.db.read((ex) => ex.select().from(jobs).where(eq(jobs.kind, "test.tick")));
      assert.equal(rows.length, 1, "one row for the schedule, however many instances");
      assert.equal(rows[0].runAt.getTime(), clock.now().getTime() + 60_000);
    });

    it("a failing scheduled handler is retried and keeps its schedule, never marked failed", async () => {
      let calls = 0;
      const q = createJobQueue({ db: t.db, clock, log });
      await q.schedule("test.flaky", 30_000, async () => {
        calls++;
        if (calls <= 3) throw new Error("not yet");
      });
      for (let i = 0; i < 4; i++) {
        await q.drain();
        clock.advance(30_001);
      }
      assert.equal(calls, 4);
      const [row] = await t.db.read((ex) => ex.select().from(jobs).where(eq(jobs.kind, "test.flaky")));
      assert.equal(row.failedAt, null);
      assert.equal(row.attempts, 0, "a success resets the attempts");
      assert.equal(row.lastError, null);
    });

    it("the signing-key retirement is such a schedule (keys.retire): one row, however many instances start", async () => {
      const other = await createTestApp({ backend, worker: false, clock, sameDatabaseAs: t });
      try {
        const rows = await t.db.read((ex) => ex.select().from(jobs).where(eq(jobs.kind, "keys.retire")));
        assert.equal(rows.length, 1);
        assert.equal(rows[0].id, "schedule:keys.retire");
      } finally {
        await other.close();
      }
    });

    it("stop() takes no new job and returns once the job in flight has finished (plinth worker's SIGTERM)", async () => {
      const q = createJobQueue({ db: t.db, clock, log, pollMs: 60_000 });
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      let entered!: () => void;
      const inFlight = new Promise<void>((r) => (entered = r));
      const done: string[] = [];
      q.register("test.slow", async (payload) => {
        entered();
        await gate;
        done.push(String(payload.n));
      });
      const [first, second] = await t.db.tx({}, async (tx) => [await q.enqueue(tx, "test.slow", { n: 1 }), await q.enqueue(tx, "test.slow", { n: 2 })]);
      q.start();
      await inFlight;
      let stopped = false;
      const stopping = q.stop().then(() => (stopped = true));
      await new Promise((r) => setImmediate(r));
      assert.equal(stopped, false, "waits for the job in flight");
      release();
      await stopping;
      assert.deepEqual(done, ["1"], "the first finished, the second was not taken");
      const left = await t.db.read((ex) => ex.select().from(jobs).where(eq(jobs.kind, "test.slow")));
      assert.deepEqual(
        left.map((j) => [j.id, j.attempts]),
        [[second, 0]],
      );
      assert.ok(!left.some((j) => j.id === first));
      assert.equal(await q.drain("test.slow"), 1, "the next worker runs it");
    });
  });
}
