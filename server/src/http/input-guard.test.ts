import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { scanInput } from "./input-guard.ts";

describe("input guard", () => {
  it("names the path of a NUL character in a value or a key", () => {
    assert.deepEqual(scanInput({ a: { b: ["ok", "x\u0000y"] } }), { field: "a.b.1", reason: "nul" });
    assert.deepEqual(scanInput({ "k\u0000": 1 }), { field: "k\u0000", reason: "nul" });
    assert.deepEqual(scanInput("\u0000"), { field: "body", reason: "nul" });
    assert.equal(scanInput({ a: "fine", n: 1, z: null, t: true }), undefined);
  });

  it("refuses nesting deeper than 32 levels without recursing", () => {
    let deep: unknown = "leaf";
    for (let i = 0; i < 100_000; i++) deep = { d: deep };
    assert.equal(scanInput(deep)?.reason, "depth");
    let ok: unknown = "leaf";
    for (let i = 0; i < 31; i++) ok = [ok];
    assert.equal(scanInput(ok), undefined);
  });
});
