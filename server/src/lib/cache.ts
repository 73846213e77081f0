import { LRUCache } from "lru-cache";
import type { Bus, Channel } from "../pubsub/bus.ts";
import { systemClock, type Clock } from "./clock.ts";

export interface CacheOptions<V, C> {
  /** Unique per process; with a bus, the channel is `cache:<name>`. */
  name: string;
  /** How many entries at most; the least recently used go first. */
  max: number;
  /** How long an entry is trusted without an invalidation; none: until evicted or invalidated. */
  ttlMs?: number;
  /** When the value itself stops being true (a grant's expiry, a token's exp), sooner than `ttlMs`: ms since epoch. */
  staleAt?: (value: V) => number | undefined;
  /** What `fetch` reads on a miss; concurrent misses of one key share one read. */
  fetch?: (key: string, context: C) => Promise<V>;
  /**
   * The group an entry belongs to (its org, say), for `deleteGroup`. Taken from the key or the value: a key's org may
   * be known only once it is read.
   */
  group?: (key: string, value: V) => string;
  /** Ages are measured on this clock (tests move it). */
  clock?: Clock;
  /** With a bus, `delete`, `deleteGroup` and `clear` reach every instance before they resolve; local only without. */
  bus?: Bus;
}

export interface Cache<V, C = void> {
  /** The entry when it is fresh, else undefined: synchronous, a map lookup. */
  get(key: string): V | undefined;
  /** The fresh entry, or the `fetch` option's value, read once for every concurrent caller of the key. */
  fetch(key: string, context: C): Promise<V>;
  /**
   * Stores a value read elsewhere. `since` is `version()` taken before the read: an invalidation of the value's
   * group (or a clear) during the read leaves it unstored, as for `fetch`.
   */
  set(key: string, value: V, since?: number): void;
  /** The invalidation counter now, for `set`'s `since`. */
  version(): number;
  /** Drops the key here at once and, with a bus, everywhere before it resolves. */
  delete(key: string): Promise<void>;
  /** Every entry of the group is stale here at once and, with a bus, everywhere before it resolves. */
  deleteGroup(group: string): Promise<void>;
  clear(): Promise<void>;
  readonly size: number;
}

type CacheMessage = { op: "delete"; key: string } | { op: "group"; group: string } | { op: "clear" };

interface Entry<V> {
  value: V;
  group: string | undefined;
  /** The invalidation counter when the value's read began. */
  seq: number;
}

/** A failure of the `fetch` option, told apart from lru-cache aborting a read (its key deleted, evicted, replaced). */
class LoadFailed {
  readonly cause: unknown;
  constructor(cause: unknown) {
    this.cause = cause;
  }
}

/**
 * Joins two parts (an org and an id) into one cache key, the same string each time: a lookup then hashes only the
 * parts it was handed (V8 keeps a string's hash), not a new joined string, which costs more than the cache lookup
 * itself. Forgets everything when full (it only saves work; the key is the same either way).
 */
export function createKeyJoiner(max = 100_000): (a: string, b: string) => string {
  let byA = new Map<string, Map<string, string>>();
  let size = 0;
  return (a, b) => {
    let inner = byA.get(a);
    let key = inner?.get(b);
    if (key === undefined) {
      if (size >= max) {
        byA = new Map();
        size = 0;
        inner = undefined;
      }
      if (!inner) byA.set(a, (inner = new Map()));
      inner.set(b, (key = `${a}\u0000${b}`));
      size++;
    }
    return key;
  };
}

/** The first part of a key from `createKeyJoiner` (the org): a `group` for caches keyed by (org, id). */
export const firstPartOf = (key: string): string => key.slice(0, key.indexOf("\u0000"));

/**
 * The cache port: an LRU (lru-cache) with a size bound, a TTL and single-flight reads, plus invalidation by key, by
 * group and in full. A group's invalidation is O(1): it stamps the group with the invalidation counter, and an entry
 * whose read began before that stamp is stale (so one read in flight during the invalidation is never trusted).
 */
