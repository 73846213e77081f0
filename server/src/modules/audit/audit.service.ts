import type { Database, Executor } from "../../db/client.ts";
import type { Clock } from "../../lib/clock.ts";
import { newId } from "../../lib/ids.ts";
import type { AuditFilter, AuditRepo, AuditRow } from "./audit.repo.ts";
import { eventBodyParts, eventHash, GENESIS_HASH } from "./chain.ts";

/**
 * The platform's own audit chain: what platform admins and the operator do outside any org (the platform-wide
 * service keys, disabling accounts). Never an org_… id, so no org route reads it; `plinth audit verify --org platform` checks it.
 */
export const PLATFORM_AUDIT_ORG = "platform";

/** Who did it and from where: built from the request's principal and metadata. */
export interface AuditActor {
  /** `service`: a registered service, by its self-signed token; `id` is then its key's registration (svk_…). */
  type: "user" | "api_key" | "service_account" | "service" | "system";
  id: string | null;
  impersonatorId?: string | null;
  /** The API key a token was exchanged from, when the action came through such a token. */
  keyId?: string | null;
  ip?: string | null;
  userAgent?: string | null;
  requestId?: string | null;
}

export interface AuditEntry {
  orgId: string;
  action: string;
  target: { type: string; id: string | null };
  /** Non-secret fields only: { field: [before, after] } or a summary object. */
  diff?: Record<string, unknown>;
}

/** An event as `record` appended it: what state-change callbacks are handed (its diff is non-secret by contract). */
export interface RecordedAuditEvent {
  id: string;
  orgId: string;
  action: string;
  actorType: AuditActor["type"];
  actorId: string | null;
  targetType: string;
  targetId: string | null;
  diff: Record<string, unknown>;
  createdAt: Date;
}

/**
 * A state-change callback: runs inside the transaction of the change that was audited, so what it enqueues (a
 * webhook delivery, later a notifier's job) commits with the change or not at all. It must only write rows and
 * enqueue jobs there — no network calls; the work itself runs in a job after the commit.
 */
export type StateChangeCallback = (tx: Executor, event: RecordedAuditEvent) => Promise<void>;

export type VerifyResult = { ok: true; events: number } | { ok: false; events: number; brokenAt: { seq: number; id: string; reason: string } };

/**
 * The audit log. `record` runs inside the caller's transaction, so the event commits with the change or not at all.
 */
export function createAuditService(deps: { db: Database; repo: AuditRepo; clock: Clock }) {
  const { db, repo, clock } = deps;
  /** The state-change callback registry: every audited change is a state change; outbound webhooks are its first user. */
  const callbacks: StateChangeCallback[] = [];
  return {
    /** Registers a state-change callback (at wiring time): called for every event recorded, in the change's transaction. */
    onRecorded(cb: StateChangeCallback): void {
      callbacks.push(cb);
    },

    /**
     * Appends an event to the org's chain as the transaction's last statement, sent with its COMMIT (db.atCommit):
     * an audited change costs one round trip more than the change alone, and the chain's head is locked only while
     * the commit runs. The event id is known at once; the row exists once `db.tx` has committed.
     */
    async record(tx: Executor, actor: AuditActor, entry: AuditEntry): Promise<string> {
      const now = clock.now();
      const event = {
        id: newId("auditEvent", now.getTime()),
        orgId: entry.orgId,
        action: entry.action,
        actorType: actor.type,
        actorId: actor.id,
        impersonatorId: actor.impersonatorId ?? null,
        viaKeyId: actor.keyId ?? null,
        targetType: entry.target.type,
        targetId: entry.target.id,
        ip: actor.ip ?? null,
        userAgent: actor.userAgent ?? null,
        requestId: actor.requestId ?? null,
        diff: entry.diff ?? {},
        createdAt: now,
      };
      const { before, after } = eventBodyParts(event);
      await db.atCommit(tx, repo.appendStatement({ ...event, bodyBefore: before, bodyAfter: after }));
      for (const cb of callbacks) await cb(tx, event);
      return event.id;
    },

    list(orgId: string, filter: AuditFilter, limit: number, beforeSeq?: number): Promise<AuditRow[]> {
      return db.read({ orgId }, (ex) => repo.list(ex, orgId, filter, limit, beforeSeq));
    },

    /** Every event of the org, oldest first, in batches (for export). */
    async *all(orgId: string, batch = 500): AsyncGenerator<AuditRow> {
      let after = 0;
      for (;;) {
        const rows = await db.read({ orgId }, (ex) => repo.chainFrom(ex, orgId, after, batch));
        for (const r of rows) yield r;
        if (rows.length < batch) return;
        after = rows[rows.length - 1].seq;
      }
    },

    /**
     * Walks the chain and names the first event whose hash or link does not hold, then checks that the chain ends
     * where its anchored head says: events cut from the end would otherwise leave a shorter chain that still links.
     */
    async verify(orgId: string): Promise<VerifyResult> {
      let prev = GENESIS_HASH;
      let expectedSeq = 1;
      let n = 0;
      for await (const e of this.all(orgId)) {
        n++;
        const broken = (reason: string): VerifyResult => ({ ok: false, events: n, brokenAt: { seq: e.seq, id: e.id, reason } });
        if (e.seq !== expectedSeq) return broken(`expected event #${expectedSeq}, found #${e.seq}: events are missing`);
        if (e.prevHash !== prev) return broken("prev_hash does not match the previous event's hash");
        if (eventHash(e) !== e.hash) return broken("the event's contents do not match its hash: it was altered");
        prev = e.hash;
        expectedSeq++;
      }
      const head = await db.read({ orgId }, (ex) => repo.head(ex, orgId));
      const lastSeq = expectedSeq - 1;
      if ((head?.seq ?? 0) !== lastSeq || (head && head.hash !== prev)) {
        const missing = {
          seq: lastSeq + 1,
          id: "(missing)",
          reason: `the chain ends at event #${lastSeq} but its anchored head is #${head?.seq ?? 0}: events were removed from the end`,
        };
        return {
          ok: false,
          events: n,
          brokenAt: head && head.seq === lastSeq ? { ...missing, seq: lastSeq, reason: "the last event's hash does not match the anchored head" } : missing,
        };
      }
      return { ok: true, events: n };
    },
  };
}

export type AuditService = ReturnType<typeof createAuditService>;
