import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { createOutboundGuard, OutboundFailed, OutboundRefused, parseOutboundAllow, type Resolver } from "./outbound.ts";

const none = parseOutboundAllow(undefined);
const refusedAs = (kind: string) => (e: unknown) => e instanceof OutboundRefused && e.kind === kind;

describe("outbound SSRF guard", () => {
  let server: Server;
  let port = 0;
  const seen: IncomingMessage[] = [];
  let hang = false;
  before(async () => {
    server = createServer((req, res) => {
      seen.push(req);
      if (hang) return; // never answers: the deadline must end it
      if (req.url === "/redirect") {
        res.writeHead(302, { location: "http://169.254.169.254/latest/meta-data/" }).end();
        return;
      }
      res.writeHead(200, { "content-type": "text/plain" }).end("x".repeat(5000));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it("refuses loopback, private, link-local, metadata, CGNAT, multicast, unspecified and IPv4-mapped forms of them", async () => {
    const guard = createOutboundGuard({ allow: none });
    for (const url of [
      "http://127.0.0.1/",
      "http://127.9.9.9/",
      "http://10.0.0.1/",
      "http://172.16.5.4/",
      "http://192.168.1.1/",
      "http://169.254.169.254/latest/meta-data/",
      "http://100.64.0.1/",
      "http://224.0.0.1/",
      "http://0.0.0.0/",
      "http://[::1]/",
      "http://[::]/",
      "http://[fd00:ec2::254]/",
      "http://[fc00::1]/",
      "http://[fe80::1]/",
      "http://[ff02::1]/",
      "http://[::ffff:127.0.0.1]/",
      "http://[::ffff:a9fe:a9fe]/",
      "http://2130706433/", // 127.0.0.1 as one number
      "http://0x7f.1/",
    ]) {
      await assert.rejects(guard.check(url), refusedAs("blocked_address"), url);
    }
  });

  it("refuses a name that resolves to a blocked address, even when only one of its addresses is", async () => {
    const resolve: Resolver = async (h) =>
      h === "mixed.test"
        ? [
            { address: "93.184.215.14", family: 4 },
            { address: "10.1.2.3", family: 4 },
          ]
        : [{ address: "127.0.0.1", family: 4 }];
    const guard = createOutboundGuard({ allow: none, resolve });
    await assert.rejects(guard.check("https://mixed.test/"), refusedAs("blocked_address"));
    await assert.rejects(guard.check("http://localhost/"), refusedAs("blocked_address"));
    await assert.rejects(guard.check("ftp://example.com/"), refusedAs("invalid_url"));
    await assert.rejects(guard.check("not a url"), refusedAs("invalid_url"));
  });

  it("a name that does not resolve is refused", async () => {
    const guard = createOutboundGuard({ allow: none, resolve: async () => [] });
    await assert.rejects(guard.check("https://nowhere.test/"), refusedAs("unresolvable"));
  });

  it("lets public addresses through, and what the operator allowlist names (addresses, CIDRs, host names)", async () => {
    const resolve: Resolver = async () => [{ address: "10.1.2.3", family: 4 }];
    assert.equal((await createOutboundGuard({ allow: none }).check("https://93.184.215.14/x")).address, "93.184.215.14");
    const guard = createOutboundGuard({ allow: parseOutboundAllow("127.0.0.1, 10.1.0.0/16, hooks.internal"), resolve });
    assert.equal((await guard.check("http://127.0.0.1:9/")).address, "127.0.0.1");
    assert.equal((await guard.check("http://[::ffff:127.0.0.1]/")).address, "::ffff:7f00:1");
    assert.equal((await guard.check("http://anything.internal/")).address, "10.1.2.3");
    await assert.rejects(guard.check("http://127.0.0.2/"), refusedAs("blocked_address"));
    const byName = createOutboundGuard({ allow: parseOutboundAllow("hooks.internal"), resolve });
    assert.equal((await byName.check("http://HOOKS.internal/")).address, "10.1.2.3");
    await assert.rejects(byName.check("http://other.internal/"), refusedAs("blocked_address"));
  });

  it("parses PLINTH_OUTBOUND_ALLOW and refuses what is neither a host nor a CIDR", () => {
    assert.deepEqual(parseOutboundAllow(" 127.0.0.1 ,::1, 10.0.0.0/8,Example.COM,"), {
      hosts: ["example.com"],
      cidrs: ["127.0.0.1/32", "::1/128", "10.0.0.0/8"],
    });
    for (const bad of ["10.0.0.0/33", "::1/129", "http://x", "a b", "10.0.0.0/8/1"]) assert.throws(() => parseOutboundAllow(bad), Error, bad);
  });

  it("connects to the checked address, not to what the name resolves to later (DNS rebinding)", async () => {
    let calls = 0;
    // the first answer is the one checked; a rebinding resolver answers a blocked address afterwards
    const resolve: Resolver = async () => (calls++ === 0 ? [{ address: "127.0.0.1", family: 4 }] : [{ address: "10.9.9.9", family: 4 }]);
    const guard = createOutboundGuard({ allow: parseOutboundAllow("127.0.0.1"), resolve });
    seen.length = 0;
    const res = await guard.send(`http://rebind.test:${port}/hook`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    assert.equal(res.status, 200);
    assert.equal(calls, 1, "resolved once: the request used the checked address");
    assert.equal(seen[0].headers.host, `rebind.test:${port}`);
    // at the next send the name resolves to 10.9.9.9: refused before any connection
    await assert.rejects(guard.send(`http://rebind.test:${port}/hook`, { method: "POST", headers: {} }), refusedAs("blocked_address"));
    assert.equal(seen.length, 1);
  });

  it("reads at most maxBodyBytes, follows no redirect, and gives up at the deadline", async () => {
    const guard = createOutboundGuard({ allow: parseOutboundAllow("127.0.0.1") });
    const big = await guard.send(`http://127.0.0.1:${port}/`, { method: "GET", headers: {} });
    assert.equal(big.body.length, 1024);
    const redirect = await guard.send(`http://127.0.0.1:${port}/redirect`, { method: "GET", headers: {} });
    assert.equal(redirect.status, 302, "the redirect is the answer; it is not followed");
    hang = true;
    try {
      await assert.rejects(
        guard.send(`http://127.0.0.1:${port}/slow`, { method: "POST", headers: {}, body: "{}", timeoutMs: 200 }),
        (e: unknown) => e instanceof OutboundFailed && e.kind === "timeout",
      );
    } finally {
      hang = false;
    }
    await assert.rejects(
      guard.send("http://127.0.0.1:9/", { method: "POST", headers: {} }),
      (e: unknown) => e instanceof OutboundFailed && e.kind === "connection",
    );
  });
});
