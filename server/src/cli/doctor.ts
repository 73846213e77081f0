import { existsSync } from "node:fs";
import { join } from "node:path";
import { Redis } from "ioredis";
import { ConfigError, loadConfig, type Config } from "../config.ts";
import { openDatabase } from "../deps.ts";
import { migrationStatus } from "../db/migrate.ts";
import { createLogger } from "../logger.ts";
import { createMailer } from "../mail/mailer.ts";
import { systemClock } from "../lib/clock.ts";
import { createSigningKeys } from "../modules/keys/signing-keys.ts";
import { loadOrCreateKeyFile } from "../db/data-dir.ts";
import type { Database } from "../db/client.ts";

type Line = { ok: boolean | "warn"; what: string; detail: string };

/** `plinth doctor`: checks each part and says in words what is wrong and how to fix it. Changes nothing. */
export async function doctor(env: Record<string, string | undefined>): Promise<number> {
  const lines: Line[] = [];
  const say = (l: Line) => {
    lines.push(l);
    const mark = l.ok === true ? "ok  " : l.ok === "warn" ? "warn" : "FAIL";
    process.stdout.write(`[${mark}] ${l.what}: ${l.detail}\n`);
  };

  let config: Config;
  try {
    config = loadConfig(env);
    say({
      ok: true,
      what: "configuration",
      detail: `valid (${config.database.kind} database, ${config.redis.kind === "configured" ? "Redis" : "in-process"} limits, ${config.mail.kind} mail)`,
    });
  } catch (e) {
    say({ ok: false, what: "configuration", detail: e instanceof ConfigError ? e.message : String(e) });
    return 78; // EX_CONFIG, as every other command answers a bad configuration
  }

  let masterKey: Buffer | undefined = config.masterKey;
  if (!masterKey) {
    const path = join(config.dataDir, "master.key");
    if (existsSync(path)) {
      try {
        masterKey = loadOrCreateKeyFile(config.dataDir).key;
        say({ ok: true, what: "master key", detail: `key file ${path}` });
      } catch (e) {
        say({ ok: false, what: "master key", detail: (e as Error).message });
      }
    } else {
      say({ ok: "warn", what: "master key", detail: `no PLINTH_MASTER_KEY and no ${path} yet: plinth serve will generate one` });
    }
  } else {
    say({ ok: true, what: "master key", detail: "PLINTH_MASTER_KEY is set (32 bytes)" });
  }

  let db: Database | undefined;
  let release = () => {};
  let reachable = false;
  try {
    const opened = await openDatabase(config, masterKey ?? Buffer.alloc(32));
    db = opened.db;
    release = opened.release;
    await db.ping();
    reachable = true;
    say({ ok: true, what: "database", detail: `${db.kind} reachable` });
  } catch (e) {
    const msg = (e as Error).message;
    const hint = /password authentication failed|role "plinth_app"/.test(msg)
      ? " (run `plinth migrate` to create the plinth_app role and set its password)"
      : "";
    const inUse = msg.includes("in use by another Plinth process");
    say({ ok: inUse ? "warn" : false, what: "database", detail: inUse || hint ? msg + hint : `unreachable: ${msg}` });
  }

  // against a database that does not answer, these checks would blame the migrations and the master key
  if (db && reachable) {
    let migrated = false;
    try {
      const m = await migrationStatus(db);
      migrated = m.applied >= m.expected;
      say({
        ok: m.applied >= m.expected,
        what: "migrations",
        detail: m.applied >= m.expected ? `all ${m.expected} applied` : `${m.applied} of ${m.expected} applied: run plinth migrate`,
      });
    } catch (e) {
      say({ ok: false, what: "migrations", detail: (e as Error).message });
    }
    if (masterKey && !migrated) {
      say({ ok: "warn", what: "signing keys", detail: "not checked until the migrations are applied" });
    } else if (masterKey) {
      try {
        const keys = createSigningKeys({
          db,
          masterKey,
          previousMasterKeys: config.previousMasterKeys,
          clock: systemClock,
          jwt: config.jwt,
          accessTtlSeconds: config.jwt.accessTtlSeconds,
        });
        const list = await keys.list();
        const active = list.filter((k) => !k.supersededAt && !k.retiredAt);
        if (!active.length) say({ ok: "warn", what: "signing keys", detail: "none yet: plinth serve creates the first one" });
        else {
          const { legacy } = await keys.check(); // decrypts every published key, writing nothing
          say({
            ok: true,
            what: "signing keys",
            detail: `${active.length} signing, ${list.filter((k) => k.supersededAt && !k.retiredAt).length} published for rotation; private keys decrypt with the master key`,
          });
          if (legacy)
            say({
              ok: "warn",
              what: "signing keys",
              detail: `${legacy} still sealed the way versions before the KMS layer did: the next plinth serve moves them onto it`,
            });
          // an upgraded deployment keeps signing with its old key's alg until it rotates (PLINTH_JWT_ALG names new keys' alg)
          const other = active.filter((k) => k.alg !== config.jwt.alg).map((k) => k.alg);
          if (other.length)
            say({
              ok: "warn",
              what: "signing keys",
              detail: `tokens are signed with ${other.join(", ")}, not PLINTH_JWT_ALG=${config.jwt.alg}: run plinth keys rotate to switch`,
            });
        }
      } catch (e) {
        say({
          ok: false,
          what: "signing keys",
          detail: `cannot decrypt with this master key (${(e as Error).message}): is PLINTH_MASTER_KEY the one the keys were made with?`,
        });
      }
    }
  }

  if (config.redis.kind === "configured") {
    const redis = new Redis(config.redis.url, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 3000, retryStrategy: () => null });
    try {
      await redis.connect();
      say({ ok: true, what: "redis", detail: `answered ${await redis.ping()}` });
    } catch (e) {
      say({ ok: false, what: "redis", detail: `REDIS_URL is unreachable: ${(e as Error).message}` });
    } finally {
      redis.disconnect();
    }
  } else {
    say({ ok: true, what: "redis", detail: "not configured: rate limits live in this process (set REDIS_URL when running several instances)" });
  }

  if (db) {
    const mailer = createMailer({ config: config.mail, db, log: createLogger("silent") });
    try {
      say({ ok: true, what: "mail", detail: await mailer.check() });
    } catch (e) {
      say({ ok: false, what: "mail", detail: `SMTP_URL does not accept a connection: ${(e as Error).message}` });
    } finally {
      mailer.close();
    }
    await db.close();
  }
  release();
  const failed = lines.filter((l) => l.ok === false).length;
  process.stdout.write(failed ? `\n${failed} problem(s) found.\n` : "\nAll checks passed.\n");
  return failed === 0 ? 0 : 1;
}
