/**
 * The SSRF guard: every request Plinth makes to a URL a tenant gave it (webhook endpoints, OAuth token endpoints)
 * goes through here. A host is resolved once, every address it resolves to is checked, and the connection is made to
 * the checked address (a `lookup` that answers only it), so a name that resolves to a public address when checked
 * and to 127.0.0.1 a moment later (DNS rebinding) still reaches only the address that was checked. Redirects are
 * never followed; every request has a deadline.
 */
import { lookup as dnsLookup } from "node:dns/promises";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { BlockList, isIP, type LookupFunction } from "node:net";

/** What PLINTH_OUTBOUND_ALLOW permits: host names (exact, lower-case) and address ranges (CIDR or single addresses). */
export interface OutboundAllow {
  hosts: string[];
  cidrs: string[];
}

export type ResolvedAddress = { address: string; family: 4 | 6 };
/** How a host name becomes addresses (node:dns lookup with all: true by default; tests hand in their own). */
export type Resolver = (host: string) => Promise<ResolvedAddress[]>;

export type OutboundRefusal = "invalid_url" | "unresolvable" | "blocked_address";

/** A URL the guard will not call: `kind` says why, the message says it in a sentence fit for a 400's detail. */
export class OutboundRefused extends Error {
  readonly kind: OutboundRefusal;
  constructor(kind: OutboundRefusal, message: string) {
    super(message);
    this.name = "OutboundRefused";
    this.kind = kind;
  }
}

/** A URL that passed the guard, with the one address a request to it will connect to. */
export interface CheckedTarget {
  url: URL;
  host: string;
  address: string;
  family: 4 | 6;
  /** The operator allowlist named the host or every address (a caller may then accept plain http, say). */
  allowlisted: boolean;
}

export interface OutboundResponse {
  status: number;
  /** At most `maxBodyBytes` of the body. */
  body: Buffer;
  contentType: string | undefined;
  durationMs: number;
}

/** A request that got no HTTP answer: `timeout` (past the deadline) or `connection` (refused, reset, TLS). */
export class OutboundFailed extends Error {
  readonly kind: "timeout" | "connection";
  readonly durationMs: number;
  constructor(kind: "timeout" | "connection", message: string, durationMs: number) {
    super(message);
    this.name = "OutboundFailed";
    this.kind = kind;
    this.durationMs = durationMs;
  }
}

export interface OutboundGuard {
  /** Resolves the URL's host and checks every address: the target, or OutboundRefused. */
  check(url: string | URL): Promise<CheckedTarget>;
  /**
   * Checks the URL again (now, not when it was stored) and sends one request to the checked address: no redirect
   * followed, `timeoutMs` for the whole exchange (default 15 s). Rejects with OutboundRefused or OutboundFailed.
   */
  send(
    url: string | URL,
    req: { method: string; headers: Record<string, string>; body?: string | Buffer; timeoutMs?: number; maxBodyBytes?: number },
  ): Promise<OutboundResponse>;
}

export const OUTBOUND_TIMEOUT_MS = 15_000;

/**
 * Addresses no tenant-given URL may reach: loopback, RFC 1918 and unique-local, link-local (with the cloud metadata
 * services at 169.254.169.254 and fd00:ec2::254), CGNAT, multicast, unspecified and reserved ranges. BlockList checks
 * IPv4-mapped IPv6 addresses (::ffff:10.0.0.1) against the IPv4 rules too.
 */
function blockedRanges(): BlockList {
  const b = new BlockList();
  const v4: [string, number][] = [
    ["0.0.0.0", 8], // "this network", unspecified
    ["10.0.0.0", 8],
    ["100.64.0.0", 10], // CGNAT
    ["127.0.0.0", 8],
    ["169.254.0.0", 16], // link-local, cloud metadata
    ["172.16.0.0", 12],
    ["192.0.0.0", 24], // IETF protocol assignments
    ["192.168.0.0", 16],
    ["198.18.0.0", 15], // benchmarking
    ["224.0.0.0", 4], // multicast
    ["240.0.0.0", 4], // reserved, broadcast
  ];
  for (const [a, p] of v4) b.addSubnet(a, p, "ipv4");
  const v6: [string, number][] = [
    ["::", 128], // unspecified
    ["::1", 128],
    ["64:ff9b::", 96], // NAT64: an IPv4 address behind it may be private
    ["fc00::", 7], // unique local, fd00:ec2::254 among them
    ["fe80::", 10],
    ["ff00::", 8],
  ];
  for (const [a, p] of v6) b.addSubnet(a, p, "ipv6");
  return b;
}

const BLOCKED = blockedRanges();