export function createCache<V, C = void>(opts: CacheOptions<V, C>): Cache<V, C> {
  const clock = opts.clock ?? systemClock;
  const { fetch: load, group: groupOf, staleAt } = opts;
  const ttlMs = opts.ttlMs ?? 0;
  let seq = 0;
  let clearedAt = 0;
  /** group → the counter at its last invalidation; bounded by the number of groups (orgs). */
  const invalidated = new Map<string, number>();
  const fresh = (e: Entry<V>) => e.seq >= clearedAt && (e.group === undefined || (invalidated.get(e.group) ?? 0) <= e.seq);
  /**
   * lru-cache counts an entry stale once its age exceeds its ttl; ours is stale from `until` on (a grant expiring at
   * T no longer counts at T), hence the millisecond less, and for a value already due a start in the past.
   */
  const lifetime = (value: V): { ttl: number; start?: number } => {
    const now = clock.now().getTime();
    const until = Math.min(ttlMs ? now + ttlMs : Number.POSITIVE_INFINITY, staleAt?.(value) ?? Number.POSITIVE_INFINITY);
    if (until === Number.POSITIVE_INFINITY) return { ttl: 0 };
    const ttl = Math.max(1, until - now - 1);
    return { ttl, start: until - 1 - ttl };
  };
  const entry = (key: string, value: V, since: number): Entry<V> => ({ value, group: groupOf?.(key, value), seq: since });

  // lru-cache allocates its slots up front: only once the cache is first written to (most stay small in tests)
  let lru: LRUCache<string, Entry<V>, unknown> | undefined;
  const store = () =>
    (lru ??= new LRUCache<string, Entry<V>, unknown>({
      max: opts.max,
      // ages on our clock, read on every check (no debounce timer: a test's clock moves between two calls); the system
      // clock's time without a Date per lookup
      perf: { now: clock === systemClock ? Date.now : () => clock.now().getTime() },
      ttlResolution: 0,
      fetchMethod: load
        ? async (key, _stale, { context, options }) => {
            const since = seq;
            let value: V;
            try {
              value = await load(key, context as C);
            } catch (e) {
              throw new LoadFailed(e);
            }
            Object.assign(options, lifetime(value)); // lru-cache stores the value with these set options
            return entry(key, value, since);
          }
        : undefined,
    }));

  async function read(key: string, context: C, force: boolean): Promise<Entry<V>> {
    try {
      const e = await store().fetch(key, { context, forceRefresh: force });
      if (e) return e;
    } catch (e) {
      if (e instanceof LoadFailed) throw e.cause;
    }
    // the key was deleted, evicted or replaced while being read: read it again, for this caller alone
    const since = seq;
    return entry(key, await load!(key, context), since);
  }

  const local = {
    delete(key: string) {
      lru?.delete(key);
    },
    deleteGroup(group: string) {
      invalidated.set(group, ++seq);
    },
    clear() {
      clearedAt = ++seq;
      lru?.clear();
    },
  };

  let channel: Channel<CacheMessage> | undefined;
  if (opts.bus) {
    channel = opts.bus.channel<CacheMessage>(`cache:${opts.name}`, (m) => {
      if (m?.op === "delete" && typeof m.key === "string") local.delete(m.key);
      else if (m?.op === "group" && typeof m.group === "string") local.deleteGroup(m.group);
      else if (m?.op === "clear") local.clear();
    });
  }

  return {
    get(key) {
      const e = lru?.get(key);
      return e !== undefined && fresh(e) ? e.value : undefined;
    },

    async fetch(key, context) {
      if (!load) throw new Error(`cache ${opts.name} has no fetch function`);
      const asked = seq;
      const hit = lru?.get(key);
      if (hit !== undefined && fresh(hit)) return hit.value;
      let e = await read(key, context, hit !== undefined);
      // a shared read that began before this call and was invalidated since may predate what this caller must see
      if (!fresh(e) && e.seq < asked) e = await read(key, context, true);
      return e.value;
    },

    set(key, value, since = seq) {
      const e = entry(key, value, since);
      if (fresh(e)) store().set(key, e, lifetime(value));
    },

    version: () => seq,

    async delete(key) {
      local.delete(key);
      await channel?.publish({ op: "delete", key });
    },

    async deleteGroup(group) {
      local.deleteGroup(group);
      await channel?.publish({ op: "group", group });
    },

    async clear() {
      local.clear();
      await channel?.publish({ op: "clear" });
    },

    get size() {
      return lru?.size ?? 0;
    },
  };
}
