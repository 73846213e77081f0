import { readFileSync } from "node:fs";
import type { Config } from "../config.ts";
import { resolveMasterKey } from "../deps.ts";
import { createKms, rootKeyIdOf } from "../kms/kms.ts";
import { rotatePlatformRootKey, rotateRootKey } from "../kms/root-rotation.ts";
import { withDeps } from "./commands.ts";

const out = (s: string) => process.stdout.write(s + "\n");

/** A 32-byte key in base64, from a key file (the embedded master.key format) or a variable; `what` names the source. */
export function parseRootKey(text: string, what: string): Buffer {
  const key = Buffer.from(text.trim(), "base64");
  if (key.length !== 32) throw new Error(`${what} must hold 32 random bytes in base64 (try: openssl rand -base64 32)`);
  return key;
}

/**
 * `plinth vault rotate-root`: re-wraps every org's KEKs, and the platform's (under which the token-signing keys are
 * encrypted), under `newKey`. Runs with the current key configured (PLINTH_MASTER_KEY or the key file, plus
 * PLINTH_MASTER_KEY_PREVIOUS if set): all of them open what they wrapped. Booting converts signing keys sealed the
 * old way onto the KMS layer first, so nothing else needs re-sealing. Idempotent; re-run it after a crash.
 */
export async function rotateRootCommand(config: Config, newKey: Buffer): Promise<void> {
  await withDeps(config, async (deps) => {
    const current = resolveMasterKey(config, deps.log);
    const from = [current, ...config.previousMasterKeys].filter((k) => !k.equals(newKey));
    const kms = createKms({ masterKey: newKey, previousMasterKeys: from, clock: deps.clock });
    const { orgs, keks } = await rotateRootKey(deps.db, kms);
    const platform = await rotatePlatformRootKey(deps.db, kms);
    out(
      `re-wrapped ${keks} key-encryption keys of ${orgs} organizations and ${platform} platform key-encryption keys (the token-signing keys') under root key ${rootKeyIdOf(newKey)}`,
    );
    out("now start every instance with the new key as PLINTH_MASTER_KEY (or key file) alone; PLINTH_MASTER_KEY_PREVIOUS is no longer needed");
  });
}

/** The new root key of a rotation: --new-key-file, else PLINTH_MASTER_KEY_NEW. */
export function newRootKey(file: string | undefined, env: Record<string, string | undefined>): Buffer {
  if (file) return parseRootKey(readFileSync(file, "utf8"), file);
  if (env.PLINTH_MASTER_KEY_NEW) return parseRootKey(env.PLINTH_MASTER_KEY_NEW, "PLINTH_MASTER_KEY_NEW");
  throw new Error("vault rotate-root needs --new-key-file PATH or PLINTH_MASTER_KEY_NEW");
}
