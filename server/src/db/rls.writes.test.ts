import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { sql, type SQL } from "drizzle-orm";
import { BACKENDS, addMember, createTestApp, makeOrg, signUp, type TestApp, type TestUser } from "../../test/harness.ts";

type Rows<T> = { rows: T[] };

// Regression (issue 9): the orgs and memberships policies were FOR ALL with `USING (tenant OR user)`, so the user
// rule, meant for reading "my orgs", also let UPDATE and DELETE reach another org's rows: a transaction for org A run
// for a user who also belongs to org B changed B's org and memberships. Writes now check the tenant only.
for (const backend of BACKENDS) {
  describe(`row-level security: writes check the tenant only (${backend})`, () => {
    let t: TestApp;
    let alice: TestUser;
    let bob: TestUser;
    let orgA: string;
    let orgB: string;
    before(async () => {
      t = await createTestApp({ backend, worker: false });
      alice = await signUp(t, "Alice");
      bob = await signUp(t, "Bob");
      orgA = await makeOrg(t, alice, "Alpha");
      // alice belongs to B as well, as a member; bob owns it
      orgB = await makeOrg(t, bob, "Bravo");
      await addMember(t, orgB, alice, "viewer");
    });
    after(() => t.close());

    /** Runs `q` as the app role, for tenant A and the user alice (who belongs to A and to B): the rows it returned. */
    const asAliceInA = async <T>(q: SQL): Promise<T[]> =>
      ((await t.db.tx({ orgId: orgA, userId: alice.id }, (tx) => tx.execute(q))) as unknown as Rows<T>).rows;
    const ownerRows = async <T>(q: SQL): Promise<T[]> => ((await t.db.owner.execute(q)) as unknown as Rows<T>).rows;
    const stateOfB = () =>
      ownerRows(sql`select (select row_to_json(o) from orgs o where o.id = ${orgB}) as org,
        (select json_agg(json_build_object('user_id', m.user_id, 'role', m.role) order by m.user_id) from memberships m where m.org_id = ${orgB}) as members`);

    it("the user rule still lets the transaction read B's org row and the user's own membership in B", async () => {
      assert.deepEqual(await asAliceInA(sql`select id from orgs where id = ${orgB}`), [{ id: orgB }]);
      assert.deepEqual(await asAliceInA(sql`select org_id, role from memberships where org_id = ${orgB}`), [{ org_id: orgB, role: "viewer" }]);
    });

    it("UPDATE and DELETE of B's org row and of B's memberships affect no row", async () => {
      const before = await stateOfB();
      assert.deepEqual(await asAliceInA(sql`update orgs set display_name = 'taken over' where id = ${orgB} returning id`), []);
      assert.deepEqual(await asAliceInA(sql`update memberships set role = 'owner' where org_id = ${orgB} and user_id = ${alice.id} returning user_id`), []);
      assert.deepEqual(await asAliceInA(sql`delete from memberships where org_id = ${orgB} returning user_id`), []);
      assert.deepEqual(await asAliceInA(sql`delete from orgs where id = ${orgB} returning id`), []);
      assert.deepEqual(await stateOfB(), before, "org B is as it was");
      assert.equal((before[0] as { members: unknown[] }).members.length, 2);
    });

    it("nor can the transaction lock B's rows for a change (SELECT … FOR UPDATE)", async () => {
      assert.deepEqual(await asAliceInA(sql`select user_id from memberships where org_id = ${orgB} for update`), []);
      assert.deepEqual(await asAliceInA(sql`select id from orgs where id = ${orgB} for update`), []);
    });

    it("the tenant's own rows are still written as before", async () => {
      assert.deepEqual(await asAliceInA(sql`update orgs set display_name = 'Alpha Inc' where id = ${orgA} returning id`), [{ id: orgA }]);
      assert.deepEqual(await asAliceInA(sql`update memberships set role = role where org_id = ${orgA} returning user_id`), [{ user_id: alice.id }]);
    });
  });
}
