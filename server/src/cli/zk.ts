/**
 * `plinth zk …`: zero-knowledge vaults from the command line. Everything secret happens here, in the client: the
 * passphrase, the vault key, the recovery phrase, the hardware key and every value stay in this process; the server
 * (over HTTP as the holder of PLINTH_TOKEN, api-client.ts) receives only what server/src/zk/ outputs.
 */
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { isId } from "../lib/ids.ts";
import {
  createUserKey,
  createVaultMaterial,
  decryptEntry,
  DEFAULT_THRESHOLD,
  encryptEntry,
  openSharedVaultKey,
  prepareRotation,
  recoverFromShares,
  recoverWithHardwareKey,
  recoverWithPhrase,
  releaseShare,
  sealVaultKeyTo,
  splitToHolders,
  unlockUserKey,
  unlockWithPassphrase,
  type UserKeyRecord,
  type VaultHeader,
  wrapWithPassphrase,
  ZkError,
} from "../zk/index.ts";
import { ApiError, asCommand, CliError, type ApiClient, type CliIo, createApiClient, processIo, UsageError } from "./api-client.ts";
import { orgOf } from "./secrets.ts";

export const ZK_USAGE = `plinth zk — zero-knowledge vaults (PLINTH_URL, PLINTH_TOKEN; --org defaults to PLINTH_ORG)

Usage:
  plinth zk init --org ORG [--name N] [--shares USR1,…,USR5 [--threshold 3]]
                           create your key pair (first time) and a vault; prints the 12-word recovery phrase and the
                           hardware backup key ONCE; --shares seals 3-of-5 social-recovery shares to those members
  plinth zk set NAME=VALUE… [--vault V]     encrypt and store (VALUE - reads stdin)
  plinth zk get NAME [--vault V]            decrypt and print the value
  plinth zk list [--vault V]                entry names and versions (no passphrase needed)
  plinth zk recover --phrase "w1 … w12" | --hardware-key KEY [--vault V]
                           unlock with the recovery phrase or hardware key and set a new passphrase
  plinth zk recover --shares [--vault V]    open a recovery request (with a new key pair under the new passphrase)
  plinth zk recover --shares --request ZKR [--vault V]
                           once enough holders released: rebuild the key and set the new passphrase
  plinth zk share --with USR [--vault V]    share your vault with a member (they read and write its entries)
  plinth zk unshare USR [--vault V]         remove a member: rotates the key, re-encrypts every entry, and prints
                                            a NEW recovery phrase and hardware key (the old ones open only the old key)
  plinth zk shares                          the shares you hold for others, and their owners' open requests
  plinth zk release --request ZKR           release the shares you hold to that request (confirm with its owner first)

The passphrase comes from PLINTH_ZK_PASSPHRASE or a prompt; for recover it is the NEW passphrase. Without --vault,
your oldest own vault in the org is used (--vault names one shared with you). The hardware key is 32 Base32 characters (A–Z, 2–7): it fits a YubiKey static
password (up to 38 characters), typed on a US layout; case, spaces and dashes are ignored.`;

const NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

interface Page<T> {
  items: T[];
  next_cursor: string | null;
}
interface VaultRecord extends VaultHeader {
  id: string;
  name: string;
  role: "owner" | "member";
  member_sealed_key: string | null;
  members: { user_id: string }[];
  recovery_phrase_wrapped_key: string;
  hardware_wrapped_key: string;
  share_threshold: number | null;
  shares: { id: string; holder_id: string; index: number }[];
}
interface EntryRecord {
  name: string;
  nonce: string;
  ciphertext: string;
  key_version: number;
  version: number;
  updated_at: string;
}
interface HeldShare {
  id: string;
  vault_id: string;
  owner_id: string;
  key_version: number;
  index: number;
  sealed_share: string;
  open_requests: { id: string; public_key: string; created_at: string; released: boolean }[];
}

const OPTIONS = {
  org: { type: "string" },
  vault: { type: "string" },
  name: { type: "string", default: "default" },
  shares: { type: "string" },
  threshold: { type: "string" },
  phrase: { type: "string" },
  "hardware-key": { type: "string" },
  request: { type: "string" },
  with: { type: "string" },
} as const;
/** `recover --shares` is a switch; `init --shares` names the holders. */
const RECOVER_OPTIONS = { ...OPTIONS, shares: { type: "boolean", default: false } } as const;

