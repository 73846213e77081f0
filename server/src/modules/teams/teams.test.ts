import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { sql } from "drizzle-orm";
import { newId } from "../../lib/ids.ts";
import { isoTimestamp } from "./teams.repo.ts";
import {
  BACKENDS,
  addMember,
  assertFieldError,
  assertProblem,
  createTestApp,
  makeOrg,
  signUp,
  uniqueSlug,
  type TestApp,
  type TestUser,
} from "../../../test/harness.ts";

interface Team {
  id: string;
  name: string;
  description: string | null;
  parent_id: string | null;
  path: string[];
  created_by: string | null;
  created_at: string;
  updated_at: string;
}
interface Node {
  id: string;
  name: string;
  children: Node[];
}

describe("isoTimestamp", () => {
  it("turns PostgreSQL's timestamptz text into Date#toISOString's form, in any session time zone", () => {
    const cases: [string | Date, string][] = [
      ["2024-05-01 12:34:56.789123+00", "2024-05-01T12:34:56.789Z"],
      ["2024-05-01 12:34:56.7+00", "2024-05-01T12:34:56.700Z"],
      ["2024-05-01 12:34:56+00", "2024-05-01T12:34:56.000Z"],
      ["2024-05-01 14:34:56.789+02", "2024-05-01T12:34:56.789Z"],
      ["2024-05-01 07:04:56.789-05:30", "2024-05-01T12:34:56.789Z"],
      [new Date("2024-05-01T12:34:56.789Z"), "2024-05-01T12:34:56.789Z"],
    ];
    for (const [input, want] of cases) assert.equal(isoTimestamp(input), want, String(input));
  });
});

