/**
 * `plinth secrets …`: the vault's routes (/v1/orgs/{orgId}/secrets) from the command line, over HTTP as the holder of
 * PLINTH_TOKEN (api-client.ts). Values are printed only by `reveal` and `export`, each audited by the server.
 */
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { isId } from "../lib/ids.ts";
import { ApiError, asCommand, CliError, type ApiClient, type CliIo, createApiClient, processIo, UsageError } from "./api-client.ts";
import { formatEnv, parseEnv } from "./env-file.ts";

export const SECRETS_USAGE = `plinth secrets — the vault of a running server (PLINTH_URL, PLINTH_TOKEN)

Usage:
  plinth secrets list --org ORG [--team T | --user U] [--json]
  plinth secrets get NAME|ID --org ORG [--team T | --user U] [--json]       metadata, never the value
  plinth secrets reveal NAME|ID --org ORG [--team T | --user U] [--version N]  the value alone
  plinth secrets set NAME=VALUE… --org ORG [--team T | --user U] [--description D]
                                     create or update by name (VALUE - reads stdin)
  plinth secrets delete NAME|ID --org ORG [--team T | --user U]
  plinth secrets versions NAME|ID --org ORG [--team T | --user U] [--json]
  plinth secrets rollback NAME|ID --version N --org ORG [--team T | --user U]
  plinth secrets import FILE.env --org ORG [--team T | --user U] [--overwrite]
  plinth secrets export --org ORG [--team T] [--user U] [--format env|json]

A NAME is looked up among the org's secrets, the team's (--team) or your own (--user usr_… = you); an id (sec_…)
names any secret you can read. --org defaults to PLINTH_ORG.`;

const NAME = /^[A-Z_][A-Z0-9_]*$/;
const MAX_NAME = 128;
const MAX_VALUE_BYTES = 64 * 1024;
const VERSION = /^[1-9][0-9]{0,8}$/;

/** A secret's metadata as the API answers it. */
interface Secret {
  id: string;
  name: string;
  scope: "org" | "team" | "user";
  team_id: string | null;
  user_id: string | null;
  description: string;
  tags: string[];
  expires_at: string | null;
  version: number;
  created_by: string | null;
  created_at: string;
  updated_by: string | null;
  updated_at: string;
}
interface SecretVersion {
  version: number;
  current: boolean;
  kek_version: number;
  created_by: string | null;
  created_at: string;
}
interface Page<T> {
  items: T[];
  next_cursor: string | null;
}
/** One entry of GET …/secrets/resolve. */
export interface Resolved {
  name: string;
  value: string;
  source: { scope: "org" | "team" | "user"; secret_id: string; version: number; team_id?: string; user_id?: string };
}

const OPTIONS = {
  org: { type: "string" },
  team: { type: "string" },
  user: { type: "string" },
  json: { type: "boolean", default: false },
  version: { type: "string" },
  description: { type: "string" },
  overwrite: { type: "boolean", default: false },
  format: { type: "string", default: "env" },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>["values"];

/** Where a name is looked up and a new secret goes: the org, a team, or the caller. */
type Scope = { kind: "org" } | { kind: "team"; teamId: string } | { kind: "user"; userId: string };

export function orgOf(values: { org?: string }, env: CliIo["env"]): string {
  const org = values.org ?? env.PLINTH_ORG;
  if (!org) throw new UsageError("--org org_… is needed (or set PLINTH_ORG)");
  if (!isId("org", org)) throw new UsageError(`--org: ${org.slice(0, 40)} is not an org_… id`);
  return org;
}

export function teamAndUser(values: { team?: string; user?: string }): { teamId?: string; userId?: string } {
  if (values.team !== undefined && !isId("team", values.team)) throw new UsageError(`--team: ${values.team.slice(0, 40)} is not a team_… id`);
  if (values.user !== undefined && !isId("user", values.user)) throw new UsageError(`--user: ${values.user.slice(0, 40)} is not a usr_… id`);
  return { teamId: values.team, userId: values.user };
}

function scopeOf(values: Values): Scope {
  const { teamId, userId } = teamAndUser(values);
  if (teamId && userId) throw new UsageError("a secret belongs to a team or to you: give --team or --user, not both");
  return teamId ? { kind: "team", teamId } : userId ? { kind: "user", userId } : { kind: "org" };
}

const where = (s: Scope) => (s.kind === "org" ? "the organization" : s.kind === "team" ? `team ${s.teamId}` : `your secrets (${s.userId})`);

function checkName(name: string, what: string): void {
  if (!NAME.test(name) || name.length > MAX_NAME)
    throw new UsageError(`${what}: ${name.slice(0, 40)} is not a secret name (A–Z, 0–9 and _, not starting with a digit, at most ${MAX_NAME})`);
}

function versionOf(v: string | undefined, required: boolean): number | undefined {
  if (v === undefined) {
    if (required) throw new UsageError("--version N is needed");
    return undefined;
  }
  if (!VERSION.test(v)) throw new UsageError(`--version: ${v.slice(0, 20)} is not a version number`);
  return Number(v);
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join("  ")).join("\n") + "\n";
}