/** The passphrase: PLINTH_ZK_PASSPHRASE, else asked on the terminal without echo. */
async function passphrase(io: CliIo, prompt: string): Promise<string> {
  const env = io.env.PLINTH_ZK_PASSPHRASE;
  if (env) return env;
  if (!process.stdin.isTTY || io.stdin !== process.stdin) throw new CliError("set PLINTH_ZK_PASSPHRASE, or run in a terminal to be asked for it");
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  const muted = rl as unknown as { _writeToOutput: (s: string) => void };
  process.stderr.write(prompt);
  muted._writeToOutput = () => {};
  const answer = await new Promise<string>((resolve) => rl.question("", resolve));
  rl.close();
  process.stderr.write("\n");
  return answer;
}

async function readStdin(io: CliIo): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of io.stdin) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks)
    .toString("utf8")
    .replace(/\r?\n$/, "");
}

/** `plinth zk <sub> …`; returns the exit code. */
export function zkCommand(args: string[], io: CliIo = processIo()): Promise<number> {
  return asCommand(io, ZK_USAGE, async () => {
    const [sub, ...rest] = args;
    if (sub === undefined || sub === "help" || sub === "--help" || sub === "-h") {
      io.stdout.write(`${ZK_USAGE}\n`);
      return 0;
    }
    const parsed =
      sub === "recover"
        ? parseArgs({ args: rest, options: RECOVER_OPTIONS, allowPositionals: true, strict: true })
        : parseArgs({ args: rest, options: OPTIONS, allowPositionals: true, strict: true });
    const { values, positionals } = parsed;
    const byShares = sub === "recover" && parsed.values.shares === true;
    const out = (s: string) => io.stdout.write(s.endsWith("\n") ? s : `${s}\n`);
    const org = orgOf(values, io.env);
    const api: ApiClient = createApiClient(io.env);
    const base = `/v1/orgs/${org}`;
    try {
      return await dispatch();
    } catch (e) {
      // the client library's failures are the user's to act on (wrong passphrase, phrase, share…)
      if (e instanceof ZkError) throw new CliError(`${e.message} (${e.code})`);
      throw e;
    }

    async function dispatch(): Promise<number> {
      switch (sub) {
        case "init":
          return init();
        case "set":
          return set();
        case "get": {
          if (positionals.length !== 1 || !NAME.test(positionals[0])) throw new UsageError("zk get needs one NAME");
          const vault = await loadVault();
          const key = await unlock(vault);
          const entry = await api.request<EntryRecord>("GET", `${base}/zk-vaults/${vault.id}/entries/${positionals[0]}`);
          const value = decryptEntry(key, { vaultId: vault.id, name: entry.name, keyVersion: entry.key_version }, entry);
          io.stdout.write(io.stdout.isTTY ? `${value}\n` : value);
          return 0;
        }
        case "list": {
          const vault = await loadVault();
          const entries = await all<EntryRecord>(`${base}/zk-vaults/${vault.id}/entries`);
          if (!entries.length) out(`no entries in vault ${vault.id}`);
          for (const e of entries) out(`${e.name}\tversion ${e.version}\t${e.updated_at}`);
          return 0;
        }
        case "recover":
          return recover();
        case "shares": {
          const held = await all<HeldShare>(`${base}/zk-shares`);
          if (!held.length) out("you hold no shares");
          for (const h of held) {
            const open = h.open_requests.map((r) => `${r.id}${r.released ? " (released)" : ""}`).join(", ") || "no open request";
            out(`${h.id}  share ${h.index} of vault ${h.vault_id} (owner ${h.owner_id}): ${open}`);
          }
          return 0;
        }
        case "release":
          return release();
        case "share":
          return share();
        case "unshare":
          return unshare();
      }
      throw new UsageError(`unknown command: zk ${sub}`);
    }

    async function all<T>(path: string): Promise<T[]> {
      const items: T[] = [];
      let cursor: string | undefined;
      do {
        const p = await api.request<Page<T>>("GET", path, { query: { limit: "200", cursor } });
        items.push(...p.items);
        cursor = p.next_cursor ?? undefined;
      } while (cursor);
      return items;
    }

    async function loadVault(): Promise<VaultRecord> {
      let id = values.vault;
      if (id !== undefined && !isId("zkVault", id)) throw new UsageError(`--vault: ${id.slice(0, 40)} is not a zkv_… id`);
      if (id === undefined) {
        const first = (await all<{ id: string; role: string }>(`${base}/zk-vaults`)).find((v) => v.role === "owner");
        if (!first) throw new CliError("you have no zero-knowledge vault in this organization: run plinth zk init");
        id = first.id;
      }
      return api.request<VaultRecord>("GET", `${base}/zk-vaults/${id}`);
    }

    /** The vault key: the owner's through the passphrase, a member's through their own key pair. */
    async function unlock(vault: VaultRecord): Promise<Uint8Array> {
      const pass = await passphrase(io, "Passphrase: ");
      if (vault.role === "owner") return unlockWithPassphrase(vault, pass);
      const me = await myKey();
      if (!me.key || !vault.member_sealed_key) throw new CliError("this vault is shared with you, but you have no zero-knowledge key to open it");
      const keys = await unlockUserKey(me.key, pass, { orgId: org, userId: me.user_id });
      return openSharedVaultKey({ userId: me.user_id, ...keys }, vault, vault.member_sealed_key);
    }

    async function publicKeyOf(userId: string) {
      const k = await api.request<{ public_key: string }>("GET", `${base}/zk-keys/${userId}`).catch((e: unknown) => {
        if (e instanceof ApiError && e.status === 404) throw new CliError(`${userId} has no zero-knowledge key yet: they run plinth zk init first`);
        throw e;
      });
      return { userId, publicKey: k.public_key };
    }

    async function share(): Promise<number> {
      const userId = values.with;
      if (userId === undefined || !isId("user", userId)) throw new UsageError("zk share needs --with usr_…");
      const vault = await loadVault();
      if (vault.role !== "owner") throw new CliError("only the vault's owner shares it");
      const member = await publicKeyOf(userId);
      const key = await unlock(vault);
      await api.request("PUT", `${base}/zk-vaults/${vault.id}/members/${userId}`, {
        body: { key_version: vault.key_version, sealed_key: sealVaultKeyTo(key, vault.id, vault.key_version, member) },
      });
      out(`shared vault ${vault.id} with ${userId}`);
      return 0;
    }

    async function unshare(): Promise<number> {
      const userId = positionals[0];
      if (positionals.length !== 1 || !isId("user", userId)) throw new UsageError("zk unshare needs one usr_… id");
      const vault = await loadVault();
      if (vault.role !== "owner") throw new CliError("only the vault's owner removes members");
      if (!vault.members.some((m) => m.user_id === userId)) throw new CliError(`vault ${vault.id} is not shared with ${userId}`);
      const pass = await passphrase(io, "Passphrase: ");
      const oldKey = await unlockWithPassphrase(vault, pass);
      const members = [];
      for (const m of vault.members) if (m.user_id !== userId) members.push(await publicKeyOf(m.user_id));
      const holders = [];
      for (const h of vault.shares) holders.push(await publicKeyOf(h.holder_id));
      const entries = await all<EntryRecord & { nonce: string; ciphertext: string }>(`${base}/zk-vaults/${vault.id}/entries`);
      const r = await prepareRotation({ vault, oldKey, passphrase: pass, entries, members, holders, threshold: vault.share_threshold ?? undefined });
      await api.request("POST", `${base}/zk-vaults/${vault.id}/$rotate`, { body: r.body });
      out(`removed ${userId} from vault ${vault.id}: the key is now at version ${r.body.key_version}, ${entries.length} entries re-encrypted`);
      if (holders.length) out(`social recovery: new shares for the same ${holders.length} holders`);
      out("");
      out("NEW recovery phrase (the old one no longer works; write this down, it is shown only now):");
      out(`  ${r.recoveryPhrase}`);
      out("NEW hardware backup key (reprogram your YubiKey; shown only now):");
      out(`  ${r.hardwareKey}`);
      return 0;
    }

    async function myKey(): Promise<{ user_id: string; key: UserKeyRecord | null }> {
      return api.request("GET", `${base}/zk-keys/me`);
    }

    async function init(): Promise<number> {
      const holders = typeof values.shares === "string" ? values.shares.split(",").map((s) => s.trim()) : [];
      for (const h of holders) if (!isId("user", h)) throw new UsageError(`--shares: ${h.slice(0, 40)} is not a usr_… id`);
      const threshold = values.threshold === undefined ? DEFAULT_THRESHOLD : Number(values.threshold);
      if (holders.length && (!Number.isInteger(threshold) || threshold < 2 || threshold > holders.length))
        throw new UsageError(`--threshold: from 2 to the ${holders.length} holders`);
      const pass = await passphrase(io, "New passphrase: ");
      const me = await myKey();
      // one passphrase for your key pair and your vault: the key pair is made once, and must open with it
      if (me.key) await unlockUserKey(me.key, pass, { orgId: org, userId: me.user_id });
      else await api.request("PUT", `${base}/zk-keys/me`, { body: (await createUserKey(pass, { orgId: org, userId: me.user_id })).record });
      if (holders.includes(me.user_id)) throw new CliError("--shares: your own share would not help you recover; name other members");
      // every holder's public key before anything is made: a missing one leaves no half-made vault behind
      const pubs = [];
      for (const userId of holders) pubs.push(await publicKeyOf(userId));
      const made = await createVaultMaterial({ passphrase: pass });
      const { id } = await api.request<{ id: string }>("POST", `${base}/zk-vaults`, { body: { name: values.name, ...made.material } });
      out(`created vault ${id} (${values.name})`);
      if (holders.length) {
        const shares = await splitToHolders(made.vaultKey, id, 1, pubs, threshold);
        await api.request("PUT", `${base}/zk-vaults/${id}/shares`, { body: { threshold, key_version: 1, shares } }).catch(async (e: unknown) => {
          await api.request("DELETE", `${base}/zk-vaults/${id}`); // no vault without the recovery asked for
          throw e;
        });
        out(`social recovery: any ${threshold} of ${holders.length} shares (held by ${holders.join(", ")})`);
      }
      out("");
      out("Recovery phrase (write it down; it is shown only now):");
      out(`  ${made.recoveryPhrase}`);
      out("Hardware backup key (program it as a YubiKey static password or keep it offline; shown only now):");
      out(`  ${made.hardwareKey}`);
      return 0;
    }

    async function set(): Promise<number> {
      if (!positionals.length) throw new UsageError("zk set needs NAME=VALUE");
      const pairs: [string, string][] = [];
      for (const p of positionals) {
        const eq = p.indexOf("=");
        const name = p.slice(0, eq);
        if (eq <= 0 || !NAME.test(name)) throw new UsageError(`zk set: ${p.slice(0, 40)} is not NAME=VALUE (letters, digits, _)`);
        pairs.push([name, p.slice(eq + 1) === "-" ? await readStdin(io) : p.slice(eq + 1)]);
      }
      const vault = await loadVault();
      const key = await unlock(vault);
      const existing = new Map((await all<EntryRecord>(`${base}/zk-vaults/${vault.id}/entries`)).map((e) => [e.name, e]));
      for (const [name, value] of pairs) {
        const enc = encryptEntry(key, { vaultId: vault.id, name, keyVersion: vault.key_version }, value);
        const body = { ...enc, key_version: vault.key_version };
        const had = existing.get(name);
        const e = had
          ? await api.request<EntryRecord>("PUT", `${base}/zk-vaults/${vault.id}/entries/${name}`, { body, headers: { "if-match": `"${had.version}"` } })
          : await api.request<EntryRecord>("POST", `${base}/zk-vaults/${vault.id}/entries`, { body: { name, ...body } });
        out(`${had ? "updated" : "created"} ${name} (version ${e.version})`);
      }
      return 0;
    }

    async function setNewPassphrase(vault: VaultRecord, key: Uint8Array, pass: string, how: string): Promise<number> {
      const wrap = await wrapWithPassphrase(key, vault.key_version, pass);
      await api.request("PUT", `${base}/zk-vaults/${vault.id}/passphrase`, { body: { ...wrap, recovered_with: how } });
      out(`recovered vault ${vault.id}: it now opens with the new passphrase`);
      return 0;
    }

    async function recover(): Promise<number> {
      const ways = [values.phrase !== undefined, values["hardware-key"] !== undefined, byShares].filter(Boolean).length;
      if (ways !== 1) throw new UsageError("zk recover needs one of --phrase, --hardware-key or --shares");
      const vault = await loadVault();
      if (values.phrase !== undefined) {
        const key = recoverWithPhrase(vault, vault.recovery_phrase_wrapped_key, values.phrase);
        return setNewPassphrase(vault, key, await passphrase(io, "New passphrase: "), "recovery_phrase");
      }
      if (values["hardware-key"] !== undefined) {
        const key = recoverWithHardwareKey(vault, vault.hardware_wrapped_key, values["hardware-key"]);
        return setNewPassphrase(vault, key, await passphrase(io, "New passphrase: "), "hardware_key");
      }
      if (vault.share_threshold === null) throw new CliError("this vault has no social-recovery shares");
      const pass = await passphrase(io, "New passphrase: ");
      const me = await myKey();
      const owner = { orgId: org, userId: me.user_id };
      if (values.request === undefined) {
        // the old private key is lost with the passphrase: a new pair, under the new passphrase, receives the shares
        const { record } = await createUserKey(pass, owner);
        await api.request("PUT", `${base}/zk-keys/me`, { body: record });
        const r = await api.request<{ id: string }>("POST", `${base}/zk-vaults/${vault.id}/recovery-requests`, { body: { public_key: record.public_key } });
        out(`opened recovery request ${r.id}: ask ${vault.share_threshold} of the holders (${vault.shares.map((s) => s.holder_id).join(", ")}) to run`);
        out(`  plinth zk release --org ${org} --request ${r.id}`);
        out(`then run: plinth zk recover --org ${org} --shares --request ${r.id}`);
        return 0;
      }
      if (!isId("zkRecoveryRequest", values.request)) throw new UsageError(`--request: ${values.request.slice(0, 40)} is not a zkr_… id`);
      if (!me.key) throw new CliError("you have no zero-knowledge key: open a request first (plinth zk recover --shares)");
      const keys = await unlockUserKey(me.key, pass, owner);
      const request = await api.request<{ releases: { index: number; sealed_share: string }[] }>(
        "GET",
        `${base}/zk-vaults/${vault.id}/recovery-requests/${values.request}`,
      );
      const key = await recoverFromShares({ ...vault, share_threshold: vault.share_threshold }, keys, values.request, request.releases);
      return setNewPassphrase(vault, key, pass, "shares");
    }

    async function release(): Promise<number> {
      const requestId = values.request;
      if (requestId === undefined || !isId("zkRecoveryRequest", requestId)) throw new UsageError("zk release needs --request zkr_…");
      const held = (await all<HeldShare>(`${base}/zk-shares`)).filter((h) => h.open_requests.some((r) => r.id === requestId && !r.released));
      if (!held.length) throw new CliError(`you hold no unreleased share for an open request ${requestId}`);
      const me = await myKey();
      if (!me.key) throw new CliError("you have no zero-knowledge key in this organization");
      const keys = await unlockUserKey(me.key, await passphrase(io, "Passphrase: "), { orgId: org, userId: me.user_id });
      for (const h of held) {
        const request = h.open_requests.find((r) => r.id === requestId)!;
        const sealed = releaseShare(keys, { id: h.vault_id, key_version: h.key_version }, { ...h, holder_user_id: me.user_id }, request);
        await api.request("POST", `${base}/zk-vaults/${h.vault_id}/shares/${h.id}/$release`, { body: { request_id: requestId, sealed_share: sealed } });
        out(`released share ${h.index} of vault ${h.vault_id} to ${requestId}`);
      }
      return 0;
    }
  });
}
