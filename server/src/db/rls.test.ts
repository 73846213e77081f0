import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { sql } from "drizzle-orm";
import { BACKENDS, createTestApp, signUp, type TestApp } from "../../test/harness.ts";

type Rows<T> = { rows: T[] };

for (const backend of BACKENDS) {
  describe(`row-level security (${backend})`, () => {
    let t: TestApp;
    let orgA: string;
    let userA: string;
    let userB: string;
    before(async () => {
      t = await createTestApp({ backend, worker: false });
      const a = await signUp(t, "Alice");
      const b = await signUp(t, "Bob");
      userA = a.id;
      userB = b.id;
      orgA = (await t.call("GET", "/v1/orgs", undefined, a.access_token)).json().items[0].id;
    });
    after(() => t.close());

    it("requests run as plinth_app, which owns no table and cannot bypass RLS", async () => {
      const r = (await t.db.tx({}, (tx) =>
        tx.execute(sql`select current_user as who, r.rolbypassrls as bypass, r.rolsuper as super,
          (select count(*)::int from pg_tables where schemaname = 'public' and tableowner = current_user) as owned
          from pg_roles r where r.rolname = current_user`),
      )) as unknown as Rows<{ who: string; bypass: boolean; super: boolean; owned: number }>;
      assert.deepEqual(r.rows[0], { who: "plinth_app", bypass: false, super: false, owned: 0 });
    });

    it("a query without the tenant set sees no tenant rows", async () => {
      const r = (await t.db.tx({}, (tx) =>
        tx.execute(sql`select (select count(*)::int from orgs) as orgs, (select count(*)::int from memberships) as members,
          (select count(*)::int from audit_events) as audit,
          (select count(*)::int from audit_heads) as heads`),
      )) as unknown as Rows<{ orgs: number; members: number; audit: number; heads: number }>;
      assert.deepEqual(r.rows[0], { orgs: 0, members: 0, audit: 0, heads: 0 });
      // sign-up wrote org.created events for both personal orgs: they exist, the tenant-less query just cannot see them
      const owner = (await t.db.owner.execute(sql`select count(*)::int as n from audit_events`)) as unknown as Rows<{ n: number }>;
      assert.ok(owner.rows[0].n >= 2, `events exist: ${owner.rows[0].n}`);
    });

    it("every table with an org_id column forces row-level security under a restrictive tenant policy", async () => {
      const r = (await t.db.owner.execute(sql`
        select c.relname as table, c.relrowsecurity as enabled, c.relforcerowsecurity as forced,
          exists (select 1 from pg_policy p where p.polrelid = c.oid and not p.polpermissive
                  and pg_get_expr(p.polqual, p.polrelid) like '%app.org_id%'
                  and pg_get_expr(p.polwithcheck, p.polrelid) like '%app.org_id%') as restrictive
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'public' and c.relkind = 'r'
          and exists (select 1 from pg_attribute a where a.attrelid = c.oid and a.attname = 'org_id' and not a.attisdropped)
          and c.relname not in ('sessions', 'credential_index', 'impersonations')
        order by 1`)) as unknown as Rows<{ table: string; enabled: boolean; forced: boolean; restrictive: boolean }>;
      assert.ok(r.rows.length >= 8, `tenant tables found: ${r.rows.map((x) => x.table).join(", ")}`);
      for (const row of r.rows) assert.deepEqual(row, { table: row.table, enabled: true, forced: true, restrictive: true });
    });

    it("a tenant sees its own rows only", async () => {
      const r = (await t.db.tx({ orgId: orgA }, (tx) =>
        tx.execute(sql`select (select count(*)::int from orgs) as orgs, (select array_agg(user_id) from memberships) as members`),
      )) as unknown as Rows<{ orgs: number; members: string[] }>;
      assert.equal(r.rows[0].orgs, 1);
      assert.deepEqual(r.rows[0].members, [userA]);
    });

    it("a user sees only their own memberships without a tenant", async () => {
      const r = (await t.db.tx({ userId: userB }, (tx) => tx.execute(sql`select array_agg(org_id) as orgs from memberships`))) as unknown as Rows<{
        orgs: string[];
      }>;
      assert.equal(r.rows[0].orgs.length, 1);
      assert.notEqual(r.rows[0].orgs[0], orgA);
    });

    it("writes into another tenant are refused by WITH CHECK, and nothing is written", async () => {
      await assert.rejects(
        t.db.tx({ userId: userB }, (tx) => tx.execute(sql`insert into memberships (org_id, user_id, role) values (${orgA}, ${userB}, 'owner')`)),
      );
      const r = (await t.db.tx({ orgId: orgA }, (tx) =>
        tx.execute(sql`select count(*)::int as n from memberships where user_id = ${userB}`),
      )) as unknown as Rows<{ n: number }>;
      assert.equal(r.rows[0].n, 0);
      await assert.rejects(t.db.tx({ orgId: orgA }, (tx) => tx.execute(sql`update orgs set id = 'org_x' where id = ${orgA}`)));
    });
  });
}