async function readStdin(io: CliIo): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of io.stdin) chunks.push(typeof c === "string" ? Buffer.from(c) : Buffer.from(c));
  // `echo value | plinth secrets set NAME=-` means the value without echo's newline
  return Buffer.concat(chunks)
    .toString("utf8")
    .replace(/\r?\n$/, "");
}

/** The secrets of the org you can see (all pages), filtered as the list route filters. */
async function listAll(api: ApiClient, org: string, query: { scope?: string; team_id?: string }): Promise<Secret[]> {
  const out: Secret[] = [];
  let cursor: string | undefined;
  do {
    const page = await api.request<Page<Secret>>("GET", `/v1/orgs/${org}/secrets`, { query: { ...query, limit: "200", cursor } });
    out.push(...page.items);
    cursor = page.next_cursor ?? undefined;
  } while (cursor);
  return out;
}

/** The secrets of one scope, by name. */
async function inScope(api: ApiClient, org: string, scope: Scope): Promise<Map<string, Secret>> {
  const rows =
    scope.kind === "org"
      ? await listAll(api, org, { scope: "org" })
      : scope.kind === "team"
        ? await listAll(api, org, { scope: "team", team_id: scope.teamId })
        : (await listAll(api, org, { scope: "user" })).filter((s) => s.user_id === scope.userId);
  return new Map(rows.map((s) => [s.name, s]));
}

/** The secret a NAME (in `scope`) or an id names. */
async function find(api: ApiClient, org: string, ref: string | undefined, scope: Scope): Promise<Secret> {
  if (!ref) throw new UsageError("name the secret: NAME or sec_… id");
  if (isId("secret", ref)) return api.request<Secret>("GET", `/v1/orgs/${org}/secrets/${ref}`);
  checkName(ref, "secret");
  const found = (await inScope(api, org, scope)).get(ref);
  if (!found) throw new CliError(`no secret named ${ref} in ${where(scope)} (name)`);
  return found;
}

const secretPath = (org: string, s: Secret, tail = "") => `/v1/orgs/${org}/secrets/${s.id}${tail}`;

/** Creates `name` in `scope`, or gives the existing one a new value (only if it is still at the version read). */
async function put(api: ApiClient, org: string, scope: Scope, existing: Secret | undefined, name: string, value: string, description?: string) {
  try {
    if (existing) {
      const s = await api.request<Secret>("PATCH", secretPath(org, existing), {
        body: { value, ...(description !== undefined ? { description } : {}) },
        headers: { "if-match": `"${existing.version}"` },
      });
      return { action: "updated" as const, secret: s };
    }
    const body = {
      name,
      value,
      ...(description !== undefined ? { description } : {}),
      ...(scope.kind === "team" ? { team_id: scope.teamId } : scope.kind === "user" ? { user_id: scope.userId } : {}),
    };
    return { action: "created" as const, secret: await api.request<Secret>("POST", `/v1/orgs/${org}/secrets`, { body }) };
  } catch (e) {
    // which of several failed
    if (e instanceof ApiError) throw new ApiError(e.status, e.code, `${name}: ${e.detail}`, e.field);
    throw e;
  }
}

