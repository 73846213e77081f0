import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { sql } from "drizzle-orm";
import { createKms } from "../../kms/kms.ts";
import { systemClock } from "../../lib/clock.ts";
import { createLogger } from "../../logger.ts";
import { BACKENDS, assertProblem, createTestApp, makeOrg, signUp, uniqueSlug, type TestApp, type TestUser } from "../../../test/harness.ts";

async function rows<T>(t: TestApp, query: ReturnType<typeof sql>): Promise<T[]> {
  return ((await t.db.owner.execute(query)) as unknown as { rows: T[] }).rows;
}

/** The private 'd' of every published token-signing key, decrypted through the KMS's platform tier. */
async function signingKeyDs(t: TestApp): Promise<string[]> {
  const kms = createKms({ masterKey: t.deps.config.masterKey!, clock: systemClock });
  const keys = await rows<{ id: string; ciphertext: string; nonce: string; wrapped_key: string; kek_version: number }>(
    t,
    sql`select id, ciphertext, nonce, wrapped_key, kek_version from signing_keys where retired_at is null`,
  );
  const ds: string[] = [];
  for (const k of keys) {
    const env = { ciphertext: k.ciphertext, nonce: k.nonce, wrappedKey: k.wrapped_key, kekVersion: k.kek_version };
    const jwk = await t.db.tx({}, (tx) => kms.decryptPlatform(tx, env, `signing_key:${k.id}`));
    ds.push((JSON.parse(jwk.toString("utf8")) as { d: string }).d);
  }
  return ds;
}

for (const backend of BACKENDS) {
  describe(`secrets at rest (${backend})`, () => {
    let t: TestApp;
    let owner: TestUser;
    let orgId: string;
    const logs: string[] = [];
    before(async () => {
      const sink = new Writable({
        write(chunk, _enc, done) {
          logs.push(String(chunk));
          done();
        },
      });
      t = await createTestApp({ backend, worker: false, log: createLogger("trace", sink) });
      owner = await signUp(t, "Olivia Owner");
      orgId = await makeOrg(t, owner, "At Rest Inc", uniqueSlug("rest"));
    });
    after(() => t.close());

    const base = (path = "") => `/v1/orgs/${orgId}/secrets${path}`;

    it("never stores or logs a value: every table of the database and the logs hold none of them", async () => {
      const values = Array.from({ length: 4 }, (_, i) => `plaintext-canary-${i}-${randomBytes(12).toString("hex")}`);
      const created = await t.call("POST", base(), { name: "CANARY", value: values[0], description: "no value here" }, owner.access_token);
      assert.equal(created.statusCode, 201, created.body);
      const id = created.json().id as string;
      assert.equal((await t.call("PATCH", base(`/${id}`), { value: values[1] }, owner.access_token)).statusCode, 200);
      assert.equal((await t.call("POST", base(`/${id}/$rollback`), { version: 1 }, owner.access_token)).statusCode, 200);
      const team = await t.call("POST", `/v1/orgs/${orgId}/teams`, { name: "Canaries" }, owner.access_token);
      assert.equal((await t.call("POST", base(), { name: "CANARY", value: values[2], team_id: team.json().id }, owner.access_token)).statusCode, 201);
      assert.equal((await t.call("POST", base(), { name: "CANARY", value: values[3], user_id: owner.id }, owner.access_token)).statusCode, 201);
      for (const v of [1, 2, 3]) assert.equal((await t.call("POST", base(`/${id}/versions/${v}/reveal`), undefined, owner.access_token)).statusCode, 200);
      // a bad request carrying a value is refused without echoing it
      const bad = await t.call("POST", base(), { name: "bad name", value: values[0] }, owner.access_token);
      assert.equal(bad.statusCode, 400);
      assert.ok(!bad.body.includes(values[0]));

      // the token-signing keys' private halves are at rest under the same KMS layer: the scan looks for them too
      const ds = await signingKeyDs(t);
      assert.ok(ds.length > 0 && ds.every((d) => typeof d === "string" && d.length > 20));
      values.push(...ds);
      const tables = await rows<{ schemaname: string; tablename: string }>(
        t,
        sql`select schemaname, tablename from pg_tables where schemaname not in ('pg_catalog', 'information_schema') order by 1, 2`,
      );
      assert.ok(tables.some((x) => x.tablename === "vault_secret_versions"));
      let dumped = 0;
      for (const { schemaname, tablename } of tables) {
        const dump = await rows<{ row: string }>(t, sql`select t::text as row from ${sql.identifier(schemaname)}.${sql.identifier(tablename)} t`);
        const text = dump.map((r) => r.row).join("\n");
        dumped += dump.length;
        for (const v of values) {
          assert.ok(!text.includes(v), `${schemaname}.${tablename} holds a plaintext value`);
          assert.ok(
            !text.includes(Buffer.from(v).toString("base64")) && !text.includes(Buffer.from(v).toString("base64url")),
            `${schemaname}.${tablename} holds a value in base64`,
          );
          assert.ok(!text.includes(Buffer.from(v).toString("hex")), `${schemaname}.${tablename} holds a value in hex`);
        }
      }
      assert.ok(dumped > 20, `only ${dumped} rows dumped`);
      const versions = await rows<{ n: number }>(t, sql`select count(*)::int as n from vault_secret_versions where org_id = ${orgId}`);
      assert.equal(versions[0].n, 5);
      assert.ok(logs.length > 10, "the logs were captured");
      const logged = logs.join("");
      for (const v of values) assert.ok(!logged.includes(v), "a value reached the logs");
    });

    it("a ciphertext copied onto another secret's row does not decrypt: a clear 500, the value never served", async () => {
      const a = (await t.call("POST", base(), { name: "MOVED_FROM", value: "from-value" }, owner.access_token)).json().id as string;
      const b = (await t.call("POST", base(), { name: "MOVED_TO", value: "to-value" }, owner.access_token)).json().id as string;
      await t.db.owner.execute(sql`
        update vault_secret_versions d set ciphertext = s.ciphertext, nonce = s.nonce, wrapped_key = s.wrapped_key
          from vault_secret_versions s where s.secret_id = ${a} and s.version = 1 and d.secret_id = ${b} and d.version = 1`);
      const res = await t.call("POST", base(`/${b}/reveal`), undefined, owner.access_token);
      const p = assertProblem(res, 500, "KMS_DECRYPT_FAILED");
      assert.match(p.detail, /altered or moved to another record/);
      assert.ok(!res.body.includes("from-value"));
      assert.equal((await t.call("POST", base(`/${a}/reveal`), undefined, owner.access_token)).json().value, "from-value");
      // altered bits in the stored ciphertext are refused the same way
      await t.db.owner.execute(
        sql`update vault_secret_versions set ciphertext = (case when substr(ciphertext, 1, 1) = 'A' then 'B' else 'A' end) || substr(ciphertext, 2) where secret_id = ${a} and version = 1`,
      );
      assertProblem(await t.call("POST", base(`/${a}/reveal`), undefined, owner.access_token), 500, "KMS_DECRYPT_FAILED");
    });
  });
}
