/**
 * `plinth run --org ORG [--team T] [--user U] -- COMMAND [ARGS…]`: resolves the secrets (GET …/secrets/resolve, audited
 * by the server) and starts COMMAND with them added to its environment, as `infisical run` and `doppler run` do. The
 * command inherits stdin, stdout and stderr; SIGINT, SIGTERM and SIGHUP are passed on to it; plinth exits with its exit
 * code (128 + the signal's number when a signal ended it). A secret overrides a variable of the same name already set.
 */
import { spawn } from "node:child_process";
import { constants } from "node:os";
import { parseArgs } from "node:util";
import { asCommand, CliError, type CliIo, createApiClient, processIo, UsageError } from "./api-client.ts";
import { orgOf, resolveSecrets, teamAndUser } from "./secrets.ts";

export const RUN_USAGE = `plinth run — start a command with the vault's secrets in its environment

Usage:
  plinth run --org ORG [--team T] [--user U] -- COMMAND [ARGS…]

The org's secrets, the team's (--team) and your own (--user usr_… = you), the more specific winning a name clash,
become environment variables of COMMAND. Needs PLINTH_TOKEN (and PLINTH_URL); --org defaults to PLINTH_ORG.`;

const FORWARDED = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

export function runCommand(args: string[], io: CliIo = processIo()): Promise<number> {
  return asCommand(io, RUN_USAGE, async () => {
    const split = args.indexOf("--");
    if (split === -1 || split === args.length - 1) throw new UsageError("run needs -- COMMAND [ARGS…] after its options");
    const { values, positionals } = parseArgs({
      args: args.slice(0, split),
      options: { org: { type: "string" }, team: { type: "string" }, user: { type: "string" } },
      allowPositionals: true,
      strict: true,
    });
    if (positionals.length) throw new UsageError(`run: unexpected ${positionals[0].slice(0, 40)} (the command goes after --)`);
    const org = orgOf(values, io.env);
    const secrets = await resolveSecrets(createApiClient(io.env), org, teamAndUser(values));
    const [command, ...commandArgs] = args.slice(split + 1);
    const env = { ...io.env, ...Object.fromEntries(secrets.map((s) => [s.name, s.value])) };
    return spawnInheriting(command, commandArgs, env);
  });
}

/** Runs the command to its end with plinth's stdio; resolves with the exit code plinth should give. */
function spawnInheriting(command: string, args: string[], env: Record<string, string | undefined>): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: "inherit", env });
    // while the command runs, a signal to plinth is the command's to handle (plinth itself stays until it ends)
    const forward = (signal: NodeJS.Signals) => () => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    };
    const handlers = FORWARDED.map((signal) => [signal, forward(signal)] as const);
    for (const [signal, handler] of handlers) process.on(signal, handler);
    const done = () => {
      for (const [signal, handler] of handlers) process.off(signal, handler);
    };
    child.once("error", (e: NodeJS.ErrnoException) => {
      done();
      reject(new CliError(`cannot start ${command}: ${e.code === "ENOENT" ? "no such command" : e.message}`));
    });
    child.once("exit", (code, signal) => {
      done();
      resolve(code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0));
    });
  });
}
