import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import type { Logger } from "pino";

/**
 * One channel of the bus: `publish` tells every other instance and resolves once each has handled the message and
 * said so (or after the ack timeout), so a request that revokes something answers only when no instance still
 * honours it. Without Redis there is one instance: publish only runs this instance's own handler... which the
 * publisher has already applied, so it does nothing.
 */
export interface Channel<T> {
  publish(message: T): Promise<void>;
}

/**
 * The cross-instance pub/sub port: Redis when configured, in-process otherwise. One subscriber connection carries
 * every channel (access invalidation, session revocation, and later live conversation streams).
 */
export interface Bus {
  channel<T>(name: string, onMessage: (message: T) => void): Channel<T>;
  close(): Promise<void>;
}

const ACKS = "plinth:bus:ack";

export async function createBus(opts: { redis?: Redis; log: Logger; ackTimeoutMs?: number }): Promise<Bus> {
  const { redis, log } = opts;
  if (!redis) return { channel: () => ({ publish: async () => {} }), close: async () => {} };
  const ackTimeoutMs = opts.ackTimeoutMs ?? 500;
  const instance = randomUUID();
  const handlers = new Map<string, (message: unknown) => void>();
  const waiting = new Map<string, { need: number; got: number; done: () => void }>();
  const sub = redis.duplicate();
  sub.on("error", (e) => log.warn({ err: e.message }, "bus subscriber: redis problem"));
  await sub.subscribe(ACKS);
  sub.on("message", (channel: string, raw: string) => {
    let msg: { m?: unknown; from?: string; id?: string };
    try {
      msg = JSON.parse(raw) as typeof msg;
    } catch {
      return;
    }
    if (channel === ACKS) {
      const w = msg.id ? waiting.get(msg.id) : undefined;
      if (w && ++w.got >= w.need) w.done();
      return;
    }
    const handler = handlers.get(channel);
    if (!handler || msg.from === instance) return;
    try {
      handler(msg.m);
    } catch (e) {
      log.warn({ err: (e as Error).message, channel }, "bus handler failed");
      return;
    }
    redis.publish(ACKS, JSON.stringify({ id: msg.id, to: msg.from })).catch(() => {});
  });

  return {
    channel<T>(name: string, onMessage: (message: T) => void): Channel<T> {
      const full = `plinth:bus:${name}`;
      handlers.set(full, onMessage as (m: unknown) => void);
      const subscribed = sub.subscribe(full);
      return {
        async publish(message: T) {
          await subscribed;
          const id = randomUUID();
          let done!: () => void;
          const acked = new Promise<void>((resolve) => (done = resolve));
          const entry = { need: Number.POSITIVE_INFINITY, got: 0, done };
          waiting.set(id, entry);
          try {
            // the receivers include this instance's own subscriber, which does not answer
            const receivers = await redis.publish(full, JSON.stringify({ m: message, from: instance, id }));
            entry.need = receivers - 1;
            if (entry.got >= entry.need) return;
            let timer: NodeJS.Timeout | undefined;
            const timedOut = new Promise<void>((resolve) => (timer = setTimeout(resolve, ackTimeoutMs)));
            await Promise.race([acked, timedOut]);
            clearTimeout(timer);
            if (entry.got < entry.need)
              log.warn({ channel: name, acked: entry.got, expected: entry.need }, "not every instance acknowledged a bus message in time");
          } catch (e) {
            log.warn({ err: (e as Error).message, channel: name }, "could not publish on the bus; other instances catch up by their own expiry");
          } finally {
            waiting.delete(id);
          }
        },
      };
    },
    async close() {
      sub.disconnect();
    },
  };
}
