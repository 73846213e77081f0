/**
 * `plinth zk …` end to end against a real server listening on a port (PGlite): every command runs the client library
 * in this process and talks to the server over HTTP only, as the CLI does for a person.
 */
import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { sql } from "drizzle-orm";
import { split } from "shamir-secret-sharing";
import { addMember, createTestApp, makeOrg, signUp, uniqueSlug, type TestApp, type TestUser } from "../../test/harness.ts";
import { aad, fromB64, newHardwareKey, newRecoveryPhrase, recoverWithPhrase, sealTo, toB64 } from "../zk/index.ts";
import type { CliIo } from "./api-client.ts";
import { zkCommand } from "./zk.ts";

describe("plinth zk over HTTP", () => {
  let t: TestApp;
  let url: string;
  let owner: TestUser;
  let orgId: string;
  const holders: TestUser[] = [];
  const holderPass = (i: number) => `holder ${i} passphrase`;
  const passphrases = ["first owner passphrase"];
  let phrase = "";
  let hardwareKey = "";
  /** Every phrase and hardware key shown, for the dump test. */
  const shown: string[] = [];
  let vaultId = "";
  const values = { OPENAI_API_KEY: "sk-live-0123456789abcdef", DB_PASSWORD: "p@ss w0rd ünïcode" };

  before(async () => {
    t = await createTestApp({ backend: "pglite", worker: false });
    await t.app.listen({ port: 0, host: "127.0.0.1" });
    url = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
    owner = await signUp(t, "Zoe Owner");
    orgId = await makeOrg(t, owner, "ZK CLI Inc", uniqueSlug("zkcli"));
    for (let i = 0; i < 5; i++) {
      const h = await signUp(t, `Holder ${i}`);
      await addMember(t, orgId, h, "developer");
      holders.push(h);
    }
  });
  after(() => t.close());

  async function zk(user: TestUser, args: string[], pass?: string, stdin?: string) {
    let stdout = "";
    let stderr = "";
    const io: CliIo = {
      env: { PLINTH_URL: url, PLINTH_TOKEN: user.access_token, PLINTH_ORG: orgId, PLINTH_ZK_PASSPHRASE: pass },
      stdout: { write: (s: string) => (stdout += s) },
      stderr: { write: (s: string) => (stderr += s) },
      stdin: Readable.from(stdin === undefined ? [] : [stdin]),
    };
    const code = await zkCommand(args, io);
    return { code, stdout, stderr };
  }
  async function ok(user: TestUser, args: string[], pass?: string, stdin?: string) {
    const r = await zk(user, args, pass, stdin);
    assert.equal(r.code, 0, `zk ${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
  }
  async function fails(user: TestUser, args: string[], pass: string | undefined, message: RegExp) {
    const r = await zk(user, args, pass);
    assert.equal(r.code, 1, `zk ${args.join(" ")} should fail: ${r.stdout}`);
    assert.match(r.stderr, message);
  }
  const current = () => passphrases[passphrases.length - 1];
  async function assertValues(pass = current()) {
    for (const [name, value] of Object.entries(values)) assert.equal(await ok(owner, ["get", name], pass), value);
  }
  /** Opens a recovery request under a new passphrase; its id. */
  async function openRequest(pass: string): Promise<string> {
    const outText = await ok(owner, ["recover", "--shares"], pass);
    const id = /opened recovery request (zkr_[0-9a-z]{26})/.exec(outText)?.[1];
    assert.ok(id, outText);
    assert.match(outText, /plinth zk release/);
    return id;
  }
  const releasesOf = async (requestId: string) =>
    (
      (await t.db.owner.execute(
        sql`select share_index, sealed_share from zk_share_releases where request_id = ${requestId} order by share_index`,
      )) as unknown as {
        rows: { share_index: number; sealed_share: string }[];
      }
    ).rows;

  it("creates key pairs and a vault; init prints the 12-word phrase and the 32-character hardware key once", async () => {
    for (const [i, h] of holders.entries()) assert.match(await ok(h, ["init"], holderPass(i)), /created vault zkv_/);
    const outText = await ok(owner, ["init", "--shares", holders.map((h) => h.id).join(",")], current());
    vaultId = /created vault (zkv_[0-9a-z]{26})/.exec(outText)?.[1] ?? "";
    phrase = /Recovery phrase[^\n]*\n {2}([a-z ]+)\n/.exec(outText)?.[1] ?? "";
    hardwareKey = /Hardware backup key[^\n]*\n {2}([A-Z2-7]+)\n/.exec(outText)?.[1] ?? "";
    assert.ok(vaultId && phrase && hardwareKey, outText);
    shown.push(phrase, hardwareKey);
    assert.equal(phrase.split(" ").length, 12);
    assert.equal(hardwareKey.length, 32);
    assert.match(outText, /any 3 of 5 shares/);
    // a holder without a key cannot be named; neither can a non-member
    const lonely = await signUp(t, "No Key");
    await addMember(t, orgId, lonely, "developer");
    await fails(owner, ["init", "--shares", [lonely.id, ...holders.slice(1).map((h) => h.id)].join(",")], current(), /has no zero-knowledge key yet/);
    const usage = await zk(owner, ["init", "--shares", "not-a-user"], current());
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /not a usr_/);
    // neither left a vault behind
    const vaults = (await t.call("GET", `/v1/orgs/${orgId}/zk-vaults`, undefined, owner.access_token)).json().items;
    assert.deepEqual(
      vaults.map((v: { id: string }) => v.id),
      [vaultId],
    );
  });

  it("sets, gets and lists entries; a wrong passphrase fails clearly", async () => {
    assert.match(
      await ok(owner, ["set", `OPENAI_API_KEY=${values.OPENAI_API_KEY}`, "DB_PASSWORD=-"], current(), `${values.DB_PASSWORD}\n`),
      /created OPENAI_API_KEY/,
    );
    await assertValues();
    assert.match(await ok(owner, ["set", "OPENAI_API_KEY=sk-changed"], current()), /updated OPENAI_API_KEY \(version 2\)/);
    assert.equal(await ok(owner, ["get", "OPENAI_API_KEY"], current()), "sk-changed");
    await ok(owner, ["set", `OPENAI_API_KEY=${values.OPENAI_API_KEY}`], current());
    const list = await ok(owner, ["list"]);
    assert.match(list, /^DB_PASSWORD\tversion 1/m);
    assert.match(list, /^OPENAI_API_KEY\tversion 3/m);
    await fails(owner, ["get", "OPENAI_API_KEY"], "not the passphrase", /Wrong passphrase for this vault/);
    await fails(owner, ["get", "NO_SUCH"], current(), /No entry NO_SUCH/);
    await fails(owner, ["get", "OPENAI_API_KEY"], undefined, /PLINTH_ZK_PASSPHRASE/);
  });

  it("recovers with the recovery phrase and sets a new passphrase; a wrong phrase fails clearly", async () => {
    await fails(owner, ["recover", "--phrase", newRecoveryPhrase()], "next passphrase", /valid but not this vault's/);
    const words = phrase.split(" ");
    const swapped = [...words.slice(0, 10), words[11], words[10]].join(" ");
    if (swapped !== phrase) {
      const r = await zk(owner, ["recover", "--phrase", swapped], "next passphrase");
      assert.equal(r.code, 1);
      assert.match(r.stderr, /checksum|not this vault's/);
    }
    await fails(owner, ["recover", "--phrase", [...words.slice(0, 11), "zzzz"].join(" ")], "next passphrase", /word 12 .* is not a BIP39 English word/);
    await fails(owner, ["recover", "--phrase", words.slice(0, 11).join(" ")], "next passphrase", /11 words/);
    passphrases.push("passphrase after the phrase");
    assert.match(await ok(owner, ["recover", "--phrase", phrase.toUpperCase()], current()), /recovered vault/);
    await assertValues();
    await fails(owner, ["get", "OPENAI_API_KEY"], passphrases[0], /Wrong passphrase/);
  });

  it("recovers with the hardware backup key; another or a malformed key fails clearly", async () => {
    await fails(owner, ["recover", "--hardware-key", newHardwareKey()], "next passphrase", /not this vault's backup key/);
    await fails(owner, ["recover", "--hardware-key", hardwareKey.slice(2)], "next passphrase", /32 Base32 characters/);
    passphrases.push("passphrase after the hardware key");
    const grouped = hardwareKey.toLowerCase().replace(/(.{4})(?!$)/g, "$1-");
    assert.match(await ok(owner, ["recover", "--hardware-key", grouped], current()), /recovered vault/);
    await assertValues();
  });

  it("recovers from 3 of 5 shares released by 3 holders", async () => {
    const pass = "passphrase after the shares";
    const request = await openRequest(pass);
    for (const i of [0, 2, 4]) assert.match(await ok(holders[i], ["release", "--request", request], holderPass(i)), /released share/);
    // released once: a second run finds nothing left to release
    await fails(holders[0], ["release", "--request", request], holderPass(0), /no unreleased share/);
    await fails(holders[1], ["release", "--request", request], "wrong holder passphrase", /Wrong passphrase for your zero-knowledge key/);
    assert.match(await ok(owner, ["shares"]), /you hold no shares/);
    assert.match(await ok(holders[1], ["shares"]), new RegExp(`share \\d of vault ${vaultId}.*${request}`));
    passphrases.push(pass);
    assert.match(await ok(owner, ["recover", "--shares", "--request", request], pass), /recovered vault/);
    await assertValues();
    // the request is completed: no more releases
    await fails(holders[1], ["release", "--request", request], holderPass(1), /no unreleased share for an open request/);
  });

  it("two shares are too few, and nothing changes", async () => {
    const request = await openRequest("passphrase of two shares");
    for (const i of [1, 3]) await ok(holders[i], ["release", "--request", request], holderPass(i));
    await fails(owner, ["recover", "--shares", "--request", request], "passphrase of two shares", /needs 3 shares; 2 usable/);
    await assertValues();
  });

  it("a corrupted share fails clearly, and nothing changes", async () => {
    const pass = "passphrase of a corrupted share";
    const request = await openRequest(pass);
    for (const i of [0, 1, 2]) await ok(holders[i], ["release", "--request", request], holderPass(i));
    const [first] = await releasesOf(request);
    const bytes = fromB64(first.sealed_share, "share").slice();
    bytes[70] ^= 0x10;
    await t.db.owner.execute(
      sql`update zk_share_releases set sealed_share = ${toB64(bytes)} where request_id = ${request} and share_index = ${first.share_index}`,
    );
    await fails(owner, ["recover", "--shares", "--request", request], pass, new RegExp(`Share\\(s\\) ${first.share_index} did not open`));
    await assertValues();
  });

  it("a substituted share (a well-sealed share of another key) fails the key check, never gives a wrong key", async () => {
    const pass = "passphrase of a substituted share";
    const request = await openRequest(pass);
    for (const i of [2, 3, 4]) await ok(holders[i], ["release", "--request", request], holderPass(i));
    const got = (await t.call("GET", `/v1/orgs/${orgId}/zk-vaults/${vaultId}/recovery-requests/${request}`, undefined, owner.access_token)).json();
    const victim = got.releases[0];
    // what a dishonest holder (or a server that learnt the request's public key) could relay: a valid-looking share
    const other = await split(new Uint8Array(32).fill(9), 5, 3);
    const forged = sealTo(fromB64(got.public_key, "pk"), other[victim.index - 1], aad("share-release", vaultId, 1, victim.index, request));
    await t.db.owner.execute(sql`update zk_share_releases set sealed_share = ${toB64(forged)} where request_id = ${request} and share_index = ${victim.index}`);
    await fails(owner, ["recover", "--shares", "--request", request], pass, /do not rebuild this vault's key/);
    await assertValues();
  });

  it("shares the vault with a member, who reads and writes it; unsharing rotates the key and prints new recovery material", async () => {
    const alice = holders[0];
    await fails(alice, ["share", "--with", holders[1].id, "--vault", vaultId], holderPass(0), /No vault/);
    assert.match(await ok(owner, ["share", "--with", alice.id], current()), /shared vault zkv_.* with usr_/);
    await fails(alice, ["share", "--with", holders[1].id, "--vault", vaultId], holderPass(0), /only the vault's owner/);
    assert.equal(await ok(alice, ["get", "OPENAI_API_KEY", "--vault", vaultId], holderPass(0)), values.OPENAI_API_KEY);
    assert.match(await ok(alice, ["set", "FROM_ALICE=shared value", "--vault", vaultId], holderPass(0)), /created FROM_ALICE/);
    Object.assign(values, { FROM_ALICE: "shared value" });
    await assertValues();
    await fails(alice, ["get", "OPENAI_API_KEY", "--vault", vaultId], "not alice's passphrase", /Wrong passphrase for your zero-knowledge key/);

    const outText = await ok(owner, ["unshare", alice.id], current());
    assert.match(outText, /removed usr_.* key is now at version 2, 3 entries re-encrypted/);
    assert.match(outText, /new shares for the same 5 holders/);
    const newPhrase = /NEW recovery phrase[^\n]*\n {2}([a-z ]+)\n/.exec(outText)?.[1] ?? "";
    const newHardware = /NEW hardware backup key[^\n]*\n {2}([A-Z2-7]+)\n/.exec(outText)?.[1] ?? "";
    assert.ok(newPhrase && newHardware && newPhrase !== phrase, outText);
    await fails(alice, ["get", "OPENAI_API_KEY", "--vault", vaultId], holderPass(0), /No vault/);
    await assertValues();
    // the old phrase opens only the old key; the new one recovers
    await fails(owner, ["recover", "--phrase", phrase], "yet another passphrase", /not this vault's/);
    phrase = newPhrase;
    hardwareKey = newHardware;
    shown.push(phrase, hardwareKey);
    passphrases.push("passphrase after the rotation");
    assert.match(await ok(owner, ["recover", "--hardware-key", hardwareKey], current()), /recovered vault/);
    await assertValues();
  });

  it("the zk tables hold neither the values, the passphrases, the phrase, the hardware key nor the vault key", async () => {
    const vault = (await t.call("GET", `/v1/orgs/${orgId}/zk-vaults/${vaultId}`, undefined, owner.access_token)).json();
    const vaultKey = recoverWithPhrase(vault, vault.recovery_phrase_wrapped_key, phrase);
    const tables = ["zk_user_keys", "zk_vaults", "zk_vault_entries", "zk_vault_shares", "zk_recovery_requests", "zk_share_releases", "audit_events"];
    let dump = "";
    for (const table of tables) dump += JSON.stringify((await t.db.owner.execute(sql`select * from ${sql.raw(table)}`)) as unknown);
    assert.ok(dump.includes(vaultId) && dump.length > 5000, "the dump has the vault's rows");
    const forbidden = [
      ...Object.values(values),
      ...passphrases,
      ...holders.map((_, i) => holderPass(i)),
      ...shown,
      ...shown.map((x) => x.toLowerCase()),
      toB64(vaultKey),
      Buffer.from(vaultKey).toString("hex"),
      Buffer.from(vaultKey).toString("base64url"),
    ];
    for (const f of forbidden) assert.ok(!dump.includes(f), `the dump contains ${f.slice(0, 6)}…`);
  });
});
