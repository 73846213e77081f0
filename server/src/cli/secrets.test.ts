/**
 * `plinth secrets …` and `plinth run` against a real server listening on a port (PGlite): the commands' functions
 * in this process, and the plinth command itself (bin/plinth.mjs) for exit codes and signals.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { createTestApp, makeKey, makeOrg, signUp, uniqueSlug, type TestApp, type TestKey, type TestUser } from "../../test/harness.ts";
import type { CliIo } from "./api-client.ts";
import { formatEnv, parseEnv, quoteEnvValue } from "./env-file.ts";
import { runCommand } from "./run.ts";
import { secretsCommand } from "./secrets.ts";
import { parse as parseDotenv } from "dotenv";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));

/** The dotenv package itself is the oracle: exported files round-trip through it, not only through our reader. */
const dotenvParse = (src: string): Record<string, string> => parseDotenv(src);

/** Values that need care in a .env file. */
const TRICKY = [
  "plain",
  "with spaces and # hash",
  "  padded  ",
  "it's",
  'say "hi"',
  'it\'s "both"',
  "line one\nline two\n",
  "literal \\n backslash-n",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell-style reference, kept literally
  "$HOME and ${PATH}",
  "back`tick",
  "carriage\r\nreturn",
  "",
  "=starts with equals",
  "ünïcödé ✓",
];

describe("env files (env-file.ts)", () => {
  it("quotes every value so that dotenv's parse() and ours give it back unchanged", () => {
    const entries = TRICKY.map((value, i) => ({ name: `V${i}`, value }));
    const out = formatEnv(entries);
    assert.ok("text" in out, JSON.stringify(out));
    const expected = Object.fromEntries(entries.map((e) => [e.name, e.value]));
    assert.deepEqual(dotenvParse(out.text), expected);
    const ours = parseEnv(out.text);
    assert.deepEqual(ours.errors, []);
    assert.deepEqual(Object.fromEntries(ours.entries.map((e) => [e.name, e.value])), expected);
    // a value no quoting carries is refused by name, never written wrong
    assert.equal(quoteEnvValue("all three ' ` \""), undefined);
    assert.deepEqual(
      formatEnv([
        { name: "A", value: "ok" },
        { name: "B", value: "' ` \"" },
      ]),
      { unquotable: ["B"] },
    );
  });

  it("reads quotes, comments, export prefixes and \\n escapes as dotenv does, and names the line of each mistake", () => {
    const text = [
      "# a comment",
      "",
      "export API_URL=https://example.com/api # trailing comment",
      "SINGLE='kept $as is # not a comment'",
      'DOUBLE="two\\nlines"',
      "BACKTICK=`it's`",
      "MULTI='first",
      "second'",
      "COLON: value",
      "EMPTY=",
      "   INDENTED = spaced   ",
    ].join("\r\n");
    const { entries, errors } = parseEnv(text);
    assert.deepEqual(errors, []);
    const got = Object.fromEntries(entries.map((e) => [e.name, e.value]));
    assert.deepEqual(got, dotenvParse(text), "the same as dotenv");
    assert.deepEqual(got, {
      API_URL: "https://example.com/api",
      SINGLE: "kept $as is # not a comment",
      DOUBLE: "two\nlines",
      BACKTICK: "it's",
      MULTI: "first\nsecond",
      COLON: "value",
      EMPTY: "",
      INDENTED: "spaced",
    });
    assert.deepEqual(
      entries.map((e) => [e.name, e.line]),
      [
        ["API_URL", 3],
        ["SINGLE", 4],
        ["DOUBLE", 5],
        ["BACKTICK", 6],
        ["MULTI", 7],
        ["COLON", 9],
        ["EMPTY", 10],
        ["INDENTED", 11],
      ],
    );
    const bad = parseEnv(["OK=1", "just words", "OPEN='never closed", "AFTER='x' y", "OK=2"].join("\n"));
    assert.deepEqual(
      bad.errors.map((e) => e.line),
      [2, 3, 4, 5],
    );
    assert.match(bad.errors[0].message, /expected NAME=value/);
    assert.match(bad.errors[1].message, /never closed/);
    assert.match(bad.errors[3].message, /OK is also set on line 1/);
  });
});