/** `plinth secrets <sub> …`; returns the exit code. */
export function secretsCommand(args: string[], io: CliIo = processIo()): Promise<number> {
  return asCommand(io, SECRETS_USAGE, async () => {
    const [sub, ...rest] = args;
    if (sub === undefined || sub === "help" || sub === "--help" || sub === "-h") {
      io.stdout.write(`${SECRETS_USAGE}\n`);
      return 0;
    }
    const { values, positionals } = parseArgs({ args: rest, options: OPTIONS, allowPositionals: true, strict: true });
    const out = (s: string): void => {
      io.stdout.write(s.endsWith("\n") ? s : `${s}\n`);
    };
    const json = (v: unknown): void => out(JSON.stringify(v, null, 2));
    const api = (): ApiClient => createApiClient(io.env);
    const org = orgOf(values, io.env);
    const noMore = (n: number) => {
      if (positionals.length > n) throw new UsageError(`secrets ${sub}: unexpected ${positionals[n].slice(0, 40)}`);
    };

    switch (sub) {
      case "list": {
        noMore(0);
        const scope = scopeOf(values);
        const rows = [...(await inScopeOrAll(scope)).values()];
        if (values.json) return json(rows);
        if (!rows.length) return out(`no secrets in ${scope.kind === "org" && !values.team && !values.user ? "the organization you can see" : where(scope)}`);
        return out(table([["NAME", "SCOPE", "VERSION", "UPDATED"], ...rows.map((s) => [s.name, s.scope, String(s.version), s.updated_at])]));
      }
      case "get": {
        noMore(1);
        const s = await find(api(), org, positionals[0], scopeOf(values));
        if (values.json) return json(s);
        const owner = s.scope === "team" ? ` (${s.team_id})` : s.scope === "user" ? ` (${s.user_id})` : "";
        return out(
          table([
            ["id", s.id],
            ["name", s.name],
            ["scope", `${s.scope}${owner}`],
            ["version", String(s.version)],
            ["description", s.description],
            ["tags", s.tags.join(", ")],
            ["expires_at", s.expires_at ?? "never"],
            ["created", `${s.created_at} by ${s.created_by ?? "-"}`],
            ["updated", `${s.updated_at} by ${s.updated_by ?? "-"}`],
          ]),
        );
      }
      case "reveal": {
        noMore(1);
        const version = versionOf(values.version, false);
        const client = api();
        const s = await find(client, org, positionals[0], scopeOf(values));
        const r = await client.request<{ value: string }>("POST", secretPath(org, s, version ? `/versions/${version}/reveal` : "/reveal"));
        // the value alone, so that $(plinth secrets reveal NAME) is the value; a newline only for a person reading it
        io.stdout.write(io.stdout.isTTY ? `${r.value}\n` : r.value);
        return 0;
      }
      case "set": {
        if (!positionals.length) throw new UsageError("secrets set needs NAME=VALUE");
        const scope = scopeOf(values);
        const pairs: [string, string][] = [];
        let stdinUsed = false;
        for (const p of positionals) {
          const eq = p.indexOf("=");
          if (eq <= 0) throw new UsageError(`secrets set: ${p.slice(0, 40)} is not NAME=VALUE`);
          const name = p.slice(0, eq);
          checkName(name, "secrets set");
          if (pairs.some(([n]) => n === name)) throw new UsageError(`secrets set: ${name} is given twice`);
          let value = p.slice(eq + 1);
          if (value === "-") {
            if (stdinUsed) throw new UsageError("secrets set: only one value can come from stdin (-)");
            stdinUsed = true;
            value = await readStdin(io);
          }
          pairs.push([name, value]);
        }
        const client = api();
        const existing = await inScope(client, org, scope);
        for (const [name, value] of pairs) {
          const r = await put(client, org, scope, existing.get(name), name, value, values.description);
          out(`${r.action} ${name} (${r.secret.id}, version ${r.secret.version})`);
        }
        return 0;
      }
      case "delete": {
        noMore(1);
        const client = api();
        const s = await find(client, org, positionals[0], scopeOf(values));
        await client.request("DELETE", secretPath(org, s));
        return out(`deleted ${s.name} (${s.id})`);
      }
      case "versions": {
        noMore(1);
        const client = api();
        const s = await find(client, org, positionals[0], scopeOf(values));
        const versions: SecretVersion[] = [];
        let cursor: string | undefined;
        do {
          const page = await client.request<Page<SecretVersion>>("GET", secretPath(org, s, "/versions"), { query: { limit: "200", cursor } });
          versions.push(...page.items);
          cursor = page.next_cursor ?? undefined;
        } while (cursor);
        if (values.json) return json(versions);
        return out(
          table([
            ["VERSION", "CURRENT", "CREATED", "BY"],
            ...versions.map((v) => [String(v.version), v.current ? "*" : "", v.created_at, v.created_by ?? "-"]),
          ]),
        );
      }
      case "rollback": {
        noMore(1);
        const version = versionOf(values.version, true)!;
        const client = api();
        const s = await find(client, org, positionals[0], scopeOf(values));
        const r = await client.request<Secret>("POST", secretPath(org, s, "/$rollback"), {
          body: { version },
          headers: { "if-match": `"${s.version}"` },
        });
        return out(`rolled ${s.name} back to the value of version ${version}: now version ${r.version}`);
      }
      case "import":
        noMore(1);
        return importFile(positionals[0]);
      case "export": {
        noMore(0);
        const format = values.format;
        if (format !== "env" && format !== "json") throw new UsageError(`--format: env or json, not ${format.slice(0, 20)}`);
        const data = await resolveSecrets(api(), org, teamAndUser(values));
        if (format === "json") return json(Object.fromEntries(data.map((d) => [d.name, d.value])));
        const env = formatEnv(data);
        if ("unquotable" in env)
          throw new CliError(`no .env quoting carries the value of ${env.unquotable.join(", ")} unchanged (it holds ', \` and "): use --format json`);
        io.stdout.write(env.text);
        return 0;
      }
    }
    throw new UsageError(`unknown command: secrets ${sub}`);

    async function inScopeOrAll(scope: Scope): Promise<Map<string, Secret>> {
      // list without --team/--user: everything you can see, whatever its scope
      if (scope.kind === "org") return new Map((await listAll(api(), org, {})).map((s) => [s.id, s]));
      return inScope(api(), org, scope);
    }

    /**
     * Reads FILE as .env (env-file.ts) and writes each entry to the scope: new names are created, existing ones
     * skipped unless --overwrite (then updated as a new version). A file with any bad line (not an assignment, a name
     * that is not a secret name, a value over 64 KiB, a name twice) writes nothing: every bad line is named first.
     */
    async function importFile(file: string | undefined): Promise<number> {
      if (!file) throw new UsageError("secrets import needs a FILE.env");
      const scope = scopeOf(values);
      let text: string;
      try {
        text = await readFile(file, "utf8");
      } catch (e) {
        throw new CliError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
      const { entries, errors } = parseEnv(text);
      for (const e of entries) {
        if (!NAME.test(e.name) || e.name.length > MAX_NAME)
          errors.push({ line: e.line, message: `${e.name} is not a secret name (A–Z, 0–9 and _, not starting with a digit)` });
        else if (Buffer.byteLength(e.value) > MAX_VALUE_BYTES) errors.push({ line: e.line, message: `the value of ${e.name} is over 64 KiB` });
      }
      if (errors.length) {
        for (const e of errors.sort((a, b) => a.line - b.line)) io.stderr.write(`error: ${file}:${e.line}: ${e.message}\n`);
        io.stderr.write(`error: nothing imported: fix the line${errors.length > 1 ? "s" : ""} above\n`);
        return 1;
      }
      const client = api();
      const existing = await inScope(client, org, scope);
      const counts = { created: 0, updated: 0, skipped: 0 };
      for (const e of entries) {
        const held = existing.get(e.name);
        if (held && !values.overwrite) {
          counts.skipped++;
          continue;
        }
        const r = await put(client, org, scope, held, e.name, e.value);
        counts[r.action]++;
      }
      out(
        `imported ${file} into ${where(scope)}: ${counts.created} created, ${counts.updated} updated, ${counts.skipped} skipped` +
          (counts.skipped ? " (they exist; --overwrite replaces them)" : ""),
      );
      return 0;
    }
  });
}

/** GET …/secrets/resolve: what `export` and `plinth run` use (user over team over org, audited by the server). */
export async function resolveSecrets(api: ApiClient, org: string, q: { teamId?: string; userId?: string }): Promise<Resolved[]> {
  const r = await api.request<{ data: Resolved[] }>("GET", `/v1/orgs/${org}/secrets/resolve`, { query: { team_id: q.teamId, user_id: q.userId } });
  return r.data;
}
