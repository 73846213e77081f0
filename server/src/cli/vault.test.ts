/**
 * `plinth vault rotate-root` on an embedded data dir: the command itself (bin/plinth.mjs) for its output, servers
 * booted in this process before and after it.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, describe, it } from "node:test";
import { loadConfig } from "../config.ts";
import { createDeps, type Deps } from "../deps.ts";
import { rootKeyIdOf } from "../kms/kms.ts";
import { createLogger } from "../logger.ts";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));

describe("plinth vault rotate-root", () => {
  const dir = mkdtempSync(join(tmpdir(), "plinth-rotate-root-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const oldKey = randomBytes(32);
  const newKey = randomBytes(32);
  const env = (key: Buffer) => ({ PLINTH_DATA_DIR: dir, PLINTH_MASTER_KEY: key.toString("base64"), LOG_LEVEL: "silent" });
  const cliEnv = (key: Buffer) => ({ PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/tmp", ...env(key) });

  async function withServer<T>(key: Buffer, fn: (deps: Deps) => Promise<T>): Promise<T> {
    const deps = await createDeps(loadConfig(env(key)), { log: createLogger("silent") });
    try {
      return await fn(deps);
    } finally {
      await deps.close();
    }
  }

  // four boots of an on-disk PGlite (one a child process) take a while on a busy machine
  it("re-wraps the platform KEK (no signing key re-sealed): the new key alone boots, verifies old tokens and signs new ones", {
    timeout: 300_000,
  }, async () => {
    const token = await withServer(oldKey, (deps) => deps.keys.sign({ sub: "usr_before" }, 600));
    const r = spawnSync(process.execPath, ["bin/plinth.mjs", "vault", "rotate-root"], {
      cwd: ROOT,
      env: { ...cliEnv(oldKey), PLINTH_MASTER_KEY_NEW: newKey.toString("base64") },
      encoding: "utf8",
      timeout: 90_000,
    });
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(
      r.stdout,
      new RegExp(
        `^re-wrapped 0 key-encryption keys of 0 organizations and 1 platform key-encryption keys \\(the token-signing keys'\\) under root key ${rootKeyIdOf(newKey)}$`,
        "m",
      ),
    );
    assert.doesNotMatch(r.stdout, /re-sealed/);
    assert.match(r.stdout, /PLINTH_MASTER_KEY_PREVIOUS is no longer needed/);

    // doctor decrypts the signing keys with the new key, and says a wrong one cannot
    const doctor = (key: Buffer) =>
      spawnSync(process.execPath, ["bin/plinth.mjs", "doctor"], { cwd: ROOT, env: cliEnv(key), encoding: "utf8", timeout: 90_000 });
    assert.match(doctor(newKey).stdout, /^\[ok {2}\] signing keys: 1 signing, 0 published for rotation; private keys decrypt with the master key$/m);
    assert.match(doctor(randomBytes(32)).stdout, /^\[FAIL\] signing keys: cannot decrypt with this master key \(.*another root key/m);

    await withServer(newKey, async (deps) => {
      assert.equal((await deps.keys.verify(token)).ok, true, "a token signed before the rotation verifies");
      assert.equal((await deps.keys.verify(await deps.keys.sign({ sub: "usr_after" }, 60))).ok, true);
    });
    await assert.rejects(
      withServer(oldKey, async () => {}),
      (e: Error) => /^PLINTH_MASTER_KEY: the vault's keys are wrapped under another root key/.test(e.message),
    );
  });
});
