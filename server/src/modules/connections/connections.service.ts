import type { Database, Executor } from "../../db/client.ts";
import type { JobQueue } from "../../jobs/queue.ts";
import type { Clock } from "../../lib/clock.ts";
import { isAppError, platformError } from "../../lib/errors.ts";
import { newId } from "../../lib/ids.ts";
import { OutboundRefused, type OutboundGuard } from "../../lib/outbound.ts";
import type { OrgMembership } from "../access/access.service.ts";
import type { AuditActor, AuditService } from "../audit/audit.service.ts";
import type { ManagedSecrets } from "../vault/index.ts";
import { connectionsError } from "./connections.errors.ts";
import { isLoopback, type TokenRefresher } from "./connections.oauth.ts";
import type { ConnectionFilter, ConnectionRow, ConnectionsRepo } from "./connections.repo.ts";
import type { Provider } from "./connections.schemas.ts";

/** The refresh job (payload: org_id and connection_id, nothing else) and the scheduled scan that enqueues it. */
export const REFRESH_JOB = "connections.refresh";
export const REFRESH_DUE_JOB = "connections.refresh-due";
export const REFRESH_DUE_EVERY_MS = 60_000;
/** The scan refreshes access tokens that expire within this long. */
export const REFRESH_AHEAD_MS = 5 * 60_000;
/** The token route refreshes first when the access token expires within this long. */
export const TOKEN_MIN_LIFE_MS = 60_000;
/** How long a refresh holds its connection (the call to the provider times out well before). */
const CLAIM_MS = 30_000;
/** A scan does not enqueue a connection again while its last job may still be pending. */
const REQUEUE_AFTER_MS = 10 * 60_000;
const SYSTEM: AuditActor = { type: "system", id: null };

export interface CreateConnectionInput {
  provider: Provider;
  name: string;
  token_url: string;
  client_id: string;
  client_secret?: string;
  access_token: string;
  refresh_token: string;
  token_type?: string;
  expires_in?: number;
  expires_at?: string;
  scope?: string;
}

/** The token set, as the vault secret (kind oauth_connection) holds it: the only place any of it is kept. */
interface TokenSet {
  v: 1;
  access_token: string;
  refresh_token: string;
  token_type: string;
  scope: string | null;
  expires_at: string | null;
  client_secret: string | null;
}

/** Whether a refresh ran, found the connection in another's hands, or failed (recorded on the connection). */
export type RefreshResult =
  | { outcome: "refreshed"; row: ConnectionRow }
  | { outcome: "not_due" | "busy"; row: ConnectionRow }
  | { outcome: "failed"; row: ConnectionRow; terminal: boolean };

const invalid = (field: string, detail: string) => platformError("VALIDATION_FAILED", detail, { field });
const notFound = (id: string) => connectionsError("CONNECTION_NOT_FOUND", `No connection ${id.slice(0, 40)} in this organization.`, { field: "connectionId" });

/** https, or http to this machine; no credentials or fragment in it (the URL is shown in lists). */
function tokenUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw invalid("token_url", "token_url is not a URL.");
  }
  if (url.protocol !== "https:" && !(url.protocol === "http:" && isLoopback(url)))
    throw invalid("token_url", "token_url must be https (http only to a loopback address).");
  if (url.username || url.password || url.hash) throw invalid("token_url", "token_url must carry no credentials and no fragment.");
  return url.href;
}

function parseTokenSet(value: string): TokenSet {
  const t = JSON.parse(value) as TokenSet;
  if (t.v !== 1 || typeof t.access_token !== "string" || typeof t.refresh_token !== "string") throw new Error("not a connection token set");
  return t;
}

/** The name of a connection's vault secret (env-var style, as every secret's): CON_ and its id. */
const secretName = (id: string) => id.toUpperCase();

/**
 * Integration OAuth connections: the row says who the tokens are with and when they expire; the token set (access
 * and refresh tokens, client secret) lives only in a vault secret of kind oauth_connection, read and written through
 * the vault's managed-secret functions in this module's transactions. Jobs carry ids; nothing outside the vault
 * carries a token. A refresh calls the provider outside any transaction: it claims the connection (one statement,
 * so a second refresh waits its turn), reads the token set, calls, then writes the new version only if the secret is
 * still at the version it read: two refreshes never both win, and no token set is lost.
 */
