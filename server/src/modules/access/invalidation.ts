import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import type { Logger } from "pino";

const CHANNEL = "plinth:access:invalidate";
const ACKS = "plinth:access:ack";

/**
 * Tells every instance that an org's access facts changed. Without Redis there is one instance and nothing to tell.
 * With Redis, `publish` resolves once every other subscribed instance has dropped the org from its caches and said so
 * (or after `ackTimeoutMs`): the request that revoked a grant answers only when no instance still honours it.
 */
export interface InvalidationBus {
  publish(orgId: string): Promise<void>;
  close(): Promise<void>;
}

export async function createInvalidationBus(opts: {
  redis?: Redis;
  log: Logger;
  onInvalidate: (orgId: string) => void;
  ackTimeoutMs?: number;
}): Promise<InvalidationBus> {
  const { redis, log, onInvalidate } = opts;
  if (!redis) return { publish: async () => {}, close: async () => {} };
  const ackTimeoutMs = opts.ackTimeoutMs ?? 500;
  const instance = randomUUID();
  const waiting = new Map<string, { need: number; got: number; done: () => void }>();
  const sub = redis.duplicate();
  sub.on("error", (e) => log.warn({ err: e.message }, "access invalidation subscriber: redis problem"));
  await sub.subscribe(CHANNEL, ACKS);
  sub.on("message", (channel: string, message: string) => {
    let msg: { org?: string; from?: string; id?: string };
    try {
      msg = JSON.parse(message) as typeof msg;
    } catch {
      return;
    }
    if (channel === CHANNEL) {
      if (msg.from === instance || typeof msg.org !== "string") return;
      onInvalidate(msg.org);
      redis.publish(ACKS, JSON.stringify({ id: msg.id, to: msg.from })).catch(() => {});
    } else if (channel === ACKS) {
      const w = msg.id ? waiting.get(msg.id) : undefined;
      if (w && ++w.got >= w.need) w.done();
    }
  });

  return {
    async publish(orgId) {
      const id = randomUUID();
      let done!: () => void;
      const acked = new Promise<void>((resolve) => (done = resolve));
      const entry = { need: Number.POSITIVE_INFINITY, got: 0, done };
      waiting.set(id, entry);
      try {
        // the receivers count includes this instance's own subscriber, which does not answer
        const receivers = await redis.publish(CHANNEL, JSON.stringify({ org: orgId, from: instance, id }));
        entry.need = receivers - 1;
        if (entry.got >= entry.need) return;
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<void>((resolve) => (timer = setTimeout(resolve, ackTimeoutMs)));
        await Promise.race([acked, timedOut]);
        clearTimeout(timer);
        if (entry.got < entry.need) log.warn({ orgId, acked: entry.got, expected: entry.need }, "not every instance acknowledged an access invalidation in time");
      } catch (e) {
        log.warn({ err: (e as Error).message, orgId }, "could not publish an access invalidation; other instances keep cached access until it expires");
      } finally {
        waiting.delete(id);
      }
    },
    async close() {
      sub.disconnect();
    },
  };
}
