import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { sql } from "drizzle-orm";
import { BACKENDS, createTestApp, signUp, type TestApp } from "../../test/harness.ts";
import type { Executor } from "./client.ts";

type Rows<T> = { rows: T[] };

/** What a statement sees: the orgs RLS lets through, the tenant setting, and the connection it ran on. */
const SEEN = sql`select coalesce((select array_agg(id order by id) from orgs), '{}') as orgs,
  coalesce(current_setting('app.org_id', true), '') as setting, pg_backend_pid() as pid`;
type Seen = { orgs: string[]; setting: string; pid: number };
const seen = async (ex: Executor): Promise<Seen> => ((await ex.execute(SEEN)) as unknown as Rows<Seen>).rows[0];

/** The database's words for a refused statement, wherever drizzle put them. */
function messages(e: unknown): string {
  const out: string[] = [];
  for (let c: unknown = e; c && typeof c === "object"; c = (c as { cause?: unknown }).cause) out.push(String((c as Error).message));
  return out.join(" | ");
}

// Decision 007: the tenant setting travels with the statements (transaction-local, never a session setting), so a
// connection that served one org never carries its setting into the next piece of work, whatever went wrong before.
for (const backend of BACKENDS) {
  describe(`tenant scope on a pool of one connection (${backend})`, () => {
    let t: TestApp;
    let orgA: string;
    let orgB: string;
    before(async () => {
      t = await createTestApp({ backend, worker: false, env: { DATABASE_POOL_SIZE: "1" } });
      const a = await signUp(t, "Alice");
      const b = await signUp(t, "Bob");
      orgA = (await t.call("GET", "/v1/orgs", undefined, a.access_token)).json().items[0].id;
      orgB = (await t.call("GET", "/v1/orgs", undefined, b.access_token)).json().items[0].id;
    });
    after(() => t.close());

    /** Asserts that a transaction and a read for `org` each see that org alone, and a tenantless one sees none. */
    async function expectOnly(org: string, other: string): Promise<number[]> {
      const inTx = await t.db.tx({ orgId: org }, (tx) => seen(tx));
      assert.deepEqual(inTx.orgs, [org], `a transaction for ${org} sees ${inTx.orgs}`);
      assert.equal(inTx.setting, org);
      const inRead = await t.db.read({ orgId: org }, (ex) => seen(ex));
      assert.deepEqual(inRead.orgs, [org], `a read for ${org} sees ${inRead.orgs}`);
      assert.equal(inRead.setting, org);
      // the other org's row is not there to change either
      const changed = (await t.db.tx({ orgId: org }, (tx) =>
        tx.execute(sql`update orgs set name = name where id = ${other} returning id`),
      )) as unknown as Rows<unknown>;
      assert.equal(changed.rows.length, 0);
      const none = await t.db.tx({}, (tx) => seen(tx));
      assert.deepEqual(none.orgs, [], `a tenantless transaction after ${org} sees ${none.orgs}`);
      assert.equal(none.setting, "");
      const noneRead = await t.db.read({}, (ex) => seen(ex));
      assert.deepEqual(noneRead.orgs, []);
      assert.equal(noneRead.setting, "");
      return [inTx.pid, inRead.pid, none.pid, noneRead.pid];
    }

    it("two orgs alternating on one connection never see each other's rows", async () => {
      const pids = new Set<number>();
      for (let i = 0; i < 10; i++) {
        for (const p of await expectOnly(i % 2 ? orgA : orgB, i % 2 ? orgB : orgA)) pids.add(p);
      }
      // on PostgreSQL the transactions ran on one connection and the reads on one other: the alternation was real
      if (backend === "postgres") assert.equal(pids.size, 2, `connections used: ${[...pids].join(", ")}`);
    });

    it("concurrent work for both orgs queues on the one connection and stays apart", async () => {
      const work = Array.from({ length: 20 }, (_, i) => {
        const org = i % 2 ? orgA : orgB;
        return (i % 4 < 2 ? t.db.tx({ orgId: org }, (tx) => seen(tx)) : t.db.read({ orgId: org }, (ex) => seen(ex))).then((s) => ({ org, s }));
      });
      for (const { org, s } of await Promise.all(work)) {
        assert.deepEqual(s.orgs, [org]);
        assert.equal(s.setting, org);
      }
    });

    it("after a failed statement, a failed transaction or a failed commit, the next org still sees only itself", async () => {
      // a statement fails inside a transaction (the first one, sent with BEGIN and the tenant, and a later one)
      await assert.rejects(
        t.db.tx({ orgId: orgA }, (tx) => tx.execute(sql`select 1 / 0`)),
        (e) => /division by zero/.test(messages(e)),
      );
      await expectOnly(orgB, orgA);
      await assert.rejects(
        t.db.tx({ orgId: orgA }, async (tx) => {
          await seen(tx);
          await tx.execute(sql`select 1 / 0`);
        }),
        (e) => /division by zero/.test(messages(e)),
      );
      await expectOnly(orgB, orgA);
      // the work itself throws after a statement
      await assert.rejects(
        t.db.tx({ orgId: orgA }, async (tx) => {
          await seen(tx);
          throw new Error("boom");
        }),
        /boom/,
      );
      await expectOnly(orgB, orgA);
      // a read fails
      await assert.rejects(
        t.db.read({ orgId: orgA }, (ex) => ex.execute(sql`select 1 / 0`)),
        (e) => /division by zero/.test(messages(e)),
      );
      await expectOnly(orgB, orgA);
      // a statement queued for the commit fails: the transaction's own write is rolled back with it
      const before = ((await t.db.owner.execute(sql`select name from orgs where id = ${orgA}`)) as unknown as Rows<{ name: string }>).rows[0].name;
      await assert.rejects(
        t.db.tx({ orgId: orgA }, async (tx) => {
          await tx.execute(sql`update orgs set name = 'changed' where id = ${orgA}`);
          await t.db.atCommit(tx, sql`select 1 / 0`);
        }),
        (e) => /division by zero/.test(messages(e)),
      );
      const afterName = ((await t.db.owner.execute(sql`select name from orgs where id = ${orgA}`)) as unknown as Rows<{ name: string }>).rows[0].name;
      assert.equal(afterName, before);
      await expectOnly(orgB, orgA);
      await expectOnly(orgA, orgB);
    });

    it("statements queued for the commit run last, as the tenant, and only when the work succeeds", async () => {
      const name = async () => ((await t.db.owner.execute(sql`select name from orgs where id = ${orgA}`)) as unknown as Rows<{ name: string }>).rows[0].name;
      const original = await name();
      // queued in a transaction that sent nothing else: they still run, with the tenant set
      await t.db.tx({ orgId: orgA }, (tx) => t.db.atCommit(tx, sql`update orgs set name = 'queued' where id = ${orgA}`));
      assert.equal(await name(), "queued");
      // queued for another org's row: the tenant policy leaves it untouched
      await t.db.tx({ orgId: orgB }, (tx) => t.db.atCommit(tx, sql`update orgs set name = 'hijacked' where id = ${orgA}`));
      assert.equal(await name(), "queued");
      // they run after everything the work did, and not at all when the work fails
      await t.db.tx({ orgId: orgA }, async (tx) => {
        await t.db.atCommit(tx, sql`update orgs set name = name || ' last' where id = ${orgA}`);
        await tx.execute(sql`update orgs set name = 'first' where id = ${orgA}`);
      });
      assert.equal(await name(), "first last");
      await assert.rejects(
        t.db.tx({ orgId: orgA }, async (tx) => {
          await t.db.atCommit(tx, sql`update orgs set name = 'never' where id = ${orgA}`);
          throw new Error("boom");
        }),
        /boom/,
      );
      assert.equal(await name(), "first last");
      await t.db.tx({ orgId: orgA }, (tx) => tx.execute(sql`update orgs set name = ${original} where id = ${orgA}`));
      await expectOnly(orgB, orgA);
    });

    it("a value the driver cannot send fails its statement, and nothing queued after it commits", async () => {
      const circular: Record<string, unknown> = {};
      circular.self = circular;
      const name = async () => ((await t.db.owner.execute(sql`select name from orgs where id = ${orgA}`)) as unknown as Rows<{ name: string }>).rows[0].name;
      const original = await name();
      await assert.rejects(t.db.tx({ orgId: orgA }, (tx) => tx.execute(sql`select ${circular}::jsonb`)));
      // a read fails at once too, while the batch's tenant setting is still on its way: the connection goes back
      // to the pool only once that has been answered
      await assert.rejects(t.db.read({ orgId: orgA }, (ex) => ex.execute(sql`select ${circular}::jsonb`)));
      await expectOnly(orgB, orgA);
      await assert.rejects(
        t.db.tx({ orgId: orgA }, async (tx) => {
          await tx.execute(sql`update orgs set name = 'unsendable' where id = ${orgA}`);
          await t.db.atCommit(tx, sql`select ${circular}::jsonb`);
          await t.db.atCommit(tx, sql`update orgs set name = 'after the unsendable' where id = ${orgA}`);
        }),
      );
      assert.equal(await name(), original);
      await expectOnly(orgB, orgA);
      await expectOnly(orgA, orgB);
    });

    it("a tenant read cannot write or lock, and a statement sent after the work ended is refused", async () => {
      await assert.rejects(
        t.db.read({ orgId: orgA }, (ex) => ex.execute(sql`update orgs set name = 'x' where id = ${orgA}`)),
        (e) => /read-only transaction/.test(messages(e)),
      );
      await assert.rejects(
        t.db.read({ orgId: orgA }, (ex) => ex.execute(sql`select id from orgs where id = ${orgA} for update`)),
        (e) => /read-only transaction/.test(messages(e)),
      );
      let leaked: Executor | undefined;
      await t.db.tx({ orgId: orgA }, async (tx) => {
        leaked = tx;
        await seen(tx);
      });
      if (backend === "postgres") await assert.rejects(seen(leaked!), (e) => /over/.test(messages(e)));
      await expectOnly(orgB, orgA);
    });
  });
}
