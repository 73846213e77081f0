import { RateLimiterMemory, RateLimiterRedis, type RateLimiterAbstract, type RateLimiterRes } from "rate-limiter-flexible";
import type { Redis } from "ioredis";

/**
 * Abuse throttles with growing delays: `points` hits per `windowSeconds`; once spent, the key is blocked for
 * `baseBlockSeconds`, doubling with every further lockout within a day, up to `maxBlockSeconds`.
 * Backed by Redis when configured (shared across instances), memory otherwise.
 */
export interface ThrottleRule {
  points: number;
  windowSeconds: number;
  baseBlockSeconds: number;
  maxBlockSeconds: number;
}

export interface Throttle {
  /** Seconds to wait if the key is blocked now, else 0. Does not count. */
  blockedFor(key: string): Promise<number>;
  /**
   * Count one hit. The hit that spends the last point blocks the key, so the next blockedFor refuses (five failed
   * sign-ins, then locked). Returns seconds to wait when this hit itself came with nothing left (refuse it), else 0.
   */
  hit(key: string): Promise<number>;
  reset(key: string): Promise<void>;
}

export type LimiterStore = { kind: "memory" } | { kind: "redis"; client: Redis };

function limiter(store: LimiterStore, keyPrefix: string, points: number, duration: number): RateLimiterAbstract {
  return store.kind === "redis"
    ? new RateLimiterRedis({
        storeClient: store.client,
        keyPrefix,
        points,
        duration,
        // If Redis is unreachable, keep throttling in memory rather than failing open or failing every login.
        insuranceLimiter: new RateLimiterMemory({ keyPrefix, points, duration }),
      })
    : new RateLimiterMemory({ keyPrefix, points, duration });
}

function isRes(e: unknown): e is RateLimiterRes {
  return typeof e === "object" && e !== null && "msBeforeNext" in e;
}

export function createThrottle(store: LimiterStore, name: string, rule: ThrottleRule): Throttle {
  const hits = limiter(store, `plinth:th:${name}`, rule.points, rule.windowSeconds);
  const lockouts = limiter(store, `plinth:th:${name}:lockouts`, 1_000_000, 86_400);
  return {
    async blockedFor(key) {
      const res = await hits.get(key);
      if (!res || res.consumedPoints <= rule.points) return 0;
      return Math.max(1, Math.ceil(res.msBeforeNext / 1000));
    },
    async hit(key) {
      let over = false;
      try {
        const res = await hits.consume(key);
        if (res.remainingPoints > 0) return 0;
      } catch (e) {
        if (!isRes(e)) throw e;
        over = true;
      }
      const lock = await lockouts.consume(key).catch((r: unknown) => (isRes(r) ? r : undefined));
      const n = Math.max(0, (lock?.consumedPoints ?? 1) - 1);
      const seconds = Math.min(rule.maxBlockSeconds, rule.baseBlockSeconds * 2 ** n);
      await hits.block(key, seconds);
      return over ? seconds : 0;
    },
    async reset(key) {
      await hits.delete(key);
    },
  };
}
