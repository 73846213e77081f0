import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { ALL_PERMISSIONS, BUILT_IN_ROLES, permissionsTable, ROLE_RANK } from "./permissions.ts";

describe("permission catalog", () => {
  it("docs/permissions.md shows the roles exactly as the code defines them", () => {
    const doc = readFileSync(new URL("../../../../docs/permissions.md", import.meta.url), "utf8");
    assert.ok(doc.includes(permissionsTable()), "regenerate docs/permissions.md from permissionsTable()");
  });

  it("names every permission resource:action, and each role is a subset of the next more powerful one", () => {
    for (const p of ALL_PERMISSIONS) assert.match(p, /^[a-z-]+:[a-z-]+$/);
    const ordered = (Object.keys(ROLE_RANK) as (keyof typeof ROLE_RANK)[]).sort((a, b) => ROLE_RANK[a] - ROLE_RANK[b]);
    for (let i = 1; i < ordered.length; i++) {
      const lower = new Set<string>(BUILT_IN_ROLES[ordered[i - 1]].permissions);
      const higher = new Set<string>(BUILT_IN_ROLES[ordered[i]].permissions);
      for (const p of lower) assert.ok(higher.has(p), `${ordered[i]} lacks ${p} that ${ordered[i - 1]} has`);
    }
    assert.equal(BUILT_IN_ROLES.owner.permissions.length, ALL_PERMISSIONS.length);
    assert.ok(!(BUILT_IN_ROLES.admin.permissions as readonly string[]).includes("org:delete"));
  });
});
