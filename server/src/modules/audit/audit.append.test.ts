import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { BACKENDS, createTestApp, signUp, type TestApp } from "../../../test/harness.ts";

// Decision 007: an event is appended by one statement sent with its transaction's COMMIT, the chain's head locked
// by that statement alone (no advisory lock, no row of another table held). Appends that nothing else serializes
// must still queue on the head and leave one unbroken chain, several per transaction included.
for (const backend of BACKENDS) {
  describe(`audit append at commit (${backend})`, () => {
    let t: TestApp;
    let org: string;
    before(async () => {
      t = await createTestApp({ backend, worker: false });
      const u = await signUp(t, "Auditor");
      org = (await t.call("GET", "/v1/orgs", undefined, u.access_token)).json().items[0].id;
    });
    after(() => t.close());

    const actor = { type: "system" as const, id: null };
    const record = (n: number) =>
      t.db.tx({ orgId: org }, async (tx) => {
        for (let i = 0; i < n; i++)
          await t.deps.audit.record(tx, actor, { orgId: org, action: "test.appended", target: { type: "org", id: org }, diff: { n: [i, n] } });
      });

    it("concurrent transactions, each with one or three events, chain up without a gap or a fork", async () => {
      const before = (await t.deps.audit.verify(org)) as { ok: true; events: number };
      assert.equal(before.ok, true);
      await Promise.all(Array.from({ length: 12 }, (_, i) => record(i % 3 === 0 ? 3 : 1)));
      const verified = await t.deps.audit.verify(org);
      assert.deepEqual(verified, { ok: true, events: before.events + 4 * 3 + 8 });
    });

    it("an event recorded in a transaction that fails is not written, and the chain goes on", async () => {
      const before = (await t.deps.audit.verify(org)) as { ok: true; events: number };
      await assert.rejects(
        t.db.tx({ orgId: org }, async (tx) => {
          await t.deps.audit.record(tx, actor, { orgId: org, action: "test.never", target: { type: "org", id: org } });
          throw new Error("boom");
        }),
        /boom/,
      );
      await record(1);
      assert.deepEqual(await t.deps.audit.verify(org), { ok: true, events: before.events + 1 });
      const actions = (await t.deps.audit.list(org, {}, 5)).map((e) => e.action);
      assert.ok(!actions.includes("test.never"), actions.join(", "));
    });
  });
}
