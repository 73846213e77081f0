import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { PGlite } from "@electric-sql/pglite";
import { textArrayLiteral } from "./arrays.ts";

describe("array parameters (db/arrays.ts)", () => {
  let db: PGlite;
  before(async () => {
    db = new PGlite();
  });
  after(async () => {
    await db.close();
  });

  it("sends any text through a text[] literal unchanged: quotes, backslashes, commas, braces, spaces, NULL-like words", async () => {
    const items = ["plain", 'a "quoted" word', "back\\slash", "comma,separated", "{braces}", "  spaced  ", "NULL", "", "ünïcode ✓"];
    const { rows } = await db.query<{ a: string[] }>("select $1::text[] as a", [textArrayLiteral(items)]);
    assert.deepEqual(rows[0].a, items);
  });

  it("an empty list is an empty array", async () => {
    const { rows } = await db.query<{ n: number }>("select cardinality($1::text[]) as n", [textArrayLiteral([])]);
    assert.equal(rows[0].n, 0);
  });
});
