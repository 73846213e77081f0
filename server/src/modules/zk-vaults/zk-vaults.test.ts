import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { sql } from "drizzle-orm";
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
import {
  createUserKey,
  createVaultMaterial,
  decryptEntry,
  encryptEntry,
  type KeyPair,
  newKeyPair,
  openSharedVaultKey,
  prepareRotation,
  recoverFromShares,
  recoverWithPhrase,
  sealVaultKeyTo,
  releaseShare,
  splitToHolders,
  toB64,
  unlockWithPassphrase,
  wrapWithPassphrase,
} from "../../zk/index.ts";

const PASS = "owner passphrase 1";
const b64 = (n: number) => randomBytes(n).toString("base64");

for (const backend of BACKENDS) {
  describe(`zero-knowledge vaults (${backend})`, () => {
    let t: TestApp;
    let owner: TestUser;
    let holders: TestUser[];
    let viewer: TestUser;
    let stranger: TestUser;
    let orgId: string;
    let otherOrgId: string;
    const keys = new Map<string, KeyPair>();
    before(async () => {
      t = await createTestApp({ backend, worker: false });
      owner = await signUp(t, "Olga Owner");
      viewer = await signUp(t, "Vera Viewer");
      stranger = await signUp(t, "Stan Stranger");
      holders = [];
      for (let i = 0; i < 5; i++) holders.push(await signUp(t, `Holder ${i}`));
      orgId = await makeOrg(t, owner, "ZK Inc", uniqueSlug("zk"));
      otherOrgId = await makeOrg(t, stranger, "Other Inc", uniqueSlug("zk"));
      for (const h of holders) await addMember(t, orgId, h, "developer");
      await addMember(t, orgId, viewer, "viewer");
    });
    after(() => t.close());

    const url = (path: string, org = orgId) => `/v1/orgs/${org}${path}`;
    const auditOf = async () => JSON.stringify(await t.deps.audit.list(orgId, {}, 1000));

    async function publishKey(user: TestUser, passphrase = `${user.id} passphrase`) {
      const { record, keys: pair } = await createUserKey(passphrase, { orgId, userId: user.id });
      const res = await t.call("PUT", url("/zk-keys/me"), record, user.access_token);
      assert.equal(res.statusCode, 200, res.body);
      keys.set(user.id, pair);
      return record;
    }

    async function newVault(by = owner) {
      const made = await createVaultMaterial({ passphrase: PASS });
      const res = await t.call("POST", url("/zk-vaults"), { name: "personal", ...made.material }, by.access_token);
      assert.equal(res.statusCode, 201, res.body);
      return { ...made, id: res.json().id as string };
    }

    function vaultBody() {
      return {
        name: "bad input",
        kdf: { algorithm: "argon2id", version: 19, memory_kib: 19456, iterations: 2, parallelism: 1, salt: b64(16) },
        passphrase_wrapped_key: b64(72),
        recovery_phrase_wrapped_key: b64(72),
        hardware_wrapped_key: b64(72),
        key_check: b64(32),
      };
    }

    it("publishes a member's key pair: the owner reads it back sealed, others read only the public key", async () => {
      const none = await t.call("GET", url("/zk-keys/me"), undefined, owner.access_token);
      assert.deepEqual(none.json(), { user_id: owner.id, key: null });
      const record = await publishKey(owner, PASS);
      const mine = (await t.call("GET", url("/zk-keys/me"), undefined, owner.access_token)).json();
      assert.equal(mine.key.encrypted_private_key, record.encrypted_private_key);
      assert.deepEqual(mine.key.kdf, record.kdf);
      const pub = await t.call("GET", url(`/zk-keys/${owner.id}`), undefined, holders[0].access_token);
      assert.equal(pub.statusCode, 200, pub.body);
      assert.deepEqual(Object.keys(pub.json()).sort(), ["public_key", "updated_at", "user_id"]);
      assert.equal(pub.json().public_key, record.public_key);
      // a member without a key, another org's user and a stranger's org: 404 alike
      assertProblem(await t.call("GET", url(`/zk-keys/${viewer.id}`), undefined, owner.access_token), 404, "ZK_KEY_NOT_FOUND", "userId");
      assertProblem(await t.call("GET", url(`/zk-keys/${stranger.id}`), undefined, owner.access_token), 404, "ZK_KEY_NOT_FOUND", "userId");
      assert.equal((await t.call("GET", url("/zk-keys/me", otherOrgId), undefined, owner.access_token)).statusCode, 404);
      const events = await auditOf();
      assert.match(events, /zk\.key\.created/);
      assert.ok(!events.includes(record.encrypted_private_key) && !events.includes(record.public_key));
    });

    it("refuses keys of the wrong size and out-of-bounds KDF parameters, naming the field", async () => {
      const good = { public_key: b64(32), encrypted_private_key: b64(72), kdf: vaultBody().kdf };
      const put = (body: unknown) => t.call("PUT", url("/zk-keys/me"), body, holders[4].access_token);
      assertFieldError(await put({ ...good, public_key: b64(31) }), "public_key");
      assertFieldError(await put({ ...good, encrypted_private_key: b64(40) }), "encrypted_private_key");
      assertFieldError(await put({ ...good, kdf: { ...good.kdf, memory_kib: 1024 } }), "kdf.memory_kib");
      assertFieldError(await put({ ...good, kdf: { ...good.kdf, iterations: 1 } }), "kdf.iterations");
      assertFieldError(await put({ ...good, kdf: { ...good.kdf, salt: b64(8) } }), "kdf.salt");
      assertFieldError(await put({ ...good, kdf: { ...good.kdf, algorithm: "scrypt" } }), "kdf.algorithm");
      assertFieldError(await put({ ...good, private_key: b64(32) }), "private_key");
      assert.deepEqual((await t.call("GET", url("/zk-keys/me"), undefined, holders[4].access_token)).json().key, null);
      // a viewer (no secrets:write) publishes nothing
      assertProblem(await t.call("PUT", url("/zk-keys/me"), good, viewer.access_token), 403, "FORBIDDEN", { permission: "secrets:write" });
    });

    it("creates a vault from client-made material only; its owner unlocks it, nobody else sees it", async () => {
      const v = await newVault();
      assert.match(v.id, /^zkv_/);
      const got = await t.call("GET", url(`/zk-vaults/${v.id}`), undefined, owner.access_token);
      assert.equal(got.statusCode, 200, got.body);
      const vault = got.json();
      assert.equal(vault.owner_id, owner.id);
      assert.equal(vault.share_threshold, null);
      assert.deepEqual(await unlockWithPassphrase(vault, PASS), v.vaultKey);
      const list = (await t.call("GET", url("/zk-vaults"), undefined, owner.access_token)).json();
      assert.ok(list.items.some((x: { id: string }) => x.id === v.id));
      assert.ok(!(await t.call("GET", url("/zk-vaults"), undefined, holders[0].access_token)).body.includes(v.id));
      // another member, another org's owner, an unknown id: the same 404
      for (const [who, org] of [
        [holders[0], orgId],
        [stranger, otherOrgId],
      ] as const) {
        assertProblem(await t.call("GET", url(`/zk-vaults/${v.id}`, org), undefined, who.access_token), 404, "ZK_VAULT_NOT_FOUND", "vaultId");
      }
      assertProblem(await t.call("GET", url("/zk-vaults/zkv_00000000000000000000000000"), undefined, owner.access_token), 404, "ZK_VAULT_NOT_FOUND", "vaultId");
      const events = await auditOf();
      assert.match(events, /zk\.vault\.created/);
      for (const secret of [vault.passphrase_wrapped_key, vault.recovery_phrase_wrapped_key, vault.hardware_wrapped_key, vault.key_check]) {
        assert.ok(!events.includes(secret), "no wrapped key in the audit log");
      }
    });

    it("refuses vault material of the wrong size or shape, naming the field, and stores nothing", async () => {
      const count = async () =>
        Number(
          ((await t.db.owner.execute(sql`select count(*)::int as n from zk_vaults where org_id = ${orgId}`)) as unknown as { rows: { n: number }[] }).rows[0].n,
        );
      const before = await count();
      const post = (body: unknown) => t.call("POST", url("/zk-vaults"), body, owner.access_token);
      assertFieldError(await post({ ...vaultBody(), passphrase_wrapped_key: b64(48) }), "passphrase_wrapped_key");
      assertFieldError(await post({ ...vaultBody(), recovery_phrase_wrapped_key: "not base64!" }), "recovery_phrase_wrapped_key");
      assertFieldError(await post({ ...vaultBody(), hardware_wrapped_key: b64(73) }), "hardware_wrapped_key");
      assertFieldError(await post({ ...vaultBody(), key_check: b64(16) }), "key_check");
      assertFieldError(await post({ ...vaultBody(), kdf: { ...vaultBody().kdf, parallelism: 0 } }), "kdf.parallelism");
      assertFieldError(await post({ ...vaultBody(), vault_key: b64(32) }), "vault_key");
      assertFieldError(await post({ ...vaultBody(), name: "" }), "name");
      assert.equal(await count(), before);
    });

    it("keeps entries as ciphertext bound to the vault, with optimistic concurrency", async () => {
      const v = await newVault();
      const place = { vaultId: v.id, name: "GITHUB_TOKEN", keyVersion: 1 };
      const enc = encryptEntry(v.vaultKey, place, "ghp_first value");
      const created = await t.call("POST", url(`/zk-vaults/${v.id}/entries`), { name: place.name, ...enc, key_version: 1 }, owner.access_token);
      assert.equal(created.statusCode, 201, created.body);
      assert.equal(created.headers.etag, '"1"');
      const got = (await t.call("GET", url(`/zk-vaults/${v.id}/entries/GITHUB_TOKEN`), undefined, owner.access_token)).json();
      assert.equal(decryptEntry(v.vaultKey, place, got), "ghp_first value");
      // the same name again: 409, nothing changes
      assertProblem(
        await t.call("POST", url(`/zk-vaults/${v.id}/entries`), { name: place.name, ...enc, key_version: 1 }, owner.access_token),
        409,
        "ZK_ENTRY_EXISTS",
        "name",
      );

      const next = encryptEntry(v.vaultKey, place, "ghp_second value");
      const put = (body: unknown, headers: Record<string, string> = {}) =>
        t.call("PUT", url(`/zk-vaults/${v.id}/entries/GITHUB_TOKEN`), body, owner.access_token, headers);
      const updated = await put({ ...next, key_version: 1 }, { "if-match": '"1"' });
      assert.equal(updated.statusCode, 200, updated.body);
      assert.equal(updated.json().version, 2);
      // a writer that read version 1 loses no update: 409 naming the current version
      assertProblem(await put({ ...enc, key_version: 1, version: 1 }), 409, "ZK_ENTRY_VERSION_CONFLICT", { field: "version", current_version: 2 });
      assertProblem(await put({ ...enc, key_version: 1 }, { "if-match": "1" }), 409, "ZK_ENTRY_VERSION_CONFLICT");
      assertFieldError(await put({ ...enc, key_version: 1, version: 3 }, { "if-match": "2" }), "version");
      const list = (await t.call("GET", url(`/zk-vaults/${v.id}/entries`), undefined, owner.access_token)).json();
      assert.deepEqual(
        list.items.map((e: { name: string; version: number }) => [e.name, e.version]),
        [["GITHUB_TOKEN", 2]],
      );
      assert.equal(decryptEntry(v.vaultKey, place, list.items[0]), "ghp_second value");

      // bad input names its field and changes nothing
      assertFieldError(await put({ ...next, nonce: b64(12), key_version: 1 }), "nonce");
      assertFieldError(await put({ ...next, ciphertext: b64(8), key_version: 1 }), "ciphertext");
      assertFieldError(await put({ ...next, ciphertext: `${next.ciphertext}A`, key_version: 1 }), "ciphertext");
      assertFieldError(await put({ ...next, key_version: 2 }), "key_version");
      assertFieldError(await t.call("POST", url(`/zk-vaults/${v.id}/entries`), { name: "1BAD", ...enc, key_version: 1 }, owner.access_token), "name");
      assertProblem(
        await t.call("PUT", url(`/zk-vaults/${v.id}/entries/NOPE`), { ...enc, key_version: 1 }, owner.access_token),
        404,
        "ZK_ENTRY_NOT_FOUND",
        "entryName",
      );
      // another member cannot read, write or delete it; another org's owner neither
      for (const [who, org] of [
        [holders[1], orgId],
        [stranger, otherOrgId],
      ] as const) {
        assertProblem(await t.call("GET", url(`/zk-vaults/${v.id}/entries/GITHUB_TOKEN`, org), undefined, who.access_token), 404, "ZK_VAULT_NOT_FOUND");
        assertProblem(
          await t.call("PUT", url(`/zk-vaults/${v.id}/entries/GITHUB_TOKEN`, org), { ...enc, key_version: 1 }, who.access_token),
          404,
          "ZK_VAULT_NOT_FOUND",
        );
        assertProblem(await t.call("DELETE", url(`/zk-vaults/${v.id}/entries/GITHUB_TOKEN`, org), undefined, who.access_token), 404, "ZK_VAULT_NOT_FOUND");
      }
      assert.equal(
        decryptEntry(v.vaultKey, place, (await t.call("GET", url(`/zk-vaults/${v.id}/entries/GITHUB_TOKEN`), undefined, owner.access_token)).json()),
        "ghp_second value",
      );

      assertProblem(
        await t.call("DELETE", url(`/zk-vaults/${v.id}/entries/GITHUB_TOKEN`), undefined, owner.access_token, { "if-match": '"1"' }),
        409,
        "ZK_ENTRY_VERSION_CONFLICT",
      );
      assert.equal(
        (await t.call("DELETE", url(`/zk-vaults/${v.id}/entries/GITHUB_TOKEN`), undefined, owner.access_token, { "if-match": '"2"' })).statusCode,
        204,
      );
      assertProblem(await t.call("GET", url(`/zk-vaults/${v.id}/entries/GITHUB_TOKEN`), undefined, owner.access_token), 404, "ZK_ENTRY_NOT_FOUND");
      const events = await auditOf();
      for (const action of ["zk.entry.created", "zk.entry.updated", "zk.entry.deleted"]) assert.ok(events.includes(action), action);
      for (const e of [enc, next]) assert.ok(!events.includes(e.ciphertext) && !events.includes(e.nonce), "no ciphertext in the audit log");
    });

    it("recovers by 3 of 5 shares released by their holders; the server relays only sealed shares", async () => {
      const v = await newVault();
      for (const h of holders) if (!keys.has(h.id)) await publishKey(h);
      // the owner's client fetches the holders' public keys and seals a share to each
      const pubs = [];
      for (const h of holders)
        pubs.push({ userId: h.id, publicKey: (await t.call("GET", url(`/zk-keys/${h.id}`), undefined, owner.access_token)).json().public_key });
      const shares = await splitToHolders(v.vaultKey, v.id, 1, pubs);
      const body = {
        threshold: 3,
        key_version: 1,
        shares: shares.map((s) => ({ holder_user_id: s.holder_user_id, index: s.index, sealed_share: s.sealed_share })),
      };
      const setShares = (b: unknown, by = owner) => t.call("PUT", url(`/zk-vaults/${v.id}/shares`), b, by.access_token);
      // bad share sets: each names its field
      assertFieldError(await setShares({ ...body, threshold: 6 }), "threshold");
      assertFieldError(
        await setShares({ ...body, shares: body.shares.map((s, i) => (i === 0 ? { ...s, holder_user_id: owner.id } : s)) }),
        "shares.0.holder_user_id",
      );
      assertFieldError(
        await setShares({ ...body, shares: body.shares.map((s, i) => (i === 1 ? { ...s, holder_user_id: stranger.id } : s)) }),
        "shares.1.holder_user_id",
      );
      assertFieldError(await setShares({ ...body, shares: body.shares.map((s, i) => (i === 2 ? { ...s, index: 1 } : s)) }), "shares.2.index");
      assertFieldError(
        await setShares({ ...body, shares: body.shares.map((s, i) => (i === 3 ? { ...s, sealed_share: b64(104) } : s)) }),
        "shares.3.sealed_share",
      );
      assertFieldError(await setShares({ ...body, key_version: 2 }), "key_version");
      assertProblem(await setShares(body, holders[0]), 404, "ZK_VAULT_NOT_FOUND");
      const set = await setShares(body);
      assert.equal(set.statusCode, 200, set.body);
      const shareIds = set.json().shares.map((s: { id: string }) => s.id) as string[];
      assert.equal((await t.call("GET", url(`/zk-vaults/${v.id}`), undefined, owner.access_token)).json().share_threshold, 3);

      // the owner lost the passphrase: a fresh key pair, and a request with its public key
      const fresh = newKeyPair();
      const opened = await t.call("POST", url(`/zk-vaults/${v.id}/recovery-requests`), { public_key: toB64(fresh.publicKey) }, owner.access_token);
      assert.equal(opened.statusCode, 201, opened.body);
      const request = opened.json();
      assert.equal(request.status, "open");
      assertFieldError(await t.call("POST", url(`/zk-vaults/${v.id}/recovery-requests`), { public_key: b64(16) }, owner.access_token), "public_key");

      // each of three holders sees the request beside its share, and releases it re-sealed to the request's key
      for (const i of [0, 2, 4]) {
        const held = (await t.call("GET", url("/zk-shares"), undefined, holders[i].access_token)).json().items;
        const mine = held.find((s: { vault_id: string }) => s.vault_id === v.id);
        assert.equal(mine.owner_id, owner.id);
        assert.deepEqual(
          mine.open_requests.map((r: { id: string; released: boolean }) => [r.id, r.released]),
          [[request.id, false]],
        );
        const sealed = releaseShare(
          keys.get(holders[i].id) as KeyPair,
          { id: v.id, key_version: 1 },
          { ...mine, holder_user_id: holders[i].id },
          mine.open_requests[0],
        );
        const rel = await t.call(
          "POST",
          url(`/zk-vaults/${v.id}/shares/${mine.id}/$release`),
          { request_id: request.id, sealed_share: sealed },
          holders[i].access_token,
        );
        assert.equal(rel.statusCode, 201, rel.body);
        assertProblem(
          await t.call("POST", url(`/zk-vaults/${v.id}/shares/${mine.id}/$release`), { request_id: request.id, sealed_share: sealed }, holders[i].access_token),
          409,
          "ZK_SHARE_ALREADY_RELEASED",
        );
      }
      // only the holder releases a share; a request of another vault is not found
      const release = (shareId: string, by: TestUser, requestId = request.id) =>
        t.call("POST", url(`/zk-vaults/${v.id}/shares/${shareId}/$release`), { request_id: requestId, sealed_share: b64(105) }, by.access_token);
      assertProblem(await release(shareIds[1], owner), 404, "ZK_SHARE_NOT_FOUND", "shareId");
      assertProblem(await release(shareIds[1], holders[0]), 404, "ZK_SHARE_NOT_FOUND", "shareId");
      assertProblem(await release(shareIds[1], holders[1], "zkr_00000000000000000000000000"), 404, "ZK_RECOVERY_REQUEST_NOT_FOUND", "request_id");
      assertFieldError(
        await t.call(
          "POST",
          url(`/zk-vaults/${v.id}/shares/${shareIds[1]}/$release`),
          { request_id: request.id, sealed_share: b64(33) },
          holders[1].access_token,
        ),
        "sealed_share",
      );

      // the owner reads the three releases, rebuilds and checks the key, and sets a new passphrase
      const got = (await t.call("GET", url(`/zk-vaults/${v.id}/recovery-requests/${request.id}`), undefined, owner.access_token)).json();
      assert.equal(got.releases.length, 3);
      assertProblem(
        await t.call("GET", url(`/zk-vaults/${v.id}/recovery-requests/${request.id}`), undefined, holders[0].access_token),
        404,
        "ZK_VAULT_NOT_FOUND",
      );
      const vaultRecord = (await t.call("GET", url(`/zk-vaults/${v.id}`), undefined, owner.access_token)).json();
      const key = await recoverFromShares(vaultRecord, fresh, request.id, got.releases);
      assert.deepEqual(key, v.vaultKey);
      const wrap = await wrapWithPassphrase(key, 1, "a new passphrase 2");
      const done = await t.call("PUT", url(`/zk-vaults/${v.id}/passphrase`), { ...wrap, recovered_with: "shares" }, owner.access_token);
      assert.equal(done.statusCode, 200, done.body);
      assert.deepEqual(
        await unlockWithPassphrase((await t.call("GET", url(`/zk-vaults/${v.id}`), undefined, owner.access_token)).json(), "a new passphrase 2"),
        v.vaultKey,
      );
      // the request is completed: no more releases
      assert.equal((await t.call("GET", url(`/zk-vaults/${v.id}/recovery-requests/${request.id}`), undefined, owner.access_token)).json().status, "completed");
      assertProblem(await release(shareIds[1], holders[1]), 410, "ZK_RECOVERY_REQUEST_CLOSED", "request_id");

      const events = await auditOf();
      for (const action of ["zk.shares.set", "zk.recovery.requested", "zk.share.released", "zk.vault.recovered"]) assert.ok(events.includes(action), action);
      for (const r of got.releases) assert.ok(!events.includes(r.sealed_share), "no share in the audit log");
      for (const s of shares) assert.ok(!events.includes(s.sealed_share), "no share in the audit log");
    });

    it("a vault without shares cannot open a recovery request; deleting a vault takes its entries", async () => {
      const v = await newVault();
      assertProblem(
        await t.call("POST", url(`/zk-vaults/${v.id}/recovery-requests`), { public_key: b64(32) }, owner.access_token),
        409,
        "ZK_VAULT_HAS_NO_SHARES",
      );
      const enc = encryptEntry(v.vaultKey, { vaultId: v.id, name: "X", keyVersion: 1 }, "x");
      assert.equal((await t.call("POST", url(`/zk-vaults/${v.id}/entries`), { name: "X", ...enc, key_version: 1 }, owner.access_token)).statusCode, 201);
      assertProblem(await t.call("DELETE", url(`/zk-vaults/${v.id}`), undefined, holders[0].access_token), 404, "ZK_VAULT_NOT_FOUND");
      assert.equal((await t.call("DELETE", url(`/zk-vaults/${v.id}`), undefined, owner.access_token)).statusCode, 204);
      const left = (await t.db.owner.execute(sql`select count(*)::int as n from zk_vault_entries where vault_id = ${v.id}`)) as unknown as {
        rows: { n: number }[];
      };
      assert.equal(left.rows[0].n, 0);
      assertProblem(await t.call("GET", url(`/zk-vaults/${v.id}`), undefined, owner.access_token), 404, "ZK_VAULT_NOT_FOUND");
    });

    it("shares a vault with members, who read and write entries; removing one rotates the key in one request", async () => {
      const v = await newVault();
      for (const h of holders.slice(0, 2)) if (!keys.has(h.id)) await publishKey(h);
      const [alice, bob] = holders;
      const pub = async (u: TestUser) => ({
        userId: u.id,
        publicKey: (await t.call("GET", url(`/zk-keys/${u.id}`), undefined, owner.access_token)).json().public_key,
      });
      const entry = (name: string, value: string, key = v.vaultKey, version = 1) => ({
        name,
        ...encryptEntry(key, { vaultId: v.id, name, keyVersion: version }, value),
      });
      assert.equal(
        (await t.call("POST", url(`/zk-vaults/${v.id}/entries`), { ...entry("API_KEY", "first"), key_version: 1 }, owner.access_token)).statusCode,
        201,
      );

      const sealedFor = async (u: TestUser) => sealVaultKeyTo(v.vaultKey, v.id, 1, await pub(u));
      const putMember = (u: TestUser | { id: string }, body: unknown, by = owner) =>
        t.call("PUT", url(`/zk-vaults/${v.id}/members/${u.id}`), body, by.access_token);
      assertFieldError(await putMember(owner, { key_version: 1, sealed_key: b64(104) }), "userId");
      assertFieldError(await putMember(stranger, { key_version: 1, sealed_key: b64(104) }), "userId");
      assertFieldError(await putMember(alice, { key_version: 2, sealed_key: b64(104) }), "key_version");
      assertFieldError(await putMember(alice, { key_version: 1, sealed_key: b64(105) }), "sealed_key");
      assertProblem(await putMember(bob, { key_version: 1, sealed_key: b64(104) }, alice), 404, "ZK_VAULT_NOT_FOUND");
      assert.equal((await putMember(alice, { key_version: 1, sealed_key: await sealedFor(alice) })).statusCode, 200);

      // alice sees it as a member: her sealed copy, not the owner's wraps; she reads and writes entries
      const asAlice = (await t.call("GET", url(`/zk-vaults/${v.id}`), undefined, alice.access_token)).json();
      assert.equal(asAlice.role, "member");
      assert.equal(asAlice.passphrase_wrapped_key, null);
      assert.deepEqual(asAlice.members, []);
      const aliceKey = openSharedVaultKey({ userId: alice.id, ...(keys.get(alice.id) as KeyPair) }, asAlice, asAlice.member_sealed_key);
      assert.deepEqual(aliceKey, v.vaultKey);
      const got = (await t.call("GET", url(`/zk-vaults/${v.id}/entries/API_KEY`), undefined, alice.access_token)).json();
      assert.equal(decryptEntry(aliceKey, { vaultId: v.id, name: "API_KEY", keyVersion: 1 }, got), "first");
      assert.equal(
        (await t.call("POST", url(`/zk-vaults/${v.id}/entries`), { ...entry("BY_ALICE", "hers"), key_version: 1 }, alice.access_token)).statusCode,
        201,
      );
      assert.ok(
        (await t.call("GET", url("/zk-vaults"), undefined, alice.access_token))
          .json()
          .items.some((x: { id: string; role: string }) => x.id === v.id && x.role === "member"),
      );
      // but nothing of the owner's: members, shares, passphrase, rotation, deletion
      assertProblem(await t.call("GET", url(`/zk-vaults/${v.id}/members`), undefined, alice.access_token), 404, "ZK_VAULT_NOT_FOUND");
      assertProblem(await putMember(bob, { key_version: 1, sealed_key: b64(104) }, alice), 404, "ZK_VAULT_NOT_FOUND");
      assertProblem(
        await t.call("PUT", url(`/zk-vaults/${v.id}/passphrase`), { kdf: vaultBody().kdf, passphrase_wrapped_key: b64(72) }, alice.access_token),
        404,
        "ZK_VAULT_NOT_FOUND",
      );
      assertProblem(await t.call("DELETE", url(`/zk-vaults/${v.id}`), undefined, alice.access_token), 404, "ZK_VAULT_NOT_FOUND");
      assert.deepEqual(
        (await t.call("GET", url(`/zk-vaults/${v.id}/members`), undefined, owner.access_token)).json().items.map((m: { user_id: string }) => m.user_id),
        [alice.id],
      );

      // remove alice, add bob: the owner's client re-encrypts everything under a new key
      const entries = (await t.call("GET", url(`/zk-vaults/${v.id}/entries`), undefined, owner.access_token)).json().items;
      const vaultNow = (await t.call("GET", url(`/zk-vaults/${v.id}`), undefined, owner.access_token)).json();
      const r = await prepareRotation({ vault: vaultNow, oldKey: v.vaultKey, passphrase: PASS, entries, members: [await pub(bob)] });
      const rotate = (body: unknown, by = owner) => t.call("POST", url(`/zk-vaults/${v.id}/$rotate`), body, by.access_token);
      assertProblem(await rotate(r.body, alice), 404, "ZK_VAULT_NOT_FOUND");
      assertProblem(await rotate({ ...r.body, key_version: 3 }), 409, "ZK_ROTATION_STALE", "key_version");
      assertProblem(await rotate({ ...r.body, entries: r.body.entries.slice(1) }), 409, "ZK_ROTATION_STALE", "entries");
      assertFieldError(await rotate({ ...r.body, members: [{ user_id: owner.id, sealed_key: b64(104) }] }), "members.0.user_id");
      assertFieldError(await rotate({ ...r.body, entries: [{ ...r.body.entries[0], nonce: b64(12) }, ...r.body.entries.slice(1)] }), "entries.0.nonce");
      assert.equal((await t.call("GET", url(`/zk-vaults/${v.id}`), undefined, owner.access_token)).json().key_version, 1, "nothing changed");
      const done = await rotate(r.body);
      assert.equal(done.statusCode, 200, done.body);
      assert.deepEqual(done.json(), { key_version: 2, removed_members: [alice.id] });

      // alice is out; bob opens the new key; the owner's passphrase and the new recovery phrase open it
      assertProblem(await t.call("GET", url(`/zk-vaults/${v.id}/entries/API_KEY`), undefined, alice.access_token), 404, "ZK_VAULT_NOT_FOUND");
      const asBob = (await t.call("GET", url(`/zk-vaults/${v.id}`), undefined, bob.access_token)).json();
      const bobKey = openSharedVaultKey({ userId: bob.id, ...(keys.get(bob.id) as KeyPair) }, asBob, asBob.member_sealed_key);
      assert.deepEqual(bobKey, r.vaultKey);
      for (const e of (await t.call("GET", url(`/zk-vaults/${v.id}/entries`), undefined, bob.access_token)).json().items) {
        assert.equal(e.key_version, 2);
        assert.ok(["first", "hers"].includes(decryptEntry(bobKey, { vaultId: v.id, name: e.name, keyVersion: 2 }, e)));
        assert.throws(() => decryptEntry(v.vaultKey, { vaultId: v.id, name: e.name, keyVersion: 2 }, e));
      }
      const after = (await t.call("GET", url(`/zk-vaults/${v.id}`), undefined, owner.access_token)).json();
      assert.deepEqual(await unlockWithPassphrase(after, PASS), r.vaultKey);
      assert.deepEqual(recoverWithPhrase(after, after.recovery_phrase_wrapped_key, r.recoveryPhrase), r.vaultKey);
      // an entry written at the old key version is refused
      assertFieldError(await t.call("POST", url(`/zk-vaults/${v.id}/entries`), { ...entry("LATE", "x"), key_version: 1 }, bob.access_token), "key_version");
      const events = await auditOf();
      assert.match(events, /zk\.member\.added/);
      assert.match(events, /zk\.vault\.rotated/);
      for (const e of r.body.entries) assert.ok(!events.includes(e.ciphertext));
      for (const m of r.body.members) assert.ok(!events.includes(m.sealed_key));
    });
  });
}
