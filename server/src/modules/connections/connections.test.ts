import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { sql } from "drizzle-orm";
import {
  BACKENDS,
  addMember,
  assertFieldError,
  assertProblem,
  createTestApp,
  makeOrg,
  signUp,
  uniqueSlug,
  type TestApp,
  type TestUser,
} from "../../../test/harness.ts";
import { newId } from "../../lib/ids.ts";
import { createOutboundGuard, parseOutboundAllow } from "../../lib/outbound.ts";
import { createTokenRefresher } from "./connections.oauth.ts";
import { atlassianRefresh, entraInvalidGrant, entraRefresh, googleRefresh, startTokenEndpoint, type MockTokenEndpoint } from "./connections.test-kit.ts";

const tok = (tag: string) => `${tag}-${randomBytes(12).toString("hex")}`;

for (const backend of BACKENDS) {
  describe(`integration connections (${backend})`, () => {
    let t: TestApp;
    let idp: MockTokenEndpoint;
    let owner: TestUser;
    let viewer: TestUser;
    let stranger: TestUser;
    let orgId: string;
    let otherOrgId: string;
    /** Every token and client secret handed to the server or sent by the provider: none may appear outside the vault's ciphertext. */
    const secretsSeen: string[] = [];

    before(async () => {
      idp = await startTokenEndpoint();
      // the token endpoint stand-in listens on 127.0.0.1, which the SSRF guard refuses unless the operator allows it
      t = await createTestApp({ backend, worker: false, env: { PLINTH_OUTBOUND_ALLOW: "127.0.0.1" } });
      owner = await signUp(t, "Olga Owner");
      viewer = await signUp(t, "Vera Viewer");
      stranger = await signUp(t, "Stan Stranger");
      orgId = await makeOrg(t, owner, "Connected Inc", uniqueSlug("con"));
      otherOrgId = await makeOrg(t, stranger, "Elsewhere Inc", uniqueSlug("con"));
      await addMember(t, orgId, viewer, "viewer");
    });
    after(async () => {
      await t.close();
      await idp.close();
    });

    const base = (path = "", org = orgId) => `/v1/orgs/${org}/connections${path}`;
    const rows = async (q: ReturnType<typeof sql>) => (await t.db.owner.execute(q)) as unknown as { rows: Record<string, unknown>[] };

    async function connect(body: Record<string, unknown> = {}, by = owner, org = orgId) {
      const tokens = { access_token: tok("at"), refresh_token: tok("rt"), client_secret: tok("cs") };
      secretsSeen.push(...Object.values(tokens));
      const res = await t.call(
        "POST",
        base("", org),
        { provider: "jira", name: "Jira Cloud", token_url: idp.url, client_id: "jira-client", expires_in: 3600, scope: "read:jira-work", ...tokens, ...body },
        by.access_token,
      );
      assert.equal(res.statusCode, 201, res.body);
      return { connection: res.json() as { id: string; secret_id: string; status: string; access_token_expires_at: string | null }, ...tokens };
    }
    const token = (id: string, by = owner) => t.call("POST", base(`/${id}/token`), undefined, by.access_token);
    const secretVersion = async (secretId: string) =>
      (await t.call("GET", `/v1/orgs/${orgId}/secrets/${secretId}`, undefined, owner.access_token)).json().version;
    const events = async (action: string) => (await t.deps.audit.list(orgId, {}, 1000)).filter((e) => e.action === action);

    it("creates a connection whose token set is only in the vault: create, get and list show no token", async () => {
      const { connection, access_token, refresh_token, client_secret } = await connect();
      assert.match(connection.id, /^con_/);
      assert.match(connection.secret_id, /^sec_/);
      assert.equal(connection.status, "active");
      const got = await t.call("GET", base(`/${connection.id}`), undefined, viewer.access_token);
      assert.equal(got.statusCode, 200, got.body);
      const listed = await t.call("GET", base("?provider=jira&status=active"), undefined, viewer.access_token);
      assert.equal(listed.statusCode, 200, listed.body);
      assert.ok(listed.json().items.some((c: { id: string }) => c.id === connection.id));
      for (const body of [JSON.stringify(connection), got.body, listed.body]) {
        for (const s of [access_token, refresh_token, client_secret]) assert.ok(!body.includes(s), "a token in a connection's metadata");
        assert.ok(!/refresh_token|client_secret|access_token"/.test(body), body);
      }
      // the vault secret is of kind oauth_connection, filterable, and its row holds ciphertext only
      const secrets = await t.call("GET", `/v1/orgs/${orgId}/secrets?kind=oauth_connection`, undefined, owner.access_token);
      assert.deepEqual(
        secrets
          .json()
          .items.filter((s: { id: string }) => s.id === connection.secret_id)
          .map((s: { kind: string }) => s.kind),
        ["oauth_connection"],
      );
      const generic = await t.call("GET", `/v1/orgs/${orgId}/secrets?kind=generic`, undefined, owner.access_token);
      assert.ok(!generic.json().items.some((s: { id: string }) => s.id === connection.secret_id));
      const audited = (await events("connection.created")).find((e) => e.targetId === connection.id);
      assert.ok(audited);
      assert.ok(!JSON.stringify(audited).includes(access_token));
    });

    it("the secret routes refuse to change, reveal, roll back, resolve or delete a connection's token set (409 naming the field)", async () => {
      const { connection, refresh_token } = await connect();
      const s = (path: string) => `/v1/orgs/${orgId}/secrets/${connection.secret_id}${path}`;
      assertProblem(await t.call("PATCH", s(""), { value: "hand-made" }, owner.access_token), 409, "SECRET_KIND_MANAGED", "value");
      assertProblem(
        await t.call("PATCH", s(""), { expires_at: new Date(Date.now() + 3600_000).toISOString() }, owner.access_token),
        409,
        "SECRET_KIND_MANAGED",
        "expires_at",
      );
      assertProblem(await t.call("POST", s("/reveal"), undefined, owner.access_token), 409, "SECRET_KIND_MANAGED", "secretId");
      assertProblem(await t.call("POST", s("/versions/1/reveal"), undefined, owner.access_token), 409, "SECRET_KIND_MANAGED", "secretId");
      assertProblem(await t.call("POST", s("/$rollback"), { version: 1 }, owner.access_token), 409, "SECRET_KIND_MANAGED", "secretId");
      assertProblem(await t.call("DELETE", s(""), undefined, owner.access_token), 409, "SECRET_KIND_MANAGED", "secretId");
      const lease = await t.call("POST", `/v1/orgs/${orgId}/secret-leases`, { secret_ids: [connection.secret_id], ttl_seconds: 60 }, owner.access_token);
      assertProblem(lease, 409, "SECRET_KIND_MANAGED", "secret_ids.0");
      const resolved = await t.call("GET", `/v1/orgs/${orgId}/secrets/resolve`, undefined, owner.access_token);
      assert.equal(resolved.statusCode, 200, resolved.body);
      assert.ok(!resolved.body.includes(connection.secret_id) && !resolved.body.includes(refresh_token));
      // metadata still changes (a description, tags), and the value stays at version 1
      assert.equal((await t.call("PATCH", s(""), { tags: ["jira"] }, owner.access_token)).statusCode, 200);
      assert.equal(await secretVersion(connection.secret_id), 1);
    });

    it("the token route returns the current access token (no-store, audited), never the refresh token or client secret", async () => {
      const { connection, access_token, refresh_token, client_secret } = await connect();
      const res = await token(connection.id);
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(res.headers["cache-control"], "no-store");
      const body = res.json();
      assert.equal(body.access_token, access_token);
      assert.equal(body.token_type, "Bearer");
      assert.equal(body.scope, "read:jira-work");
      assert.ok(!res.body.includes(refresh_token) && !res.body.includes(client_secret));
      assert.equal(idp.requests.length, 0, "a token valid for an hour is served without a refresh");
      const audited = (await events("connection.token_revealed")).filter((e) => e.targetId === connection.id);
      assert.equal(audited.length, 1);
      assert.ok(!JSON.stringify(audited).includes(access_token));
      // needs connections:use: a viewer reads metadata only
      assertProblem(await token(connection.id, viewer), 403, "FORBIDDEN", { permission: "connections:use" });
    });

    it("the scheduled scan enqueues one job per due connection with ids only; the job rotates the tokens into a new vault version", async () => {
      const first = await connect({ expires_in: 120, provider: "azure_devops", token_url: idp.url.replace("/oauth/token", "/tenant/oauth2/v2.0/token") });
      const newAccess = tok("at2");
      const newRefresh = tok("rt2");
      secretsSeen.push(newAccess, newRefresh);
      idp.on(first.refresh_token, () => entraRefresh(newAccess, newRefresh));
      assert.ok((await t.deps.connections.enqueueDue()) >= 1);
      assert.equal(await t.deps.connections.enqueueDue(), 0, "a pending refresh is not enqueued twice");
      const jobs = await rows(sql`select * from jobs where kind = 'connections.refresh'`);
      const mine = jobs.rows.filter((j) => (j.payload as { connection_id?: string }).connection_id === first.connection.id);
      assert.equal(mine.length, 1);
      assert.deepEqual(mine[0].payload, { org_id: orgId, connection_id: first.connection.id });
      const dump = JSON.stringify((await rows(sql`select * from jobs`)).rows);
      for (const s of secretsSeen) assert.ok(!dump.includes(s), "a token in the jobs table");

      const before = idp.requests.length;
      await t.deps.jobs.drain();
      const sent = idp.requests.slice(before).find((f) => f.get("refresh_token") === first.refresh_token);
      assert.ok(sent, "the provider got the refresh_token grant");
      assert.equal(sent.get("grant_type"), "refresh_token");
      assert.equal(sent.get("client_id"), "jira-client");
      assert.equal(sent.get("client_secret"), first.client_secret);
      assert.equal(await secretVersion(first.connection.secret_id), 2);
      const got = (await t.call("GET", base(`/${first.connection.id}`), undefined, owner.access_token)).json();
      assert.equal(got.status, "active");
      assert.ok(got.last_refreshed_at);
      assert.ok(new Date(got.access_token_expires_at).getTime() > Date.now() + 3000_000);
      assert.equal((await token(first.connection.id)).json().access_token, newAccess);
      const refreshed = (await events("connection.refreshed")).find((e) => e.targetId === first.connection.id);
      assert.ok(refreshed);
      assert.ok(!JSON.stringify(refreshed).includes(newAccess) && !JSON.stringify(refreshed).includes(newRefresh));
      // the next refresh sends the rotated refresh token
      idp.on(newRefresh, () => atlassianRefresh(tok("at3"), tok("rt3")));
      const now = await t.call("POST", base(`/${first.connection.id}/$refresh`), undefined, owner.access_token);
      assert.equal(now.statusCode, 200, now.body);
      assert.equal(idp.requests.at(-1)?.get("refresh_token"), newRefresh);
      assert.equal(await secretVersion(first.connection.secret_id), 3);
    });

    it("keeps the refresh token when the provider sends none (Google)", async () => {
      const { connection, refresh_token } = await connect({ provider: "google" });
      const a1 = tok("g1");
      const a2 = tok("g2");
      secretsSeen.push(a1, a2);
      let calls = 0;
      idp.on(refresh_token, () => googleRefresh(++calls === 1 ? a1 : a2));
      for (const expected of [a1, a2]) {
        const res = await t.call("POST", base(`/${connection.id}/$refresh`), undefined, owner.access_token);
        assert.equal(res.statusCode, 200, res.body);
        assert.equal(idp.requests.at(-1)?.get("refresh_token"), refresh_token, "the kept refresh token is sent again");
        assert.equal((await token(connection.id)).json().access_token, expected);
      }
      assert.equal(await secretVersion(connection.secret_id), 3);
    });

    it("the token route refreshes first when the access token expires within 60 seconds", async () => {
      const { connection, refresh_token, access_token } = await connect({ expires_in: 30 });
      const fresh = tok("fresh");
      secretsSeen.push(fresh);
      idp.on(refresh_token, () => atlassianRefresh(fresh, tok("rt")));
      const res = await token(connection.id);
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(res.json().access_token, fresh);
      assert.notEqual(res.json().access_token, access_token);
    });

    it("invalid_grant marks the connection refresh_failed with a sanitized last_error, audited; its token is no longer served", async () => {
      const { connection, refresh_token } = await connect();
      idp.on(refresh_token, entraInvalidGrant);
      const res = await t.call("POST", base(`/${connection.id}/$refresh`), undefined, owner.access_token);
      assertProblem(res, 409, "CONNECTION_REFRESH_FAILED", "connectionId");
      assert.ok(!res.body.includes("AADSTS"), res.body);
      const got = (await t.call("GET", base(`/${connection.id}`), undefined, owner.access_token)).json();
      assert.equal(got.status, "refresh_failed");
      assert.equal(got.last_error, "invalid_grant (HTTP 400)");
      const failed = (await events("connection.refresh_failed")).find((e) => e.targetId === connection.id);
      assert.ok(failed);
      assert.ok(!JSON.stringify(failed).includes("AADSTS"));
      assertProblem(await token(connection.id), 409, "CONNECTION_REFRESH_FAILED");
      assert.equal(await secretVersion(connection.secret_id), 1, "the token set is unchanged");
      // the job leaves it alone now: a failed connection is not due
      await t.deps.connections.enqueueDue();
      const queued = await rows(sql`select * from jobs where kind = 'connections.refresh'`);
      assert.ok(!queued.rows.some((j) => (j.payload as { connection_id?: string }).connection_id === connection.id));
    });

    it("a provider that is down (HTTP 503) or answers GitHub's error with HTTP 200: transient keeps it active, bad_refresh_token fails it", async () => {
      const down = await connect({ expires_in: 120 });
      idp.on(down.refresh_token, () => ({ status: 503, body: { error: "temporarily_unavailable", error_description: "try later" } }));
      assertProblem(await t.call("POST", base(`/${down.connection.id}/$refresh`), undefined, owner.access_token), 502, "CONNECTION_PROVIDER_UNAVAILABLE");
      let got = (await t.call("GET", base(`/${down.connection.id}`), undefined, owner.access_token)).json();
      assert.deepEqual([got.status, got.last_error], ["active", "the token endpoint answered HTTP 503"]);
      // the job fails so that it is retried with backoff
      await assert.rejects(t.deps.connections.runRefreshJob(orgId, down.connection.id), /HTTP 503/);
      assert.equal(await secretVersion(down.connection.secret_id), 1);

      const github = await connect({ provider: "github", token_url: idp.url.replace("/oauth/token", "/login/oauth/access_token") });
      idp.on(github.refresh_token, () => ({
        status: 200,
        body: { error: "bad_refresh_token", error_description: "The refresh token passed is incorrect or expired.", error_uri: "https://docs.github.com" },
      }));
      assertProblem(await t.call("POST", base(`/${github.connection.id}/$refresh`), undefined, owner.access_token), 409, "CONNECTION_REFRESH_FAILED");
      got = (await t.call("GET", base(`/${github.connection.id}`), undefined, owner.access_token)).json();
      assert.deepEqual([got.status, got.last_error], ["refresh_failed", "bad_refresh_token (HTTP 400)"]);
    });

    it("two refreshes racing: one calls the provider and wins, the other is told a refresh is under way; no token set is lost", async () => {
      const { connection, refresh_token } = await connect({ expires_in: 120 });
      let release!: () => void;
      const held = new Promise<void>((r) => {
        release = r;
      });
      const winner = tok("win");
      secretsSeen.push(winner);
      idp.on(refresh_token, async () => {
        await held;
        return atlassianRefresh(winner, tok("rt"));
      });
      const arrived = idp.nextRequest();
      const first = t.call("POST", base(`/${connection.id}/$refresh`), undefined, owner.access_token);
      await arrived;
      const second = await t.call("POST", base(`/${connection.id}/$refresh`), undefined, owner.access_token);
      assertProblem(second, 409, "CONNECTION_REFRESH_BUSY");
      // the job that comes meanwhile finds it taken and does nothing
      await t.deps.connections.runRefreshJob(orgId, connection.id);
      release();
      assert.equal((await first).statusCode, 200);
      assert.equal(idp.requests.filter((f) => f.get("refresh_token") === refresh_token).length, 1, "one call to the provider");
      assert.equal(await secretVersion(connection.secret_id), 2);
      assert.equal((await token(connection.id)).json().access_token, winner);
      // a writer whose claim lapsed and who read version 1 finds the secret moved on: nothing is written
      const late = await t.db.tx({ orgId }, (tx) =>
        t.deps.vault.managed.write(tx, orgId, connection.secret_id, "oauth_connection", "{}", 1, { type: "system", id: null }),
      );
      assert.equal(late, undefined);
      assert.equal(await secretVersion(connection.secret_id), 2);
      assert.equal((await token(connection.id)).json().access_token, winner);
    });

    it("revoking deletes the vault secret; the connection stays listed as revoked, serves no token, and revoking again changes nothing", async () => {
      const { connection } = await connect();
      assert.equal((await t.call("DELETE", base(`/${connection.id}`), undefined, owner.access_token)).statusCode, 204);
      const gone = await t.call("GET", `/v1/orgs/${orgId}/secrets/${connection.secret_id}`, undefined, owner.access_token);
      assertProblem(gone, 404, "SECRET_NOT_FOUND");
      assert.equal((await rows(sql`select count(*)::int as n from vault_secret_versions where secret_id = ${connection.secret_id}`)).rows[0].n, 0);
      const got = (await t.call("GET", base(`/${connection.id}`), undefined, owner.access_token)).json();
      assert.equal(got.status, "revoked");
      assert.equal(got.secret_id, null);
      assertProblem(await token(connection.id), 409, "CONNECTION_REVOKED");
      assertProblem(await t.call("POST", base(`/${connection.id}/$refresh`), undefined, owner.access_token), 409, "CONNECTION_REVOKED");
      assert.equal((await t.call("DELETE", base(`/${connection.id}`), undefined, owner.access_token)).statusCode, 204);
      assert.equal((await events("connection.revoked")).filter((e) => e.targetId === connection.id).length, 1);
    });

    it("another organization's members get 404 on every route of a connection, as for a missing one", async () => {
      const { connection } = await connect();
      const theirs = await connect({}, stranger, otherOrgId);
      for (const [method, path] of [
        ["GET", ""],
        ["DELETE", ""],
        ["POST", "/$refresh"],
        ["POST", "/token"],
      ] as const) {
        assertProblem(await t.call(method, base(`${path}`.replace(/^/, `/${connection.id}`)), undefined, stranger.access_token), 404, "NOT_FOUND");
        // our owner naming their connection in our org: the answer a missing one gets
        const foreign = await t.call(method, base(`/${theirs.connection.id}${path}`), undefined, owner.access_token);
        const missing = await t.call(method, base(`/${newId("connection")}${path}`), undefined, owner.access_token);
        assertProblem(foreign, 404, "CONNECTION_NOT_FOUND", "connectionId");
        assertProblem(missing, 404, "CONNECTION_NOT_FOUND", "connectionId");
      }
      const listed = await t.call("GET", base(), undefined, owner.access_token);
      assert.ok(!listed.body.includes(theirs.connection.id));
      assert.equal((await t.call("GET", base(`/${connection.id}`), undefined, owner.access_token)).json().status, "active");
    });

    it("the refresh goes through the SSRF guard: to the checked address, and not at all when the name resolves to a blocked one", async () => {
      const url = idp.url.replace("127.0.0.1", "localhost");
      const rt = tok("rt");
      idp.on(rt, () => atlassianRefresh(tok("at"), tok("rt")));
      // a resolver under the test's control: the name answers 127.0.0.1, allowed only where the allowlist says so
      const resolve = async () => [{ address: "127.0.0.1", family: 4 as const }];
      const allowed = createTokenRefresher({ timeoutSeconds: 5, outbound: createOutboundGuard({ allow: parseOutboundAllow("127.0.0.1"), resolve }) });
      const seen = idp.requests.length;
      assert.equal((await allowed({ tokenUrl: url, clientId: "c", clientSecret: null, refreshToken: rt })).ok, true);
      assert.equal(idp.requests.length, seen + 1);
      const blocked = createTokenRefresher({ timeoutSeconds: 5, outbound: createOutboundGuard({ allow: parseOutboundAllow(undefined), resolve }) });
      const refused = await blocked({ tokenUrl: url, clientId: "c", clientSecret: null, refreshToken: rt });
      assert.deepEqual(refused, { ok: false, terminal: false, error: "the token endpoint could not be reached" });
      assert.equal(idp.requests.length, seen + 1, "nothing reached the token endpoint");
    });

    it("bad input answers 400 problem+json naming the field, and creates nothing", async () => {
      const count = async () =>
        (await rows(sql`select (select count(*)::int from integration_connections) + (select count(*)::int from vault_secrets) as n`)).rows[0].n;
      const before = await count();
      const good = { provider: "jira", name: "Jira", token_url: idp.url, client_id: "c", access_token: "a", refresh_token: "r", expires_in: 3600 };
      const cases: [Record<string, unknown>, string][] = [
        [{ ...good, token_url: "not a url" }, "token_url"],
        [{ ...good, token_url: "ftp://auth.atlassian.com/oauth/token" }, "token_url"],
        [{ ...good, token_url: "http://auth.atlassian.com/oauth/token" }, "token_url"],
        [{ ...good, token_url: "https://user:pw@auth.atlassian.com/oauth/token" }, "token_url"],
        // the SSRF guard: private, metadata and (beyond the allowed 127.0.0.1) loopback addresses
        [{ ...good, token_url: "https://10.0.0.1/oauth/token" }, "token_url"],
        [{ ...good, token_url: "https://169.254.169.254/latest/meta-data/" }, "token_url"],
        [{ ...good, token_url: "http://127.0.0.2/oauth/token" }, "token_url"],
        [{ ...good, provider: "bitbucket" }, "provider"],
        [{ ...good, refresh_token: undefined }, "refresh_token"],
        [{ ...good, access_token: "" }, "access_token"],
        [{ ...good, client_id: undefined }, "client_id"],
        [{ ...good, expires_in: 0 }, "expires_in"],
        [{ ...good, expires_at: new Date().toISOString() }, "expires_at"],
        [{ ...good, expires_in: undefined, expires_at: "tomorrow" }, "expires_at"],
        [{ ...good, refresh_token_extra: "x" }, "refresh_token_extra"],
      ];
      for (const [body, field] of cases) assertFieldError(await t.call("POST", base(), body, owner.access_token), field);
      assertFieldError(await t.call("GET", base("?status=broken"), undefined, owner.access_token), "status");
      assertFieldError(await t.call("GET", base("/con_nope"), undefined, owner.access_token), "connectionId");
      assertProblem(await t.call("POST", base(), good, viewer.access_token), 403, "FORBIDDEN", { permission: "connections:manage" });
      assert.equal(await count(), before);
    });

    it("no token or client secret is stored outside the vault's ciphertext: connections, secrets, jobs and the audit log", async () => {
      const dump = JSON.stringify(
        await Promise.all(
          ["integration_connections", "vault_secrets", "jobs", "audit_events"].map(async (table) => (await rows(sql`select * from ${sql.raw(table)}`)).rows),
        ),
      );
      assert.ok(secretsSeen.length > 10);
      for (const s of secretsSeen) assert.ok(!dump.includes(s), "a token outside the vault's ciphertext");
    });
  });
}