export function createConnectionsService(deps: {
  db: Database;
  clock: Clock;
  repo: ConnectionsRepo;
  secrets: ManagedSecrets;
  audit: Pick<AuditService, "record">;
  jobs: Pick<JobQueue, "enqueue" | "kick">;
  refresher: TokenRefresher;
  /** The SSRF guard: token_url must not reach loopback, private or metadata addresses (unless PLINTH_OUTBOUND_ALLOW allows). */
  outbound: Pick<OutboundGuard, "check">;
}) {
  const { db, clock, repo, secrets, audit, jobs, refresher, outbound } = deps;

  /** token_url's host, resolved now: refused when it reaches an address the guard blocks (at create and before each refresh). */
  async function guardTokenUrl(url: string): Promise<OutboundRefused | undefined> {
    try {
      await outbound.check(url);
      return undefined;
    } catch (e) {
      if (e instanceof OutboundRefused) return e;
      throw e;
    }
  }
  const KIND = "oauth_connection" as const;

  async function load(ex: Executor, orgId: string, id: string, lock = false): Promise<ConnectionRow> {
    const row = await repo.find(ex, orgId, id, lock);
    if (!row) throw notFound(id);
    return row;
  }

  function requireUsable(row: ConnectionRow): void {
    if (row.status === "revoked") throw connectionsError("CONNECTION_REVOKED", "The connection was revoked: create a new one.", { field: "connectionId" });
    if (row.status === "refresh_failed")
      throw connectionsError(
        "CONNECTION_REFRESH_FAILED",
        `The provider refused the last refresh (${row.lastError ?? "unknown"}): connect the integration again.`,
        {
          field: "connectionId",
        },
      );
  }

  async function tokenSetOf(tx: Executor, row: ConnectionRow): Promise<{ set: TokenSet; version: number }> {
    const stored = row.secretId ? await secrets.read(tx, row.orgId, row.secretId, KIND) : undefined;
    if (!stored) throw new Error(`connection ${row.id}: its token set is missing from the vault`);
    return { set: parseTokenSet(stored.value), version: stored.version };
  }

  /**
   * The one refresh path (job, $refresh, the token route). `force`: refresh even when the token is not due (the
   * scan's jobs refresh only what expires within REFRESH_AHEAD_MS, so a late job does no needless refresh).
   */
  async function refresh(orgId: string, id: string, actor: AuditActor, opts: { force: boolean; dueWithinMs?: number }): Promise<RefreshResult> {
    const now = clock.now();
    const until = new Date(now.getTime() + CLAIM_MS);
    const taken = await db.tx({ orgId }, async (tx) => {
      const row = await load(tx, orgId, id);
      requireUsable(row);
      const dueBefore = now.getTime() + (opts.dueWithinMs ?? REFRESH_AHEAD_MS);
      if (!opts.force && row.accessTokenExpiresAt && row.accessTokenExpiresAt.getTime() > dueBefore) {
        await repo.update(tx, orgId, id, { refreshQueuedAt: null });
        return { outcome: "not_due" as const, row };
      }
      const claimed = await repo.claimRefresh(tx, orgId, id, now, until);
      if (!claimed) return { outcome: "busy" as const, row };
      return { outcome: "claimed" as const, row: claimed, ...(await tokenSetOf(tx, claimed)) };
    });
    if (taken.outcome !== "claimed") return taken;

    const { set, version } = taken;
    // the name is resolved again now: it may point somewhere else than when the connection was made
    const refused = await guardTokenUrl(taken.row.tokenUrl);
    // the network call: outside any transaction
    const answer: Awaited<ReturnType<TokenRefresher>> = refused
      ? { ok: false, terminal: false, error: "the token endpoint's address is not allowed (PLINTH_OUTBOUND_ALLOW)" }
      : await refresher({
          tokenUrl: taken.row.tokenUrl,
          clientId: taken.row.clientId,
          clientSecret: set.client_secret,
          refreshToken: set.refresh_token,
        });

    return db.tx({ orgId }, async (tx): Promise<RefreshResult> => {
      const row = await load(tx, orgId, id, true);
      const done = clock.now();
      const release = { refreshClaimedUntil: null, refreshQueuedAt: null, updatedAt: done };
      // revoked meanwhile: whatever the provider said is dropped with the connection
      if (row.status === "revoked" || !row.secretId) return { outcome: "busy", row };
      if (!answer.ok) {
        const failed = await repo.update(tx, orgId, id, {
          ...release,
          lastError: answer.error,
          ...(answer.terminal ? { status: "refresh_failed" } : {}),
        });
        if (answer.terminal) {
          await audit.record(tx, actor, {
            orgId,
            action: "connection.refresh_failed",
            target: { type: "connection", id },
            diff: { status: [row.status, "refresh_failed"], error: answer.error },
          });
        }
        return { outcome: "failed", row: failed, terminal: answer.terminal };
      }
      const expiresAt = answer.expiresIn === undefined ? null : new Date(done.getTime() + answer.expiresIn * 1000);
      const next: TokenSet = {
        ...set,
        access_token: answer.accessToken,
        // GitHub and Google do not always rotate the refresh token: the one we have stays good then
        refresh_token: answer.refreshToken ?? set.refresh_token,
        token_type: answer.tokenType,
        scope: answer.scope ?? set.scope,
        expires_at: expiresAt?.toISOString() ?? null,
      };
      const written = await secrets.write(tx, orgId, row.secretId, KIND, JSON.stringify(next), version, actor);
      // another refresh wrote first (its claim had lapsed): its token set stands, ours is dropped
      if (written === undefined) return { outcome: "busy", row };
      const updated = await repo.update(tx, orgId, id, {
        ...release,
        accessTokenExpiresAt: expiresAt,
        lastRefreshedAt: done,
        lastError: null,
        status: "active",
      });
      await audit.record(tx, actor, {
        orgId,
        action: "connection.refreshed",
        target: { type: "connection", id },
        diff: {
          secret_version: [version, written],
          access_token_expires_at: [row.accessTokenExpiresAt?.toISOString() ?? null, expiresAt?.toISOString() ?? null],
          refresh_token_rotated: answer.refreshToken !== undefined && answer.refreshToken !== set.refresh_token,
        },
      });
      return { outcome: "refreshed", row: updated };
    });
  }

  return {
    async create(caller: OrgMembership, input: CreateConnectionInput, actor: AuditActor): Promise<ConnectionRow> {
      const now = clock.now();
      const url = tokenUrl(input.token_url);
      const refused = await guardTokenUrl(url);
      if (refused) throw invalid("token_url", `token_url ${refused.message}`);
      if (input.expires_in !== undefined && input.expires_at !== undefined) throw invalid("expires_at", "Give expires_in or expires_at, not both.");
      let expiresAt: Date | null = null;
      if (input.expires_in !== undefined) expiresAt = new Date(now.getTime() + input.expires_in * 1000);
      if (input.expires_at !== undefined) {
        expiresAt = new Date(input.expires_at);
        if (Number.isNaN(expiresAt.getTime())) throw invalid("expires_at", "expires_at is not a valid date-time.");
      }
      const set: TokenSet = {
        v: 1,
        access_token: input.access_token,
        refresh_token: input.refresh_token,
        token_type: input.token_type ?? "Bearer",
        scope: input.scope ?? null,
        expires_at: expiresAt?.toISOString() ?? null,
        client_secret: input.client_secret ?? null,
      };
      const id = newId("connection", now.getTime());
      return db.tx({ orgId: caller.orgId }, async (tx) => {
        const secret = await secrets.create(
          tx,
          caller.orgId,
          { kind: KIND, name: secretName(id), description: `Token set of connection ${id} (${input.provider})`, value: JSON.stringify(set) },
          actor,
        );
        const row = await repo.insert(tx, {
          id,
          orgId: caller.orgId,
          provider: input.provider,
          name: input.name,
          tokenUrl: url,
          clientId: input.client_id,
          secretId: secret.id,
          accessTokenExpiresAt: expiresAt,
          status: "active",
          createdBy: actor.id,
          createdAt: now,
          updatedAt: now,
        });
        await audit.record(tx, actor, {
          orgId: caller.orgId,
          action: "connection.created",
          target: { type: "connection", id },
          diff: {
            provider: [null, row.provider],
            name: [null, row.name],
            token_url: [null, row.tokenUrl],
            client_id: [null, row.clientId],
            secret_id: [null, secret.id],
            access_token_expires_at: [null, expiresAt?.toISOString() ?? null],
          },
        });
        return row;
      });
    },

    list(caller: OrgMembership, filter: ConnectionFilter): Promise<ConnectionRow[]> {
      return db.read({ orgId: caller.orgId }, (ex) => repo.list(ex, caller.orgId, filter));
    },

    get(caller: OrgMembership, id: string): Promise<ConnectionRow> {
      return db.read({ orgId: caller.orgId }, (ex) => load(ex, caller.orgId, id));
    },

    /** Revokes: the token set's vault secret is deleted; the row stays, revoked, for the record. Again: no change. */
    async revoke(caller: OrgMembership, id: string, actor: AuditActor): Promise<void> {
      await db.tx({ orgId: caller.orgId }, async (tx) => {
        const row = await load(tx, caller.orgId, id, true);
        if (row.status === "revoked" || !row.secretId) return;
        await repo.update(tx, caller.orgId, id, {
          status: "revoked",
          secretId: null,
          accessTokenExpiresAt: null,
          refreshClaimedUntil: null,
          refreshQueuedAt: null,
          updatedAt: clock.now(),
        });
        await secrets.remove(tx, caller.orgId, row.secretId, KIND);
        await audit.record(tx, actor, {
          orgId: caller.orgId,
          action: "connection.revoked",
          target: { type: "connection", id },
          diff: { status: [row.status, "revoked"], secret_id: [row.secretId, null] },
        });
      });
    },

    /** POST …/$refresh: refresh now, whatever the expiry; 409 when another refresh holds it or the provider refused. */
    async refreshNow(caller: OrgMembership, id: string, actor: AuditActor): Promise<ConnectionRow> {
      const r = await refresh(caller.orgId, id, actor, { force: true });
      if (r.outcome === "busy") throw connectionsError("CONNECTION_REFRESH_BUSY", "Another refresh of this connection is under way: read it again shortly.");
      if (r.outcome === "failed") {
        if (r.terminal) requireUsable(r.row);
        throw connectionsError("CONNECTION_PROVIDER_UNAVAILABLE", `The refresh failed: ${r.row.lastError ?? "unknown"}. Nothing changed; retry later.`);
      }
      return r.row;
    },

    /**
     * The current access token, refreshed first when it expires within TOKEN_MIN_LIFE_MS; audited as
     * connection.token_revealed (never the token) in the transaction that decrypts it.
     */
    async token(caller: OrgMembership, id: string, actor: AuditActor) {
      const orgId = caller.orgId;
      const row = await db.read({ orgId }, (ex) => load(ex, orgId, id));
      requireUsable(row);
      const soon = clock.now().getTime() + TOKEN_MIN_LIFE_MS;
      if (row.accessTokenExpiresAt && row.accessTokenExpiresAt.getTime() <= soon) {
        const r = await refresh(orgId, id, actor, { force: false, dueWithinMs: TOKEN_MIN_LIFE_MS });
        if (r.outcome === "failed" && r.terminal) requireUsable(r.row);
      }
      return db.tx({ orgId }, async (tx) => {
        const current = await load(tx, orgId, id);
        requireUsable(current);
        const expired = current.accessTokenExpiresAt && current.accessTokenExpiresAt.getTime() <= clock.now().getTime();
        if (expired) {
          throw current.refreshClaimedUntil && current.refreshClaimedUntil.getTime() > clock.now().getTime()
            ? connectionsError("CONNECTION_REFRESH_BUSY", "The access token expired and a refresh is under way: retry shortly.")
            : connectionsError("CONNECTION_PROVIDER_UNAVAILABLE", `The access token expired and could not be refreshed (${current.lastError ?? "unknown"}).`);
        }
        const { set, version } = await tokenSetOf(tx, current);
        await audit.record(tx, actor, {
          orgId,
          action: "connection.token_revealed",
          target: { type: "connection", id },
          diff: { secret_id: current.secretId, secret_version: version },
        });
        return { connection_id: id, access_token: set.access_token, token_type: set.token_type, expires_at: set.expires_at, scope: set.scope };
      });
    },

    /** The refresh job's handler: a provider failure that may pass throws, so the job retries with backoff. */
    async runRefreshJob(orgId: string, id: string): Promise<void> {
      let r: RefreshResult;
      try {
        r = await refresh(orgId, id, SYSTEM, { force: false });
      } catch (e) {
        // gone, revoked or refused meanwhile: nothing to do
        if (isAppError(e) && ["CONNECTION_NOT_FOUND", "CONNECTION_REVOKED", "CONNECTION_REFRESH_FAILED"].includes(e.code)) return;
        throw e;
      }
      if (r.outcome === "failed" && !r.terminal) throw new Error(`refresh of ${id} failed: ${r.row.lastError ?? "unknown"}`);
    },

    /** The scheduled scan: one refresh job per connection expiring within REFRESH_AHEAD_MS (ids only in the payload). */
    async enqueueDue(limit = 500): Promise<number> {
      const now = clock.now();
      const queuedBefore = new Date(now.getTime() - REQUEUE_AFTER_MS);
      const due = await db.read((ex) => repo.due(ex, new Date(now.getTime() + REFRESH_AHEAD_MS), queuedBefore, limit));
      let queued = 0;
      for (const c of due) {
        const took = await db.tx({ orgId: c.orgId }, async (tx) => {
          if (!(await repo.markQueued(tx, c.orgId, c.id, now, queuedBefore))) return false;
          await jobs.enqueue(tx, REFRESH_JOB, { org_id: c.orgId, connection_id: c.id });
          return true;
        });
        if (took) queued++;
      }
      if (queued) jobs.kick();
      return queued;
    },
  };
}

export type ConnectionsService = ReturnType<typeof createConnectionsService>;
