import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isAppError } from "./errors.ts";
import { newId } from "./ids.ts";
import { decodeCursor, encodeCursor, idCursor, page, pageRequest } from "./pagination.ts";

describe("pagination", () => {
  const rows = [1, 2, 3].map((n) => ({ id: `row${n}`, n }));

  it("shows `limit` rows and the cursor of the last one when more were fetched", () => {
    const p = page(
      rows,
      2,
      (r) => r.id,
      (r) => r.n,
    );
    assert.deepEqual(p.items, [1, 2]);
    assert.equal(decodeCursor(p.next_cursor ?? undefined), "row2");
  });

  it("has no next page when the rows fit", () => {
    assert.deepEqual(
      page(rows, 3, (r) => r.id),
      { items: rows, next_cursor: null },
    );
    assert.deepEqual(
      page([], 50, (r: { id: string }) => r.id),
      { items: [], next_cursor: null },
    );
  });

  it("reads limit (default 50), fetch and the cursor's key", () => {
    const id = newId("team");
    assert.deepEqual(pageRequest({}, idCursor("team")), { limit: 50, fetch: 51, cursor: undefined });
    assert.deepEqual(pageRequest({ limit: 5, cursor: encodeCursor(id) }, idCursor("team")), { limit: 5, fetch: 6, cursor: id });
  });

  it("refuses a cursor this list did not hand out, naming cursor", () => {
    assert.throws(
      () => pageRequest({ cursor: encodeCursor(newId("user")) }, idCursor("team")),
      (e) => isAppError(e) && e.code === "VALIDATION_FAILED" && e.field === "cursor",
    );
  });
});