/** Reads PLINTH_OUTBOUND_ALLOW's comma-separated entries; throws naming the first entry that is neither a host nor a CIDR. */
export function parseOutboundAllow(raw: string | undefined): OutboundAllow {
  const allow: OutboundAllow = { hosts: [], cidrs: [] };
  for (const entry of (raw ?? "").split(",").map((s) => s.trim().toLowerCase())) {
    if (!entry) continue;
    const [addr, prefix, extra] = entry.replace(/^\[|\]$/g, "").split("/");
    const family = isIP(addr);
    if (family) {
      const max = family === 4 ? 32 : 128;
      if (extra !== undefined || (prefix !== undefined && (!/^\d{1,3}$/.test(prefix) || Number(prefix) > max)))
        throw new Error(`"${entry}" is not a valid CIDR`);
      allow.cidrs.push(prefix === undefined ? `${addr}/${max}` : `${addr}/${prefix}`);
    } else if (/^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/.test(entry)) {
      allow.hosts.push(entry);
    } else {
      throw new Error(`"${entry}" is neither a host name nor an address or CIDR`);
    }
  }
  return allow;
}

const systemResolver: Resolver = async (host) => (await dnsLookup(host, { all: true, verbatim: true })) as ResolvedAddress[];

export function createOutboundGuard(opts: { allow: OutboundAllow; resolve?: Resolver }): OutboundGuard {
  const resolve = opts.resolve ?? systemResolver;
  const allowedHosts = new Set(opts.allow.hosts);
  const allowed = new BlockList();
  for (const c of opts.allow.cidrs) {
    const [addr, prefix] = c.split("/");
    allowed.addSubnet(addr, Number(prefix), isIP(addr) === 6 ? "ipv6" : "ipv4");
  }

  async function check(input: string | URL): Promise<CheckedTarget> {
    let url: URL;
    try {
      url = typeof input === "string" ? new URL(input) : input;
    } catch {
      throw new OutboundRefused("invalid_url", "is not a URL.");
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") throw new OutboundRefused("invalid_url", "must be an http or https URL.");
    const host = url.hostname.replace(/^\[|\]$/g, "").toLowerCase();
    let addresses: ResolvedAddress[];
    if (isIP(host)) addresses = [{ address: host, family: isIP(host) as 4 | 6 }];
    else {
      try {
        addresses = await resolve(host);
      } catch {
        addresses = [];
      }
      if (!addresses.length) throw new OutboundRefused("unresolvable", `names a host (${host}) that does not resolve.`);
    }
    const type = (a: ResolvedAddress) => (a.family === 6 ? "ipv6" : "ipv4");
    const allowlisted = allowedHosts.has(host) || addresses.every((a) => allowed.check(a.address, type(a)));
    if (!allowedHosts.has(host)) {
      // every address must pass: a name with one private address among public ones is refused
      for (const a of addresses) {
        if (BLOCKED.check(a.address, type(a)) && !allowed.check(a.address, type(a)))
          throw new OutboundRefused(
            "blocked_address",
            `resolves to ${a.address}, a loopback, private, link-local, multicast or metadata address (an operator may allow it in PLINTH_OUTBOUND_ALLOW).`,
          );
      }
    }
    return { url, host, address: addresses[0].address, family: addresses[0].family, allowlisted };
  }

  return {
    check,
    async send(input, req) {
      const target = await check(input);
      const timeoutMs = req.timeoutMs ?? OUTBOUND_TIMEOUT_MS;
      const maxBody = req.maxBodyBytes ?? 1024;
      // the connection goes to the checked address, whatever the name resolves to now
      const pinned: LookupFunction = (_host, options, cb) => {
        if ((options as { all?: boolean }).all) (cb as (e: null, a: ResolvedAddress[]) => void)(null, [{ address: target.address, family: target.family }]);
        else cb(null, target.address, target.family);
      };
      const started = performance.now();
      const elapsed = () => Math.round(performance.now() - started);
      const signal = AbortSignal.timeout(timeoutMs);
      const send = target.url.protocol === "https:" ? httpsRequest : httpRequest;
      return new Promise<OutboundResponse>((resolvePromise, reject) => {
        const fail = (e: unknown) =>
          reject(
            signal.aborted
              ? new OutboundFailed("timeout", `no answer within ${timeoutMs / 1000} s`, elapsed())
              : new OutboundFailed("connection", e instanceof Error ? ((e as NodeJS.ErrnoException).code ?? e.message) : String(e), elapsed()),
          );
        const r = send(target.url, { method: req.method, headers: req.headers, lookup: pinned, signal, agent: false }, (res: IncomingMessage) => {
          const chunks: Buffer[] = [];
          let size = 0;
          const done = () => {
            res.destroy();
            resolvePromise({
              status: res.statusCode ?? 0,
              body: Buffer.concat(chunks).subarray(0, maxBody),
              contentType: res.headers["content-type"],
              durationMs: elapsed(),
            });
          };
          res.on("data", (c: Buffer) => {
            if (size < maxBody) chunks.push(c);
            size += c.length;
            // enough read: the rest of a large answer is not waited for
            if (size >= maxBody) done();
          });
          res.on("end", done);
          res.on("error", (e) => (size > 0 ? done() : fail(e)));
        });
        r.on("error", fail);
        r.end(req.body);
      });
    },
  };
}
