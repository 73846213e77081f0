import { parseArgs } from "node:util";
import { ConfigError, loadConfig } from "../config.ts";
import { serve } from "../main.ts";
import { worker } from "../worker.ts";
import { doctor } from "./doctor.ts";
import { runCommand } from "./run.ts";
import { secretsCommand } from "./secrets.ts";
import { newRootKey, rotateRootCommand } from "./vault.ts";
import { zkCommand } from "./zk.ts";
import { isId } from "../lib/ids.ts";
import { createUser, listMail, migrateCommand, rotateKeys, listKeys, setUserDisabled, verifyAudit, listMaintenance, runMaintenance } from "./commands.ts";
import { PLATFORM_AUDIT_ORG } from "../modules/audit/audit.service.ts";

const HELP = `plinth — the platform layer for AI agents

Usage:
  plinth serve                       run the HTTP server (and the job worker, unless PLINTH_RUN_WORKER=false)
  plinth worker                      run the job worker and schedules without the HTTP server (SIGTERM: finish, exit 0)
  plinth migrate                     apply database migrations
  plinth user create --email E [--name N] [--password P] [--admin]
                                     create a user (verified); --admin makes a platform admin
  plinth user disable --email E      disable an account: no sign-in, its sessions revoked, its keys and tokens stop
  plinth user enable --email E       enable a disabled account again
  plinth keys rotate                 add a new token-signing key; the old one stays published until its tokens expire
  plinth keys list                   list token-signing keys
  plinth vault rotate-root --new-key-file PATH   (or PLINTH_MASTER_KEY_NEW)
                                     re-wrap every org's vault keys and the signing keys under a new master key
  plinth mail list [--limit N]       show the dev outbox (mail kept when SMTP_URL is unset)
  plinth audit verify --org ORG      check an org's audit hash chain (--org platform: the platform's); names the first broken link
  plinth doctor                      check configuration, database, Redis, mail and keys
  plinth maintenance list            the maintenance tasks: schedule, next run, last run and its outcome
  plinth maintenance run TASK        run one maintenance task now and print what it removed

Against a running server (PLINTH_URL, default http://127.0.0.1:8080; PLINTH_TOKEN, an API key or access token):
  plinth secrets list|get|reveal|set|delete|versions|rollback|import|export …
                                     the vault's secrets (plinth secrets help for each)
  plinth run --org ORG [--team T] [--user U] -- COMMAND [ARGS…]
                                     start COMMAND with the resolved secrets in its environment
  plinth zk init|set|get|list|recover|share|unshare|shares|release …
                                     zero-knowledge vaults, encrypted in this client (plinth zk help for each)

Configuration comes from the environment; see the README's table.`;

export async function run(argv: string[]): Promise<number> {
  const [cmd, sub, ...rest] = argv;
  try {
    switch (cmd) {
      case "serve":
        await serve();
        return -1; // keeps running
      case "migrate":
        await migrateCommand(loadConfig());
        return 0;
      case "worker":
        await worker();
        return -1; // keeps running until SIGTERM
      case "maintenance":
        if (sub === "list") {
          await listMaintenance(loadConfig());
          return 0;
        }
        if (sub === "run") return await runMaintenance(loadConfig(), rest[0]);
        break;
      case "user": {
        if (sub === "disable" || sub === "enable") {
          const { values } = parseArgs({ args: rest, options: { email: { type: "string" } } });
          if (!values.email) throw new UsageError(`user ${sub} needs --email`);
          await setUserDisabled(loadConfig(), values.email, sub === "disable");
          return 0;
        }
        if (sub !== "create") break;
        const { values } = parseArgs({
          args: rest,
          options: { email: { type: "string" }, name: { type: "string" }, password: { type: "string" }, admin: { type: "boolean", default: false } },
        });
        if (!values.email) throw new UsageError("user create needs --email");
        await createUser(loadConfig(), { email: values.email, name: values.name, password: values.password, admin: values.admin ?? false });
        return 0;
      }
      case "vault": {
        if (sub !== "rotate-root") break;
        const { values } = parseArgs({ args: rest, options: { "new-key-file": { type: "string" } } });
        await rotateRootCommand(loadConfig(), newRootKey(values["new-key-file"], process.env));
        return 0;
      }
      case "keys":
        if (sub === "rotate") {
          await rotateKeys(loadConfig());
          return 0;
        }
        if (sub === "list") {
          await listKeys(loadConfig());
          return 0;
        }
        break;
      case "mail": {
        if (sub !== "list") break;
        const { values } = parseArgs({ args: rest, options: { limit: { type: "string", default: "20" } } });
        await listMail(loadConfig(), Math.min(200, Math.max(1, Number(values.limit) || 20)));
        return 0;
      }
      case "audit": {
        if (sub !== "verify") break;
        const { values } = parseArgs({ args: rest, options: { org: { type: "string" } } });
        if (!values.org || !(isId("org", values.org) || values.org === PLATFORM_AUDIT_ORG))
          throw new UsageError("audit verify needs --org org_… (or --org platform)");
        return (await verifyAudit(loadConfig(), values.org)) ? 0 : 1;
      }
      case "doctor":
        return await doctor(process.env);
      case "secrets":
        return await secretsCommand(argv.slice(1));
      case "run":
        return await runCommand(argv.slice(1));
      case "zk":
        return await zkCommand(argv.slice(1));
      case undefined:
      case "help":
      case "--help":
      case "-h":
        process.stdout.write(HELP + "\n");
        return 0;
    }
    throw new UsageError(`unknown command: ${[cmd, sub].filter(Boolean).join(" ")}`);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`plinth: ${e.message}\n\n${HELP}\n`);
      return 2;
    }
    if (e instanceof ConfigError) {
      process.stderr.write(`plinth: configuration error: ${e.message}\n`);
      return 78;
    }
    process.stderr.write(`plinth: ${(e as Error).message}\n`);
    return 1;
  }
}

class UsageError extends Error {}

if (import.meta.main) {
  const code = await run(process.argv.slice(2));
  if (code >= 0) process.exit(code);
}