describe("plinth secrets and plinth run over HTTP", () => {
  let t: TestApp;
  let url: string;
  let owner: TestUser;
  let key: TestKey;
  let orgId: string;
  let teamId: string;
  const dirs: string[] = [];

  before(async () => {
    t = await createTestApp({ backend: "pglite", worker: false });
    await t.app.listen({ port: 0, host: "127.0.0.1" });
    url = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
    owner = await signUp(t, "Cli Owner");
    orgId = await makeOrg(t, owner, "Cli Inc", uniqueSlug("cli"));
    const team = await t.call("POST", `/v1/orgs/${orgId}/teams`, { name: "Backend" }, owner.access_token);
    assert.equal(team.statusCode, 201, team.body);
    teamId = team.json().id;
    key = await makeKey(t, orgId, owner, { roles: ["developer"] });
  });
  after(async () => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    await t.close();
  });

  function tempFile(name: string, text: string): string {
    const dir = mkdtempSync(join(tmpdir(), "plinth-secrets-"));
    dirs.push(dir);
    const file = join(dir, name);
    writeFileSync(file, text);
    return file;
  }

  /** Runs a command function with captured output; the key's token unless `env` says otherwise. */
  async function cli(
    fn: (args: string[], io: CliIo) => Promise<number>,
    args: string[],
    opts: { env?: Record<string, string | undefined>; stdin?: string } = {},
  ) {
    let stdout = "";
    let stderr = "";
    const io: CliIo = {
      env: { PLINTH_URL: url, PLINTH_TOKEN: key.secret, ...opts.env },
      stdout: { write: (s: string) => (stdout += s) },
      stderr: { write: (s: string) => (stderr += s) },
      stdin: Readable.from(opts.stdin === undefined ? [] : [opts.stdin]),
    };
    const code = await fn(args, io);
    return { code, stdout, stderr };
  }
  const secrets = (args: string[], opts?: Parameters<typeof cli>[2]) => cli(secretsCommand, [...args, "--org", orgId], opts);
  const ok = async (args: string[], opts?: Parameters<typeof cli>[2]) => {
    const r = await secrets(args, opts);
    assert.equal(r.code, 0, `plinth secrets ${args.join(" ")}: ${r.stderr}`);
    return r;
  };
  const uniqueName = (tag: string) => `${tag}_${randomBytes(3).toString("hex").toUpperCase()}`;

  it("sets, lists, gets, reveals, versions, rolls back and deletes a secret by name and by id", async () => {
    const name = uniqueName("DB_PASSWORD");
    assert.match((await ok(["set", `${name}=first`, "--description", "The database"])).stdout, new RegExp(`^created ${name} \\(sec_\\w+, version 1\\)`));
    assert.match((await ok(["set", `${name}=-`], { stdin: "second\n" })).stdout, new RegExp(`^updated ${name} .*version 2`));
    assert.equal((await ok(["reveal", name])).stdout, "second", "the value alone, without echo's newline, and no newline of its own");
    assert.equal((await ok(["reveal", name, "--version", "1"])).stdout, "first");

    const listed = (await ok(["list"])).stdout.split("\n");
    assert.match(listed[0], /^NAME\s+SCOPE\s+VERSION\s+UPDATED$/);
    assert.ok(
      listed.some((l) => new RegExp(`^${name}\\s+org\\s+2\\s+\\d{4}-`).test(l)),
      listed.join("\n"),
    );
    const asJson = JSON.parse((await ok(["list", "--json"])).stdout) as { id: string; name: string; version: number; value?: string }[];
    const row = asJson.find((s) => s.name === name)!;
    assert.equal(row.version, 2);
    assert.ok(!JSON.stringify(asJson).includes("second"), "lists never carry values");

    const got = await ok(["get", row.id]);
    assert.match(got.stdout, new RegExp(`name\\s+${name}`));
    assert.match(got.stdout, /description\s+The database/);
    assert.ok(!got.stdout.includes("second"));
    assert.equal(JSON.parse((await ok(["get", name, "--json"])).stdout).id, row.id);

    const versions = (await ok(["versions", name])).stdout.split("\n");
    assert.match(versions[0], /^VERSION\s+CURRENT\s+CREATED\s+BY$/);
    assert.match(versions[1], /^2\s+\*\s+/);
    assert.match(versions[2], /^1\s{2,}/);
    assert.match((await ok(["rollback", name, "--version", "1"])).stdout, /back to the value of version 1: now version 3/);
    assert.equal((await ok(["reveal", row.id])).stdout, "first");
    assert.deepEqual(
      JSON.parse((await ok(["versions", row.id, "--json"])).stdout).map((v: { version: number }) => v.version),
      [3, 2, 1],
    );

    assert.match((await ok(["delete", name])).stdout, new RegExp(`^deleted ${name} \\(${row.id}\\)`));
    const gone = await secrets(["reveal", name]);
    assert.equal(gone.code, 1);
    assert.equal(gone.stderr, `error: no secret named ${name} in the organization (name)\n`);
    const byId = await secrets(["reveal", row.id]);
    assert.equal(byId.code, 1);
    assert.match(byId.stderr, /^error: No secret sec_\w+ in this organization\. \(secretId\)\n$/);
    // an access token (Bearer) works as well as the API key (X-API-Key)
    const asOwner = await secrets(["list", "--json"], { env: { PLINTH_TOKEN: owner.access_token } });
    assert.equal(asOwner.code, 0, asOwner.stderr);
    assert.ok(!(JSON.parse(asOwner.stdout) as { id: string }[]).some((s) => s.id === row.id));
  });

  it("keeps team and personal secrets in their scope when set, listed and looked up by name", async () => {
    const name = uniqueName("SCOPED");
    await ok(["set", `${name}=org-value`]);
    await ok(["set", `${name}=team-value`, "--team", teamId]);
    await ok(["set", `${name}=my-value`, "--user", owner.id]);
    assert.equal((await ok(["reveal", name])).stdout, "org-value");
    assert.equal((await ok(["reveal", name, "--team", teamId])).stdout, "team-value");
    assert.equal((await ok(["reveal", name, "--user", owner.id])).stdout, "my-value");
    const team = JSON.parse((await ok(["list", "--team", teamId, "--json"])).stdout) as { name: string; scope: string }[];
    assert.deepEqual(
      team.filter((s) => s.name === name).map((s) => s.scope),
      ["team"],
    );
    // a second `set` of the same name in a scope updates it there, and nowhere else
    assert.match((await ok(["set", `${name}=team-2`, "--team", teamId])).stdout, /^updated .*version 2/);
    assert.equal((await ok(["reveal", name])).stdout, "org-value");
  });

  it("imports a .env file (quotes, comments, export prefix), skipping existing names unless --overwrite", async () => {
    const a = uniqueName("IMPORT_A");
    const b = uniqueName("IMPORT_B");
    const c = uniqueName("IMPORT_C");
    await ok(["set", `${c}=before`, "--team", teamId]);
    const file = tempFile(
      "app.env",
      [`# the app's settings`, `export ${a}="multi\\nline" # a comment`, "", `${b}='single # not a comment'`, `${c}=replaced`].join("\n"),
    );
    const first = await ok(["import", file, "--team", teamId]);
    assert.match(first.stdout, /: 2 created, 0 updated, 1 skipped \(they exist; --overwrite replaces them\)/);
    assert.equal((await ok(["reveal", a, "--team", teamId])).stdout, "multi\nline");
    assert.equal((await ok(["reveal", b, "--team", teamId])).stdout, "single # not a comment");
    assert.equal((await ok(["reveal", c, "--team", teamId])).stdout, "before");
    const again = await ok(["import", file, "--team", teamId, "--overwrite"]);
    assert.match(again.stdout, /: 0 created, 3 updated, 0 skipped$/m);
    assert.equal((await ok(["reveal", c, "--team", teamId])).stdout, "replaced");

    // a file with bad lines writes nothing and names every bad line
    const d = uniqueName("IMPORT_D");
    const bad = tempFile("bad.env", [`${d}=fine`, "lower_case=no", "not an assignment", `${d}=twice`].join("\n"));
    const refused = await secrets(["import", bad]);
    assert.equal(refused.code, 1);
    assert.deepEqual(refused.stderr.trim().split("\n"), [
      `error: ${bad}:2: lower_case is not a secret name (A–Z, 0–9 and _, not starting with a digit)`,
      `error: ${bad}:3: expected NAME=value (or a # comment)`,
      `error: ${bad}:4: ${d} is also set on line 1`,
      "error: nothing imported: fix the lines above",
    ]);
    assert.ok(!(await ok(["list"])).stdout.includes(d), "nothing was written");
    const missing = await secrets(["import", join(tmpdir(), `no-such-${randomBytes(4).toString("hex")}.env`)]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^error: cannot read .*ENOENT/);
  });

  it("exports what resolve serves (user over team over org) as env and json that round-trip, audited without values", async () => {
    const team = (await t.call("POST", `/v1/orgs/${orgId}/teams`, { name: "Export" }, owner.access_token)).json().id as string;
    const tag = randomBytes(3).toString("hex").toUpperCase();
    const expected: Record<string, string> = {};
    for (const [i, value] of TRICKY.entries()) {
      const name = `TRICKY_${i}_${tag}`;
      // the org's value, overridden in the team for the even ones and by the user for every third
      await ok(["set", `${name}=org ${value}`]);
      expected[name] = `org ${value}`;
      if (i % 2 === 0) {
        await ok(["set", `${name}=${value}`, "--team", team]);
        expected[name] = value;
      }
      if (i % 3 === 0) {
        await ok(["set", `${name}=mine ${value}`, "--user", owner.id]);
        expected[name] = `mine ${value}`;
      }
    }
    const mine = (all: Record<string, string>) => Object.fromEntries(Object.entries(all).filter(([k]) => k.endsWith(`_${tag}`)));

    const json = await ok(["export", "--team", team, "--user", owner.id, "--format", "json"]);
    assert.deepEqual(mine(JSON.parse(json.stdout)), expected);
    const env = await ok(["export", "--team", team, "--user", owner.id]);
    assert.deepEqual(mine(dotenvParse(env.stdout)), expected, "dotenv reads the export back unchanged");
    // and importing the export elsewhere gives the same values
    const copy = (await t.call("POST", `/v1/orgs/${orgId}/teams`, { name: "Copy" }, owner.access_token)).json().id as string;
    await ok(["import", tempFile("export.env", env.stdout), "--team", copy]);
    const copied = await ok(["export", "--format", "json", "--team", copy]);
    for (const [name, value] of Object.entries(expected)) assert.equal(JSON.parse(copied.stdout)[name], value, name);

    // without --team and --user only the org's values
    const orgOnly = mine(JSON.parse((await ok(["export", "--format", "json"])).stdout));
    assert.deepEqual(orgOnly, Object.fromEntries(Object.keys(expected).map((k, i) => [k, `org ${TRICKY[i]}`])));
    const events = (await t.deps.audit.list(orgId, {}, 1000)).filter((e) => e.action === "secrets.resolved");
    assert.ok(events.length >= 4, `${events.length} secrets.resolved events`);
    const text = JSON.stringify(events);
    assert.ok(!text.includes("mine ") && !text.includes("org plain"), "no value in the audit log");

    const badFormat = await secrets(["export", "--format", "yaml"]);
    assert.equal(badFormat.code, 2);
    assert.match(badFormat.stderr, /^plinth: --format: env or json, not yaml/);
    const unquotable = uniqueName("UNQUOTABLE");
    await ok(["set", `${unquotable}=' \` "`, "--team", team]);
    const refused = await secrets(["export", "--team", team]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, new RegExp(`^error: no .env quoting carries the value of ${unquotable} .*use --format json`));
    assert.equal(refused.stdout, "", "nothing half-written");
  });

  it("plinth run starts the command with the resolved secrets and exits with its exit code", async () => {
    const name = uniqueName("FOO");
    await ok(["set", `${name}=bar`]);
    await ok(["set", `${name}=baz`, "--team", teamId]);
    const check = `process.exit(process.env.${name}==='bar'?0:3)`;
    const run = (args: string[]) => cli(runCommand, ["--org", orgId, ...args, "--", process.execPath, "-e", check]);
    assert.equal((await run([])).code, 0);
    assert.equal((await run(["--team", teamId])).code, 3, "the team's value wins, and the child's exit code is plinth's");
    const noCommand = await cli(runCommand, ["--org", orgId]);
    assert.equal(noCommand.code, 2);
    assert.match(noCommand.stderr, /run needs -- COMMAND/);
    const missing = await cli(runCommand, ["--org", orgId, "--", `/nonexistent/${randomBytes(4).toString("hex")}`]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^error: cannot start .*: no such command/);
  });

  /** The plinth command itself, as a shell runs it; resolves when it exits. */
  function plinth(args: string[], env: Record<string, string>, onStdout?: (s: string, child: ReturnType<typeof spawn>) => void) {
    const child = spawn(process.execPath, ["bin/plinth.mjs", ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/tmp", PLINTH_URL: url, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (b: Buffer) => {
      stdout += b.toString();
      onStdout?.(stdout, child);
    });
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => child.once("close", (code) => resolve({ code, stdout, stderr })));
  }

  it("the plinth command: run passes the exit code and SIGTERM on, reveal prints the value alone", async () => {
    const name = uniqueName("FOO");
    await ok(["set", `${name}=bar`]);
    const env = { PLINTH_TOKEN: key.secret, PLINTH_ORG: orgId };
    // (exit 0 and the team's override are checked in this process above)
    const three = await plinth(["run", "--", process.execPath, "-e", `process.exit(process.env.${name}==='nope'?0:3)`], env);
    assert.equal(three.code, 3, three.stderr);
    // plinth waits for the command; a SIGTERM to plinth reaches the command, whose exit code plinth then gives
    let sent = false;
    const waiting = `process.on("SIGTERM", () => process.exit(7)); console.log("ready"); setInterval(() => {}, 1000)`;
    const term = await plinth(["run", "--", process.execPath, "-e", waiting], env, (out, child) => {
      if (!sent && out.includes("ready")) {
        sent = true;
        child.kill("SIGTERM");
      }
    });
    assert.ok(sent);
    assert.equal(term.code, 7, term.stderr);
    const revealed = await plinth(["secrets", "reveal", name], env);
    assert.deepEqual([revealed.code, revealed.stdout], [0, "bar"], revealed.stderr);
  });

  it("a missing or invalid token, an unreachable server and a wrong command line each fail clearly", async () => {
    const none = await secrets(["list"], { env: { PLINTH_TOKEN: undefined } });
    assert.equal(none.code, 1);
    assert.match(none.stderr, /^error: PLINTH_TOKEN is not set/);
    const invalid = await secrets(["list"], { env: { PLINTH_TOKEN: "plk_live_notarealkeyatall" } });
    assert.equal(invalid.code, 1);
    assert.match(invalid.stderr, /^error: .+\n$/);
    const badJwt = await secrets(["list"], { env: { PLINTH_TOKEN: "eyJnot.a.jwt" } });
    assert.equal(badJwt.code, 1);
    assert.match(badJwt.stderr, /^error: .+/);
    const run = await cli(runCommand, ["--org", orgId, "--", process.execPath, "-e", "process.exit(0)"], { env: { PLINTH_TOKEN: undefined } });
    assert.equal(run.code, 1, "the command does not start without its secrets");
    assert.match(run.stderr, /^error: PLINTH_TOKEN is not set/);
    const down = await secrets(["list"], { env: { PLINTH_URL: "http://127.0.0.1:9" } });
    assert.equal(down.code, 1);
    assert.match(down.stderr, /^error: cannot reach the Plinth server at http:\/\/127\.0\.0\.1:9/);
    // a viewer's key lacks secrets:read: the server's 403 names the permission
    const viewer = await makeKey(t, orgId, owner, { roles: ["viewer"] });
    const forbidden = await secrets(["list"], { env: { PLINTH_TOKEN: viewer.secret } });
    assert.equal(forbidden.code, 1);
    assert.match(forbidden.stderr, /^error: .+ \(secrets:read\)\n$/);
    // the server names the field of bad input
    const badTeam = await secrets(["export", "--team", `team_${"0".repeat(26)}`]);
    assert.equal(badTeam.code, 1);
    assert.match(badTeam.stderr, /\(team_id\)\n$/);

    for (const args of [["list", "--colour"], ["set", "lower=x"], ["set", "NOEQUALS"], ["reveal", "X", "--version", "0"], ["frobnicate"], ["get"]]) {
      const r = await secrets(args);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, /^plinth: .+\n\nplinth secrets/);
    }
    const noOrg = await cli(secretsCommand, ["list"]);
    assert.equal(noOrg.code, 2);
    assert.match(noOrg.stderr, /--org org_… is needed/);
  });
});
