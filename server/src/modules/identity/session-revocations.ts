import { sql } from "drizzle-orm";
import type { Database } from "../../db/client.ts";
import type { Clock } from "../../lib/clock.ts";
import type { Bus } from "../../pubsub/bus.ts";

/**
 * The sessions revoked recently enough that an access token of theirs may still be unexpired: the auth hook refuses
 * such a token on every route (logout, logout-all, a password change or reset, refresh-token reuse, removal from the
 * org a session was opened for, a disabled account). The set lives in each instance's memory, so the check is one
 * Map lookup on the JWT fast path. A revocation reaches the other instances through the bus before the revoking
 * request answers; every instance also re-reads recent revocations from the database on start and every
 * `syncIntervalMs`, which heals a lost bus message (or a revocation made by the CLI, another process).
 */
export interface SessionRevocations {
  isRevoked(sessionId: string): boolean;
  /** After the commit that revoked them: here at once, on the other instances before this resolves. */
  revoked(sessionIds: readonly string[]): Promise<void>;
  /** Reads the recent revocations (start, and the periodic sync). */
  sync(): Promise<void>;
  close(): void;
}

export function createSessionRevocations(deps: {
  db: Database;
  clock: Clock;
  bus: Bus;
  /** How long a token of a revoked session may live: the longest access or exchanged token lifetime. */
  keepMs: number;
  syncIntervalMs?: number;
}): SessionRevocations {
  const { db, clock, keepMs } = deps;
  // insertion order is revocation order, so the oldest are pruned from the front
  const revoked = new Map<string, number>();
  let syncedUntil = 0;

  function add(ids: readonly unknown[], at: number): void {
    for (const id of ids) if (typeof id === "string" && !revoked.has(id)) revoked.set(id, at);
    prune(clock.now().getTime());
  }
  function prune(now: number): void {
    for (const [id, at] of revoked) {
      if (at > now - keepMs) break;
      revoked.delete(id);
    }
  }
  const channel = deps.bus.channel<string[]>("sessions", (ids) => {
    if (Array.isArray(ids)) add(ids, clock.now().getTime());
  });

  async function sync(): Promise<void> {
    const now = clock.now().getTime();
    // a little overlap with the last sync: a revocation committed while the last read ran is not missed
    const since = new Date(Math.max(now - keepMs, syncedUntil - 5_000));
    const rows = await db.read(async (r) => {
      const res = (await r.execute(sql`select id from sessions where revoked_at > ${since.toISOString()}::timestamptz`)) as unknown as {
        rows: { id: string }[];
      };
      return res.rows;
    });
    add(
      rows.map((row) => row.id),
      now,
    );
    syncedUntil = now;
  }

  const timer = setInterval(() => void sync().catch(() => {}), deps.syncIntervalMs ?? 15_000);
  timer.unref();

  return {
    isRevoked: (sessionId) => revoked.has(sessionId),
    async revoked(sessionIds) {
      if (!sessionIds.length) return;
      add(sessionIds, clock.now().getTime());
      await channel.publish([...sessionIds]);
    },
    sync,
    close: () => clearInterval(timer),
  };
}