for (const backend of BACKENDS) {
  describe(`teams (${backend})`, () => {
    let t: TestApp;
    let alice: TestUser;
    let bob: TestUser;
    let carol: TestUser;
    /** Bob's org with one team: the other tenant. */
    let otherOrg: string;
    let otherTeam: Team;

    const newOrg = (user: TestUser = alice) => makeOrg(t, user, "Acme", uniqueSlug("teams"));
    const call = (user: TestUser, method: string, path: string, body?: unknown) => t.call(method, path, body, user.access_token);
    const teamsUrl = (orgId: string) => `/v1/orgs/${orgId}/teams`;
    const create = async (orgId: string, body: Record<string, unknown>, user: TestUser = alice): Promise<Team> => {
      const res = await call(user, "POST", teamsUrl(orgId), body);
      assert.equal(res.statusCode, 201, res.body);
      return res.json();
    };
    const get = async (orgId: string, teamId: string, user: TestUser = alice) => {
      const res = await call(user, "GET", `${teamsUrl(orgId)}/${teamId}`);
      assert.equal(res.statusCode, 200, res.body);
      return res.json() as Team & { member_count: number; ancestors: { id: string; name: string }[] };
    };
    const events = (orgId: string) => t.deps.audit.list(orgId, {}, 1000);
    const teamRows = async (orgId: string) =>
      (
        (await t.db.owner.execute(sql`select id, name, description, parent_id, path from teams where org_id = ${orgId} order by id`)) as unknown as {
          rows: unknown[];
        }
      ).rows;
    /** Everything a refused request must leave as it was. */
    const snapshot = async (orgId: string) => ({
      teams: await teamRows(orgId),
      members: (
        (await t.db.owner.execute(sql`select team_id, user_id, role from team_members where org_id = ${orgId} order by team_id, user_id`)) as unknown as {
          rows: unknown[];
        }
      ).rows,
      events: (await events(orgId)).length,
    });
    /** A chain of `n` teams, each under the previous; the first at the top level (or under `under`). */
    const chain = async (orgId: string, n: number, tag: string, under?: string): Promise<Team[]> => {
      const out: Team[] = [];
      for (let i = 0; i < n; i++) out.push(await create(orgId, { name: `${tag} ${i + 1}`, parent_id: out[i - 1]?.id ?? under }));
      return out;
    };

    before(async () => {
      t = await createTestApp({ backend, worker: false });
      [alice, bob, carol] = await Promise.all([signUp(t, "Alice"), signUp(t, "Bob"), signUp(t, "Carol")]);
      otherOrg = await newOrg(bob);
      otherTeam = await create(otherOrg, { name: "Bob's team" }, bob);
    });
    after(() => t.close());

    it("POST /teams creates a team with its creator as maintainer, audited as team.created", async () => {
      const org = await newOrg();
      const res = await call(alice, "POST", teamsUrl(org), { name: "  Platform  ", description: "The platform team" });
      assert.equal(res.statusCode, 201, res.body);
      const team = res.json() as Team;
      assert.match(team.id, /^team_[0-9a-z]{26}$/);
      assert.equal(team.name, "Platform", "trimmed");
      assert.equal(team.description, "The platform team");
      assert.equal(team.parent_id, null);
      assert.deepEqual(team.path, [team.id]);
      assert.equal(team.created_by, alice.id);
      assert.match(team.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.equal(team.updated_at, team.created_at);
      const detail = await get(org, team.id);
      assert.deepEqual({ ...detail, member_count: undefined, ancestors: undefined }, { ...team, member_count: undefined, ancestors: undefined });
      assert.equal(detail.member_count, 1);
      assert.deepEqual(detail.ancestors, []);
      const members = (await call(alice, "GET", `${teamsUrl(org)}/${team.id}/members`)).json();
      assert.deepEqual(
        members.items.map((m: { user_id: string; role: string; email: string }) => [m.user_id, m.role, m.email]),
        [[alice.id, "maintainer", alice.email]],
      );
      const [ev] = await events(org);
      assert.equal(ev.action, "team.created");
      assert.equal(ev.actorId, alice.id);
      assert.deepEqual([ev.targetType, ev.targetId], ["team", team.id]);
      assert.deepEqual(ev.diff, { name: [null, "Platform"], description: [null, "The platform team"], parent_id: [null, null], maintainer: [null, alice.id] });
    });

    const badCreate: [string, Record<string, unknown>, string][] = [
      ["an empty name", { name: "" }, "name"],
      ["a blank name", { name: "   " }, "name"],
      ["a 101-character name", { name: "n".repeat(101) }, "name"],
      ["a missing name", { name: undefined }, "name"],
      ["a numeric name", { name: 42 }, "name"],
      ["a 1,001-character description", { description: "d".repeat(1001) }, "description"],
      ["a malformed parent_id", { parent_id: "team_nope" }, "parent_id"],
      ["a parent_id of another kind", { parent_id: newId("org") }, "parent_id"],
      ["an unknown field", { path: ["x"] }, "path"],
    ];
    for (const [label, patch, field] of badCreate) {
      it(`POST /teams refuses ${label} with 400 naming ${field}, creating nothing`, async () => {
        const org = await newOrg();
        const before = await snapshot(org);
        const body: Record<string, unknown> = { name: "Valid", ...patch };
        for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
        assertFieldError(await call(alice, "POST", teamsUrl(org), body), field);
        assert.deepEqual(await snapshot(org), before);
      });
    }

    it("team names are unique per org, case-insensitively (409 naming name); other orgs may reuse them", async () => {
      const org = await newOrg();
      await create(org, { name: "Design" });
      const before = await snapshot(org);
      for (const name of ["Design", "design", "  DESIGN "]) assertProblem(await call(alice, "POST", teamsUrl(org), { name }), 409, "TEAM_NAME_TAKEN", "name");
      assert.deepEqual(await snapshot(org), before);
      await create(await newOrg(), { name: "Design" });
      await create(otherOrg, { name: "Design" }, bob);
    });

    it("a team under a parent gets the parent's path plus its own id; a parent of another org or a made-up one is a 400 naming parent_id", async () => {
      const org = await newOrg();
      const [a, b] = await chain(org, 2, "P");
      const c = await create(org, { name: "P child", parent_id: b.id, description: null });
      assert.deepEqual(c.path, [a.id, b.id, c.id]);
      assert.equal(c.parent_id, b.id);
      assert.equal(c.description, null);
      const [ev] = await events(org);
      assert.deepEqual((ev.diff as Record<string, unknown>).parent_id, [null, b.id]);
      const before = await snapshot(org);
      for (const parent_id of [otherTeam.id, newId("team")]) {
        assertProblem(await call(alice, "POST", teamsUrl(org), { name: "Orphan", parent_id }), 400, "TEAM_PARENT_NOT_FOUND", "parent_id");
      }
      assert.deepEqual(await snapshot(org), before);
      assert.equal((await teamRows(otherOrg)).length >= 1, true);
    });

    it("teams nest at most 10 deep: the 11th level is a 400 TEAM_TOO_DEEP naming parent_id", async () => {
      const org = await newOrg();
      const ten = await chain(org, 10, "Depth");
      assert.equal(ten[9].path.length, 10);
      const before = await snapshot(org);
      assertProblem(await call(alice, "POST", teamsUrl(org), { name: "Too deep", parent_id: ten[9].id }), 400, "TEAM_TOO_DEEP", "parent_id");
      assert.deepEqual(await snapshot(org), before);
    });

    it("GET /teams pages through every team in creation order; parent_id=root and parent_id=team_… narrow it", async () => {
      const org = await newOrg();
      const roots = [await create(org, { name: "R1" }), await create(org, { name: "R2" })];
      const kids = [await create(org, { name: "K1", parent_id: roots[0].id }), await create(org, { name: "K2", parent_id: roots[0].id })];
      const grandkid = await create(org, { name: "G1", parent_id: kids[0].id });
      const all = [...roots, ...kids, grandkid];
      const seen: Team[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const res = await call(alice, "GET", `${teamsUrl(org)}?limit=2${cursor ? `&cursor=${cursor}` : ""}`);
        assert.equal(res.statusCode, 200, res.body);
        const page = res.json() as { items: Team[]; next_cursor: string | null };
        assert.ok(page.items.length <= 2);
        seen.push(...page.items);
        cursor = page.next_cursor;
        pages++;
      } while (cursor);
      assert.equal(pages, 3);
      assert.deepEqual(seen, all, "every team once, in creation order, as created");
      const ids = async (q: string) => ((await call(alice, "GET", `${teamsUrl(org)}?${q}`)).json().items as Team[]).map((x) => x.id);
      assert.deepEqual(
        await ids(""),
        all.map((x) => x.id),
        "limit defaults to 50",
      );
      assert.deepEqual(
        await ids("parent_id=root"),
        roots.map((x) => x.id),
      );
      assert.deepEqual(
        await ids(`parent_id=${roots[0].id}`),
        kids.map((x) => x.id),
      );
      assert.deepEqual(await ids(`parent_id=${kids[0].id}`), [grandkid.id]);
      assert.deepEqual(await ids(`parent_id=${otherTeam.id}`), [], "another org's team has no children here");
      assert.deepEqual(await ids(`parent_id=root&limit=1&cursor=${Buffer.from(roots[0].id).toString("base64url")}`), [roots[1].id]);
      assert.ok(!(await ids("")).includes(otherTeam.id));
    });

    const badList: [string, string][] = [
      ["limit=0", "limit"],
      ["limit=201", "limit"],
      ["limit=many", "limit"],
      ["parent_id=top", "parent_id"],
      ["parent_id=team_x", "parent_id"],
      ["cursor=!!", "cursor"],
      [`cursor=${Buffer.from("usr_00000000000000000000000000").toString("base64url")}`, "cursor"],
      [`cursor=${Buffer.from("' or 1=1 --").toString("base64url")}`, "cursor"],
      ["sort=name", "sort"],
    ];
    for (const [q, field] of badList) {
      it(`GET /teams?${q} is a 400 naming ${field}`, async () => {
        assertFieldError(await call(alice, "GET", `${teamsUrl(await newOrg())}?${q}`), field);
      });
    }

    it("GET /teams/tree nests the whole hierarchy, siblings by name", async () => {
      const org = await newOrg();
      const zeta = await create(org, { name: "zeta" });
      const alpha = await create(org, { name: "Alpha" });
      const b = await create(org, { name: "beta", parent_id: alpha.id });
      const a = await create(org, { name: "aardvark", parent_id: alpha.id });
      const deep = await chain(org, 8, "Deep", a.id); // down to level 10, the deepest allowed
      const res = await call(alice, "GET", `${teamsUrl(org)}/tree`);
      assert.equal(res.statusCode, 200, res.body);
      const tree = res.json() as { items: Node[]; total: number };
      assert.equal(tree.total, 12);
      let deepNode: Node = { id: deep[7].id, name: "Deep 8", children: [] };
      for (let i = 6; i >= 0; i--) deepNode = { id: deep[i].id, name: `Deep ${i + 1}`, children: [deepNode] };
      assert.deepEqual(tree.items, [
        {
          id: alpha.id,
          name: "Alpha",
          children: [
            { id: a.id, name: "aardvark", children: [deepNode] },
            { id: b.id, name: "beta", children: [] },
          ],
        },
        { id: zeta.id, name: "zeta", children: [] },
      ]);
      const empty = await call(alice, "GET", `${teamsUrl(await newOrg())}/tree`);
      assert.deepEqual(empty.json(), { items: [], total: 0 });
      assertFieldError(await call(alice, "GET", `${teamsUrl(org)}/tree?depth=2`), "depth");
    });

    it("GET /teams/tree handles 1,000 teams", async () => {
      const org = await newOrg();
      // seeded in two statements: 100 top-level teams with 9 children each
      const id = (n: string) => sql`'team_' || substr(md5(${org} || ${n}), 1, 26)`;
      await t.db.owner.execute(sql`
        insert into teams (id, org_id, name, parent_id, path)
        select ${id("r")} || r, ${org}, 'Root ' || lpad(r::text, 3, '0'), null, array[${id("r")} || r]
        from generate_series(1, 100) r`);
      await t.db.owner.execute(sql`
        insert into teams (id, org_id, name, parent_id, path)
        select ${id("c")} || r || '.' || c, ${org}, 'Child ' || r || '.' || c, ${id("r")} || r, array[${id("r")} || r, ${id("c")} || r || '.' || c]
        from generate_series(1, 100) r, generate_series(1, 9) c`);
      const started = Date.now();
      const res = await call(alice, "GET", `${teamsUrl(org)}/tree`);
      const ms = Date.now() - started;
      assert.equal(res.statusCode, 200, res.body.slice(0, 300));
      const tree = res.json() as { items: Node[]; total: number };
      assert.equal(tree.total, 1000);
      assert.equal(tree.items.length, 100);
      assert.ok(tree.items.every((n) => n.children.length === 9 && n.children.every((c) => c.children.length === 0)));
      assert.equal(tree.items[0].name, "Root 001");
      assert.ok(ms < 2000, `tree of 1,000 teams took ${ms} ms`);
    });

    it("GET /teams/:teamId shows ancestors and the member count; another org's team or a made-up id is 404 TEAM_NOT_FOUND", async () => {
      const org = await newOrg();
      const [a, b, c] = await chain(org, 3, "Anc");
      await addMember(t, org, carol, "viewer");
      assert.equal((await call(alice, "PUT", `${teamsUrl(org)}/${c.id}/members/${carol.id}`, { role: "member" })).statusCode, 201);
      const detail = await get(org, c.id);
      assert.deepEqual(detail.ancestors, [
        { id: a.id, name: "Anc 1" },
        { id: b.id, name: "Anc 2" },
      ]);
      assert.deepEqual(detail.path, [a.id, b.id, c.id]);
      assert.equal(detail.parent_id, b.id);
      assert.equal(detail.member_count, 2);
      for (const id of [otherTeam.id, newId("team")]) assertProblem(await call(alice, "GET", `${teamsUrl(org)}/${id}`), 404, "TEAM_NOT_FOUND", "teamId");
      assertFieldError(await call(alice, "GET", `${teamsUrl(org)}/team_123`), "teamId");
      assertFieldError(await call(alice, "GET", `${teamsUrl(org)}/${otherOrg}`), "teamId");
    });

    it("PATCH renames and re-describes, audited with the changed fields only; an unchanged value records nothing", async () => {
      const org = await newOrg();
      const team = await create(org, { name: "Old", description: "before" });
      const res = await call(alice, "PATCH", `${teamsUrl(org)}/${team.id}`, { name: " New ", description: "after" });
      assert.equal(res.statusCode, 200, res.body);
      const changed = res.json() as Team;
      assert.equal(changed.name, "New");
      assert.equal(changed.description, "after");
      assert.deepEqual({ ...changed, name: "Old", description: "before", updated_at: team.updated_at }, team, "nothing else changed");
      let [ev] = await events(org);
      assert.equal(ev.action, "team.updated");
      assert.deepEqual(ev.diff, { name: ["Old", "New"], description: ["before", "after"] });
      const cleared = await call(alice, "PATCH", `${teamsUrl(org)}/${team.id}`, { description: null, name: "New" });
      assert.equal(cleared.json().description, null);
      [ev] = await events(org);
      assert.deepEqual(ev.diff, { description: ["after", null] });
      const count = (await events(org)).length;
      assert.equal((await call(alice, "PATCH", `${teamsUrl(org)}/${team.id}`, { name: "New" })).statusCode, 200);
      assert.equal((await events(org)).length, count, "no change, no event");
      // a case-only rename of itself is allowed; taking another team's name is not
      assert.equal((await call(alice, "PATCH", `${teamsUrl(org)}/${team.id}`, { name: "NEW" })).json().name, "NEW");
      await create(org, { name: "Taken" });
      const before = await snapshot(org);
      assertProblem(await call(alice, "PATCH", `${teamsUrl(org)}/${team.id}`, { name: "taken" }), 409, "TEAM_NAME_TAKEN", "name");
      assert.deepEqual(await snapshot(org), before);
    });

    const badPatch: [string, unknown, string][] = [
      ["an empty body", {}, "body"],
      ["a null name", { name: null }, "name"],
      ["a blank name", { name: " " }, "name"],
      ["a 101-character name", { name: "x".repeat(101) }, "name"],
      ["a 1,001-character description", { description: "x".repeat(1001) }, "description"],
      ["parent_id (moves go through /move)", { parent_id: null }, "parent_id"],
      ["an array body", [], "body"],
    ];
    for (const [label, body, field] of badPatch) {
      it(`PATCH refuses ${label} with 400 naming ${field}, changing nothing`, async () => {
        const org = await newOrg();
        const team = await create(org, { name: "Stable" });
        const before = await snapshot(org);
        assertFieldError(await call(alice, "PATCH", `${teamsUrl(org)}/${team.id}`, body), field);
        assert.deepEqual(await snapshot(org), before);
      });
    }

    it("a move re-parents the whole subtree: every descendant's path is rewritten, audited as team.moved", async () => {
      const org = await newOrg();
      const [a, b, c, d] = await chain(org, 4, "M");
      const c2 = await create(org, { name: "M3b", parent_id: b.id });
      const e = await create(org, { name: "E" });
      const res = await call(alice, "POST", `${teamsUrl(org)}/${b.id}/move`, { parent_id: e.id });
      assert.equal(res.statusCode, 200, res.body);
      const moved = res.json() as Team;
      assert.equal(moved.parent_id, e.id);
      assert.deepEqual(moved.path, [e.id, b.id]);
      const byId = new Map((await teamRows(org)).map((r) => [(r as Team).id, r as Team]));
      assert.deepEqual(byId.get(a.id)?.path, [a.id], "the old parent stays");
      assert.deepEqual(byId.get(c.id)?.path, [e.id, b.id, c.id]);
      assert.deepEqual(byId.get(d.id)?.path, [e.id, b.id, c.id, d.id]);
      assert.deepEqual(byId.get(c2.id)?.path, [e.id, b.id, c2.id]);
      assert.equal(byId.get(c.id)?.parent_id, b.id, "children keep their parent");
      assert.deepEqual(byId.get(e.id)?.path, [e.id]);
      const [ev] = await events(org);
      assert.equal(ev.action, "team.moved");
      assert.deepEqual([ev.targetId, ev.diff], [b.id, { parent_id: [a.id, e.id] }]);
      assert.deepEqual(
        (await get(org, d.id)).ancestors.map((x) => x.id),
        [e.id, b.id, c.id],
      );
      // to the top level
      const top = await call(alice, "POST", `${teamsUrl(org)}/${c.id}/move`, { parent_id: null });
      assert.equal(top.statusCode, 200, top.body);
      assert.deepEqual(top.json().path, [c.id]);
      assert.deepEqual(((await get(org, d.id)) as Team).path, [c.id, d.id]);
      assert.deepEqual((await events(org))[0].diff, { parent_id: [b.id, null] });
      // to where it already is: nothing happens
      const count = (await events(org)).length;
      assert.equal((await call(alice, "POST", `${teamsUrl(org)}/${c.id}/move`, { parent_id: null })).statusCode, 200);
      assert.equal((await events(org)).length, count);
      const tree = (await call(alice, "GET", `${teamsUrl(org)}/tree`)).json() as { items: Node[] };
      assert.deepEqual(
        tree.items.map((n) => n.name),
        ["E", "M 1", "M 3"],
      );
    });

    it("moving a team under itself or a descendant is 409 TEAM_CYCLE naming parent_id, and nothing moves", async () => {
      const org = await newOrg();
      const [a, b, c] = await chain(org, 3, "Cyc");
      const before = await snapshot(org);
      for (const [team, parent] of [
        [a, a],
        [a, b],
        [a, c],
        [b, c],
      ]) {
        assertProblem(await call(alice, "POST", `${teamsUrl(org)}/${team.id}/move`, { parent_id: parent.id }), 409, "TEAM_CYCLE", "parent_id");
      }
      assert.deepEqual(await snapshot(org), before);
    });

    it("a move that would put the subtree's deepest team below level 10 is 400 TEAM_TOO_DEEP naming parent_id", async () => {
      const org = await newOrg();
      const long = await chain(org, 7, "Long");
      const sub = await chain(org, 4, "Sub"); // 4 levels: under Long 7 its deepest would be level 11
      const before = await snapshot(org);
      assertProblem(await call(alice, "POST", `${teamsUrl(org)}/${sub[0].id}/move`, { parent_id: long[6].id }), 400, "TEAM_TOO_DEEP", "parent_id");
      assert.deepEqual(await snapshot(org), before);
      const ok = await call(alice, "POST", `${teamsUrl(org)}/${sub[0].id}/move`, { parent_id: long[5].id });
      assert.equal(ok.statusCode, 200, ok.body);
      assert.equal((await get(org, sub[3].id)).path.length, 10);
    });

    const badMove: [string, unknown, string, string?][] = [
      ["a missing parent_id", {}, "parent_id"],
      ["a malformed parent_id", { parent_id: "team_1" }, "parent_id"],
      ["a numeric parent_id", { parent_id: 7 }, "parent_id"],
      ["an unknown field", { parent_id: null, name: "x" }, "name"],
      ["another org's team as parent", { parent_id: "OTHER" }, "parent_id", "TEAM_PARENT_NOT_FOUND"],
      ["a made-up parent", { parent_id: newId("team") }, "parent_id", "TEAM_PARENT_NOT_FOUND"],
    ];
    for (const [label, body, field, code] of badMove) {
      it(`POST /move refuses ${label} with 400 naming ${field}, moving nothing`, async () => {
        const org = await newOrg();
        const [, b] = await chain(org, 2, "Mv");
        const before = await snapshot(org);
        const payload = (body as { parent_id?: unknown }).parent_id === "OTHER" ? { parent_id: otherTeam.id } : body;
        assertFieldError(await call(alice, "POST", `${teamsUrl(org)}/${b.id}/move`, payload), field, code);
        assert.deepEqual(await snapshot(org), before);
      });
    }

    it("DELETE refuses a team with sub-teams (409 TEAM_HAS_CHILDREN); cascade=true deletes the subtree, its memberships and grants", async () => {
      const org = await newOrg();
      const [a, b, c] = await chain(org, 3, "Del");
      const keep = await create(org, { name: "Keep" });
      await addMember(t, org, carol, "viewer");
      await call(alice, "PUT", `${teamsUrl(org)}/${c.id}/members/${carol.id}`, { role: "member" });
      // grants on the subtree's teams, to them, and one that must survive
      const grant = (subjectType: string, subjectId: string, objectType: string, objectId: string) =>
        t.db.owner.execute(sql`insert into grants (id, org_id, subject_type, subject_id, relation, object_type, object_id, kind)
          values (${newId("grant")}, ${org}, ${subjectType}, ${subjectId}, 'read', ${objectType}, ${objectId}, 'share')`);
      await grant("user", carol.id, "team", b.id);
      await grant("team", c.id, "conversation", "cnv_1");
      await grant("team", keep.id, "team", keep.id);
      const before = await snapshot(org);
      assertProblem(await call(alice, "DELETE", `${teamsUrl(org)}/${a.id}`), 409, "TEAM_HAS_CHILDREN");
      assertProblem(await call(alice, "DELETE", `${teamsUrl(org)}/${a.id}?cascade=false`), 409, "TEAM_HAS_CHILDREN");
      assert.deepEqual(await snapshot(org), before);
      const res = await call(alice, "DELETE", `${teamsUrl(org)}/${b.id}?cascade=true`);
      assert.equal(res.statusCode, 200, res.body);
      assert.deepEqual(res.json(), { deleted: [c.id, b.id], grants_deleted: 2 });
      assert.deepEqual(
        (await teamRows(org)).map((r) => (r as Team).id),
        [a.id, keep.id],
      );
      const left = (await t.db.owner.execute(sql`select subject_id from grants where org_id = ${org}`)) as unknown as { rows: { subject_id: string }[] };
      assert.deepEqual(
        left.rows.map((r) => r.subject_id),
        [keep.id],
      );
      const gone = (await t.db.owner.execute(sql`select count(*)::int as n from team_members where team_id in (${b.id}, ${c.id})`)) as unknown as {
        rows: { n: number }[];
      };
      assert.equal(gone.rows[0].n, 0);
      const [first, second] = await events(org);
      assert.deepEqual([second.action, second.targetId, second.diff], ["team.deleted", c.id, { name: ["Del 3", null], parent_id: [b.id, null] }]);
      assert.deepEqual(
        [first.action, first.targetId, first.diff],
        ["team.deleted", b.id, { name: ["Del 2", null], parent_id: [a.id, null], grants_deleted: 2, teams_deleted: 2 }],
      );
      // a leaf goes without cascade; then it is gone
      assert.equal((await call(alice, "DELETE", `${teamsUrl(org)}/${a.id}`)).statusCode, 200);
      assertProblem(await call(alice, "GET", `${teamsUrl(org)}/${a.id}`), 404, "TEAM_NOT_FOUND");
      assertProblem(await call(alice, "DELETE", `${teamsUrl(org)}/${a.id}`), 404, "TEAM_NOT_FOUND");
      // the name is free again
      await create(org, { name: "Del 1" });
      const before2 = await snapshot(org);
      assertFieldError(await call(alice, "DELETE", `${teamsUrl(org)}/${keep.id}?cascade=maybe`), "cascade");
      assertFieldError(await call(alice, "DELETE", `${teamsUrl(org)}/${keep.id}?force=true`), "force");
      assert.deepEqual(await snapshot(org), before2);
    });

    it("members: PUT adds (201) and changes roles (200), GET pages them, DELETE removes; each audited", async () => {
      const org = await newOrg();
      const team = await create(org, { name: "Crew" });
      const url = `${teamsUrl(org)}/${team.id}/members`;
      const extra = await Promise.all([signUp(t, "M1"), signUp(t, "M2"), signUp(t, "M3")]);
      for (const u of [carol, ...extra]) await addMember(t, org, u, "viewer");
      const add = await call(alice, "PUT", `${url}/${carol.id}`, { role: "member" });
      assert.equal(add.statusCode, 201, add.body);
      assert.deepEqual(
        { ...(add.json() as object), added_at: undefined },
        { user_id: carol.id, name: "Carol", email: carol.email, role: "member", added_at: undefined },
      );
      let [ev] = await events(org);
      assert.deepEqual(
        [ev.action, ev.targetType, ev.targetId, ev.diff],
        ["team.member_added", "team", team.id, { user_id: [null, carol.id], role: [null, "member"] }],
      );
      const promote = await call(alice, "PUT", `${url}/${carol.id}`, { role: "maintainer" });
      assert.equal(promote.statusCode, 200, promote.body);
      assert.equal(promote.json().role, "maintainer");
      assert.equal(promote.json().added_at, add.json().added_at);
      [ev] = await events(org);
      assert.deepEqual([ev.action, ev.diff], ["team.member_role_changed", { user_id: [carol.id, carol.id], role: ["member", "maintainer"] }]);
      const count = (await events(org)).length;
      assert.equal((await call(alice, "PUT", `${url}/${carol.id}`, { role: "maintainer" })).statusCode, 200);
      assert.equal((await events(org)).length, count, "the same role again records nothing");
      for (const u of extra) assert.equal((await call(alice, "PUT", `${url}/${u.id}`, { role: "member" })).statusCode, 201);
      const everyone = [alice, carol, ...extra].map((u) => u.id).sort();
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const res = await call(alice, "GET", `${url}?limit=2${cursor ? `&cursor=${cursor}` : ""}`);
        assert.equal(res.statusCode, 200, res.body);
        seen.push(...res.json().items.map((m: { user_id: string }) => m.user_id));
        cursor = res.json().next_cursor;
      } while (cursor);
      assert.deepEqual(seen, everyone);
      assert.equal((await get(org, team.id)).member_count, 5);
      const del = await call(alice, "DELETE", `${url}/${carol.id}`);
      assert.equal(del.statusCode, 204, del.body);
      [ev] = await events(org);
      assert.deepEqual([ev.action, ev.diff], ["team.member_removed", { user_id: [carol.id, null], role: ["maintainer", null] }]);
      assertProblem(await call(alice, "DELETE", `${url}/${carol.id}`), 404, "TEAM_MEMBER_NOT_FOUND", "userId");
      assert.equal((await get(org, team.id)).member_count, 4);
    });

    it("only members of the org can join a team: anyone else is 404 USER_NOT_ORG_MEMBER naming userId", async () => {
      const org = await newOrg();
      const team = await create(org, { name: "Closed" });
      const before = await snapshot(org);
      for (const user of [bob.id, newId("user")]) {
        assertProblem(await call(alice, "PUT", `${teamsUrl(org)}/${team.id}/members/${user}`, { role: "member" }), 404, "USER_NOT_ORG_MEMBER", "userId");
      }
      assert.deepEqual(await snapshot(org), before);
    });

    const badMember: [string, string, string, unknown, string][] = [
      ["PUT", "a bad role", "USER", { role: "owner" }, "role"],
      ["PUT", "a missing role", "USER", {}, "role"],
      ["PUT", "an unknown field", "USER", { role: "member", since: "now" }, "since"],
      ["PUT", "a malformed user id", "usr_1", { role: "member" }, "userId"],
      ["PUT", "a team id as user id", "TEAM", { role: "member" }, "userId"],
      ["DELETE", "a malformed user id", "bob", undefined, "userId"],
      ["GET", "limit=0", "", undefined, "limit"],
      ["GET", "a foreign cursor", "", undefined, "cursor"],
    ];
    for (const [method, label, who, body, field] of badMember) {
      it(`${method} members refuses ${label} with 400 naming ${field}, changing nothing`, async () => {
        const org = await newOrg();
        const team = await create(org, { name: "Guarded" });
        await addMember(t, org, carol, "viewer");
        const before = await snapshot(org);
        const user = who === "USER" ? carol.id : who === "TEAM" ? team.id : who;
        const url =
          method === "GET"
            ? `${teamsUrl(org)}/${team.id}/members?${field === "limit" ? "limit=0" : `cursor=${Buffer.from(team.id).toString("base64url")}`}`
            : `${teamsUrl(org)}/${team.id}/members/${user}`;
        assertFieldError(await call(alice, method, url, body), field);
        assert.deepEqual(await snapshot(org), before);
      });
    }

    it("another org's team ids answer 404 TEAM_NOT_FOUND on every team route, and that team is untouched", async () => {
      const org = await newOrg();
      await addMember(t, org, carol, "viewer");
      const mine = await create(org, { name: "Mine" });
      const before = await snapshot(otherOrg);
      const base = `${teamsUrl(org)}/${otherTeam.id}`;
      const tries: [string, string, unknown?][] = [
        ["GET", base],
        ["PATCH", base, { name: "Hijacked" }],
        ["POST", `${base}/move`, { parent_id: mine.id }],
        ["POST", `${base}/move`, { parent_id: null }],
        ["DELETE", base],
        ["DELETE", `${base}?cascade=true`],
        ["GET", `${base}/members`],
        ["PUT", `${base}/members/${carol.id}`, { role: "maintainer" }],
        ["DELETE", `${base}/members/${bob.id}`],
      ];
      for (const [method, url, body] of tries) assertProblem(await call(alice, method, url, body), 404, "TEAM_NOT_FOUND", "teamId");
      // and through the org path: Bob's team by its own org id is not Alice's to reach
      assertProblem(await call(alice, "GET", `${teamsUrl(otherOrg)}/${otherTeam.id}`), 404, "NOT_FOUND");
      // moving my team under theirs: a bad parent, not a way in
      assertProblem(await call(alice, "POST", `${teamsUrl(org)}/${mine.id}/move`, { parent_id: otherTeam.id }), 400, "TEAM_PARENT_NOT_FOUND", "parent_id");
      assert.deepEqual(await snapshot(otherOrg), before);
    });

    it("concurrent changes stay consistent: crossed moves make no cycle, one name wins, one add wins", async () => {
      const org = await newOrg();
      const [a, b] = [await create(org, { name: "Cross A" }), await create(org, { name: "Cross B" })];
      const moves = await Promise.all([
        call(alice, "POST", `${teamsUrl(org)}/${a.id}/move`, { parent_id: b.id }),
        call(alice, "POST", `${teamsUrl(org)}/${b.id}/move`, { parent_id: a.id }),
      ]);
      assert.deepEqual(moves.map((r) => r.statusCode).sort(), [200, 409], moves.map((r) => r.body).join("\n"));
      const rows = (await teamRows(org)) as Team[];
      assert.equal(rows.filter((r) => r.parent_id === null).length, 1, "one of them is still at the top");
      const names = await Promise.all([1, 2, 3].map(() => call(alice, "POST", teamsUrl(org), { name: "Race" })));
      assert.deepEqual(names.map((r) => r.statusCode).sort(), [201, 409, 409]);
      await addMember(t, org, carol, "viewer");
      const adds = await Promise.all([1, 2].map(() => call(alice, "PUT", `${teamsUrl(org)}/${a.id}/members/${carol.id}`, { role: "member" })));
      assert.deepEqual(adds.map((r) => r.statusCode).sort(), [200, 201]);
      assert.equal((await events(org)).filter((e) => e.action === "team.member_added").length, 1);
    });

    it("the bodies and queries of every route are bounded: a 1,000-deep body or a NUL in a name is refused", async () => {
      const org = await newOrg();
      const before = await snapshot(org);
      const nul = await call(alice, "POST", teamsUrl(org), { name: "bad\u0000name" });
      assert.equal(nul.statusCode, 400, nul.body);
      const wrongType = await t.call("POST", teamsUrl(org), "name=x", alice.access_token, { "content-type": "text/plain" });
      assert.equal(wrongType.statusCode, 415, wrongType.body);
      assert.deepEqual(await snapshot(org), before);
    });
  });
}
