import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { and, eq, sql } from "drizzle-orm";
import { vaultKeks, vaultSecretVersions } from "../../db/schema/vault.ts";
import { kekStore } from "../../kms/kek-store.ts";
import { createKms } from "../../kms/kms.ts";
import { rotatePlatformRootKey, rotateRootKey } from "../../kms/root-rotation.ts";
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
import { vaultKeysRepo } from "./vault-keys.repo.ts";
import { createVaultKeysService, KEK_PURGE_AFTER_MS } from "./vault-keys.service.ts";

/** Everything a boot could write: the KMS's keys, the signing keys, the jobs, the settings. */
async function bootState(t: TestApp) {
  const state: Record<string, unknown> = {};
  for (const table of ["vault_keks", "vault_settings", "signing_keys", "jobs"]) {
    state[table] = ((await t.db.owner.execute(sql.raw(`select * from ${table} order by 1, 2`))) as unknown as { rows: unknown[] }).rows;
  }
  return state;
}

async function refusesToBoot(t: TestApp, key: Buffer) {
  const before = await bootState(t);
  await assert.rejects(
    () => createTestApp({ backend: t.backend, worker: false, sameDatabaseAs: t, env: { PLINTH_MASTER_KEY: key.toString("base64") } }),
    (e: Error) => {
      assert.match(e.message, /^PLINTH_MASTER_KEY: the vault's keys are wrapped under another root key/);
      assert.match(e.message, /PLINTH_MASTER_KEY_PREVIOUS/);
      return true;
    },
  );
  assert.deepEqual(await bootState(t), before, "the refused boot wrote nothing");
}

for (const backend of BACKENDS) {
  describe(`vault key rotation (${backend})`, () => {
    let t: TestApp;
    let owner: TestUser;
    let admin: TestUser;
    let dev: TestUser;
    let stranger: TestUser;
    let orgId: string;
    /** The service run "later" (the app keeps real time, so its tokens stay valid). */
    let ahead = 0;
    const clock = { now: () => new Date(Date.now() + ahead) };
    before(async () => {
      t = await createTestApp({ backend, worker: false });
      owner = await signUp(t, "Olivia Owner");
      admin = await signUp(t, "Ada Admin");
      dev = await signUp(t, "Dana Dev");
      stranger = await signUp(t, "Sam Stranger");
      orgId = await makeOrg(t, owner, "Keys Inc", uniqueSlug("vkeys"));
      await makeOrg(t, stranger, "Other Inc", uniqueSlug("vkeys"));
      await addMember(t, orgId, admin, "admin");
      await addMember(t, orgId, dev, "developer");
    });
    after(() => t.close());

    const vault = (path = "", org = orgId) => `/v1/orgs/${org}/vault${path}`;
    const secrets = (path = "") => `/v1/orgs/${orgId}/secrets${path}`;
    async function makeSecret(value: string) {
      const res = await t.call("POST", secrets(), { name: `K_${randomBytes(4).toString("hex").toUpperCase()}`, value }, owner.access_token);
      assert.equal(res.statusCode, 201, res.body);
      return res.json().id as string;
    }
    const reveal = async (id: string, version?: number) => {
      const res = await t.call("POST", secrets(`/${id}${version ? `/versions/${version}` : ""}/reveal`), undefined, owner.access_token);
      assert.equal(res.statusCode, 200, res.body);
      return res.json().value as string;
    };
    const keks = () => t.db.tx({ orgId }, (tx) => tx.select().from(vaultKeks).where(eq(vaultKeks.orgId, orgId)));
    const versionsOf = (id: string) => t.db.tx({ orgId }, (tx) => tx.select().from(vaultSecretVersions).where(eq(vaultSecretVersions.secretId, id)));
    /** The same service the job runs, to run it a batch at a time (a crash between batches). */
    const keysService = () =>
      createVaultKeysService({
        db: t.db,
        clock,
        kms: createKms({ masterKey: t.deps.config.masterKey!, clock }),
        keks: kekStore,
        repo: vaultKeysRepo,
        jobs: t.deps.jobs,
        audit: t.deps.audit,
      });

    it("rotates: a new version for new writes, the job re-wraps only the data keys, values still decrypt, the old version retires", async () => {
      const values = [`a-${randomBytes(6).toString("hex")}`, `b-${randomBytes(6).toString("hex")}`];
      const ids = [await makeSecret(values[0]), await makeSecret(values[1])];
      const before = await t.call("GET", vault(), undefined, admin.access_token);
      assert.equal(before.statusCode, 200, before.body);
      assert.deepEqual(before.json(), {
        kek_version: 1,
        rotating: false,
        pending_versions: 0,
        last_rotated_at: null,
        rotation_days: null,
        keep_versions: null,
        keep_days: null,
      });
      const ciphertexts = (await versionsOf(ids[0])).map((v) => [v.ciphertext, v.nonce, v.wrappedKey]);

      const res = await t.call("POST", vault("/$rotate"), undefined, admin.access_token);
      assert.equal(res.statusCode, 202, res.body);
      assert.equal(res.json().kek_version, 2);
      assert.match(res.json().job_id, /^job_/);
      const during = (await t.call("GET", vault(), undefined, owner.access_token)).json();
      assert.equal(during.rotating, true);
      assert.ok(during.pending_versions >= 2);
      assert.ok(during.last_rotated_at);
      // new writes go under v2 at once; old values read under v1 meanwhile
      const fresh = await makeSecret("written-during-rotation");
      assert.equal((await versionsOf(fresh))[0].kekVersion, 2);
      assert.equal(await reveal(ids[0]), values[0]);

      await t.deps.jobs.drain();
      const [v] = await versionsOf(ids[0]);
      assert.equal(v.kekVersion, 2);
      assert.equal(v.ciphertext, ciphertexts[0][0], "the secret's ciphertext is unchanged");
      assert.equal(v.nonce, ciphertexts[0][1]);
      assert.notEqual(v.wrappedKey, ciphertexts[0][2], "only the data key's wrapping changed");
      assert.deepEqual([await reveal(ids[0]), await reveal(ids[1]), await reveal(fresh)], [...values, "written-during-rotation"]);
      const rows = await keks();
      assert.ok(rows.find((k) => k.version === 1)?.retiredAt, "v1 retired: nothing uses it");
      assert.equal(rows.find((k) => k.version === 2)?.retiredAt, null);
      const after = (await t.call("GET", vault(), undefined, owner.access_token)).json();
      assert.deepEqual([after.kek_version, after.rotating, after.pending_versions], [2, false, 0]);
      const events = (await t.deps.audit.list(orgId, {}, 1000)).filter((e) => e.action === "vault.rotated");
      assert.equal(events.length, 1);
      assert.deepEqual((events[0].diff as Record<string, unknown>).kek_version, [1, 2]);

      // the retired version's key material goes after its grace period
      ahead = KEK_PURGE_AFTER_MS + 5000;
      assert.equal((await keysService().rewrap(orgId)).purged, 1);
      ahead = 0;
      assert.equal(
        (await keks()).some((k) => k.version === 1),
        false,
        "v1 deleted",
      );
      assert.equal(await reveal(ids[1]), values[1]);
    });

    it("resumes after a crash mid-job, reads and writes working between batches", async () => {
      const values = await Promise.all([0, 1, 2, 3, 4].map(async () => `r-${randomBytes(6).toString("hex")}`));
      const ids: string[] = [];
      for (const value of values) ids.push(await makeSecret(value));
      const res = await t.call("POST", vault("/$rotate"), undefined, owner.access_token);
      assert.equal(res.statusCode, 202, res.body);
      const target = res.json().kek_version as number;
      const keys = keysService();
      const first = await keys.rewrap(orgId, { batchSize: 2, maxBatches: 1 }); // then the process dies
      assert.equal(first.rewrapped, 2);
      assert.ok(first.remaining >= 3);
      // between batches: reveal and update work
      for (let i = 0; i < ids.length; i++) assert.equal(await reveal(ids[i]), values[i]);
      const upd = await t.call("PATCH", secrets(`/${ids[4]}`), { value: "updated-mid-rotation" }, owner.access_token);
      assert.equal(upd.statusCode, 200, upd.body);
      const second = await keys.rewrap(orgId, { batchSize: 2 });
      assert.equal(second.remaining, 0);
      assert.ok(second.retired.includes(target - 1));
      assert.equal((await keys.rewrap(orgId)).rewrapped, 0, "idempotent: nothing left on an old version");
      for (let i = 0; i < 4; i++) assert.equal(await reveal(ids[i]), values[i]);
      assert.equal(await reveal(ids[4]), "updated-mid-rotation");
      assert.equal(await reveal(ids[4], 1), values[4]);
      for (const id of ids) for (const v of await versionsOf(id)) assert.equal(v.kekVersion, target);
      await t.deps.jobs.drain(); // the job enqueued by the rotation finds nothing left to do
    });

    it("refuses clearly a data key whose KEK row was tampered with", async () => {
      const id = await makeSecret("tamper-target");
      const [v] = await versionsOf(id);
      const [row] = await t.db.tx({ orgId }, (tx) =>
        tx
          .select()
          .from(vaultKeks)
          .where(and(eq(vaultKeks.orgId, orgId), eq(vaultKeks.version, v.kekVersion))),
      );
      const kms = createKms({ masterKey: t.deps.config.masterKey!, clock });
      const b = Buffer.from(row.wrappedKey, "base64url");
      b[20] ^= 1;
      assert.throws(() => kms.checkKek({ ...row, wrappedKey: b.toString("base64url") }), /key-encryption key v\d+ does not authenticate/);
      assert.doesNotThrow(() => kms.checkKek(row));
    });

    it("sets the rotation period (audited) and rotates on schedule once it has passed", async () => {
      const res = await t.call("PATCH", vault(), { rotation_days: 90 }, admin.access_token);
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(res.json().rotation_days, 90);
      const version = res.json().kek_version as number;
      assert.deepEqual(await keysService().rotateDue(), [], "not yet due");
      ahead = 91 * 86_400_000;
      assert.deepEqual(await keysService().rotateDue(), [orgId]);
      const st = (await t.call("GET", vault(), undefined, owner.access_token)).json();
      assert.equal(st.kek_version, version + 1);
      assert.deepEqual(await keysService().rotateDue(), [], "the next one is 90 days after this rotation");
      ahead = 0;
      await t.deps.jobs.drain();
      const off = await t.call("PATCH", vault(), { rotation_days: null }, owner.access_token);
      assert.equal(off.json().rotation_days, null);
      const ev = (await t.deps.audit.list(orgId, {}, 1000)).filter((e) => e.action === "vault.settings_updated");
      assert.deepEqual(
        ev.map((e) => (e.diff as Record<string, unknown>).rotation_days),
        [
          [90, null],
          [null, 90],
        ],
      );
    });

    it("needs vault:manage (a developer gets 403 naming it), rejects bad input naming the field, and hides other orgs", async () => {
      for (const [method, path, body] of [
        ["GET", "", undefined],
        ["PATCH", "", { rotation_days: 30 }],
        ["POST", "/$rotate", undefined],
      ] as const) {
        assertProblem(await t.call(method, vault(path), body, dev.access_token), 403, "FORBIDDEN", { permission: "vault:manage" });
        assert.equal((await t.call(method, vault(path), body, stranger.access_token)).statusCode, 404);
      }
      const before = (await t.call("GET", vault(), undefined, owner.access_token)).json();
      for (const bad of [{ rotation_days: 0 }, { rotation_days: 5000 }, { rotation_days: "x" }, { rotation_days: 1.5 }]) {
        assertFieldError(await t.call("PATCH", vault(), bad, owner.access_token), "rotation_days");
      }
      assert.equal((await t.call("PATCH", vault(), { rotation_days: 30, extra: 1 }, owner.access_token)).statusCode, 400);
      assert.deepEqual((await t.call("GET", vault(), undefined, owner.access_token)).json(), before, "nothing changed");
    });

    it("refuses to boot with a wrong root key, naming the variable, and writes nothing", async () => {
      await refusesToBoot(t, randomBytes(32));
    });

    it("rotates the root key: boots with the new key alone (values decrypt), refuses the old key alone", async () => {
      const r = await createTestApp({ backend, worker: false });
      const oldKey = r.deps.config.masterKey!;
      const newKey = randomBytes(32);
      const o = await signUp(r, "Root Owner");
      const org = await makeOrg(r, o, "Root Inc", uniqueSlug("vroot"));
      const made = await r.call("POST", `/v1/orgs/${org}/secrets`, { name: "ROOT_TEST", value: "survives the root rotation" }, o.access_token);
      assert.equal(made.statusCode, 201, made.body);
      // the servers run with the new key and the old one as PLINTH_MASTER_KEY_PREVIOUS while rotate-root runs
      const both = await createTestApp({
        backend,
        worker: false,
        sameDatabaseAs: r,
        env: { PLINTH_MASTER_KEY: newKey.toString("base64"), PLINTH_MASTER_KEY_PREVIOUS: oldKey.toString("base64") },
      });
      const kms = createKms({ masterKey: newKey, previousMasterKeys: [oldKey], clock });
      const first = await rotateRootKey(r.db, kms);
      assert.deepEqual(first, { orgs: 1, keks: 1 });
      assert.deepEqual(await rotateRootKey(r.db, kms), { orgs: 0, keks: 0 }, "idempotent");
      assert.equal(await rotatePlatformRootKey(r.db, kms), 1, "the token-signing keys' platform KEK");
      const mid = await both.call("POST", `/v1/orgs/${org}/secrets/${made.json().id}/reveal`, undefined, o.access_token);
      assert.equal(mid.json().value, "survives the root rotation");
      await both.close();

      const fresh = await createTestApp({ backend, worker: false, sameDatabaseAs: r, env: { PLINTH_MASTER_KEY: newKey.toString("base64") } });
      const got = await fresh.call("POST", `/v1/orgs/${org}/secrets/${made.json().id}/reveal`, undefined, o.access_token);
      assert.equal(got.statusCode, 200, got.body);
      assert.equal(got.json().value, "survives the root rotation");
      await fresh.close();
      await refusesToBoot(r, oldKey);
      await r.close();
    });
  });
}
