import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { sql } from "drizzle-orm";
import { BACKENDS, createTestApp, signUp, type TestApp, type TestUser } from "../../../test/harness.ts";

// The profile update is built once per set of columns with its values bound later (orgs.repo.ts): a value set to
// null must be stored as SQL NULL, not as the JSON null a jsonb column's encoder would make of it.
for (const backend of BACKENDS) {
  describe(`org profile updates, prepared (${backend})`, () => {
    let t: TestApp;
    let owner: TestUser;
    let org: string;
    before(async () => {
      t = await createTestApp({ backend, worker: false });
      owner = await signUp(t, "Owner");
      org = (await t.call("GET", "/v1/orgs", undefined, owner.access_token)).json().items[0].id;
    });
    after(() => t.close());

    const stored = async () =>
      (
        (await t.db.owner.execute(sql`select address is null as no_address, display_name, address from orgs where id = ${org}`)) as unknown as {
          rows: { no_address: boolean; display_name: string | null; address: unknown }[];
        }
      ).rows[0];

    it("sets, changes and clears fields through the same statements, NULL staying NULL", async () => {
      const patch = (body: unknown) => t.call("PATCH", `/v1/orgs/${org}`, body, owner.access_token);
      assert.equal((await patch({ display_name: "One", address: { city: "Lyon", country: "FR" } })).statusCode, 200);
      assert.deepEqual(await stored(), { no_address: false, display_name: "One", address: { city: "Lyon", country: "FR" } });
      assert.equal((await patch({ display_name: "Two", address: { city: "Nice", country: "FR" } })).statusCode, 200);
      assert.deepEqual(await stored(), { no_address: false, display_name: "Two", address: { city: "Nice", country: "FR" } });
      const cleared = await patch({ display_name: null, address: null });
      assert.equal(cleared.statusCode, 200, cleared.body);
      assert.equal(cleared.json().address, null);
      assert.deepEqual(await stored(), { no_address: true, display_name: null, address: null });
    });
  });
}
