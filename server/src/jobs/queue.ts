import { and, asc, eq, isNull, lte, or, sql } from "drizzle-orm";
import type { Logger } from "pino";
import type { Database, Executor } from "../db/client.ts";
import { jobs } from "../db/schema/index.ts";
import type { Clock } from "../lib/clock.ts";
import { newId } from "../lib/ids.ts";

/** A job's payload names records, never carries secrets: handlers load what they need when they run. */
export type JobPayload = Record<string, string | number | boolean | null>;
export type JobHandler = (payload: JobPayload, ctx: { jobId: string; attempt: number }) => Promise<void>;

export interface JobQueue {
  /** Enqueue inside the caller's transaction: a committed change never loses its job, a rolled-back one never runs it. */
  enqueue(tx: Executor, kind: string, payload: JobPayload, opts?: { runAt?: Date; maxAttempts?: number }): Promise<string>;
  register(kind: string, handler: JobHandler): void;
  /**
   * Runs `kind`'s handler every `everyMs`, once across all instances sharing the database: the schedule is one job
   * row (id `schedule:<kind>`), claimed like any job (FOR UPDATE SKIP LOCKED, then a lease), and moved to its next
   * run instead of deleted when the handler succeeds. Instances that call this for the same kind share the row.
   * Takes effect when the worker runs (`start`); call before it.
   */
  schedule(kind: string, everyMs: number, handler: JobHandler): Promise<void>;
  /** Wake the worker after a commit instead of waiting for the next poll. */
  kick(): void;
  start(): void;
  stop(): Promise<void>;
  /** Run every due job now (of `kind` only, when given), until none is left (tests, CLI, maintenance). */
  drain(kind?: string): Promise<number>;
  /** A schedule's row: when it runs next, its last error, and the note its handler left (`noteSchedule`). */
  scheduleState(kind: string): Promise<ScheduleState | undefined>;
  /** Keeps a small record on a schedule's row (its payload): what the last run did (jobs/maintenance.ts). */
  noteSchedule(kind: string, note: JobPayload): Promise<void>;
  /** Removes dead jobs (failed for good) that failed before `before`; schedules never die. Returns how many. */
  purgeDead(before: Date): Promise<number>;
}

export interface ScheduleState {
  nextRunAt: Date;
  lastError: string | null;
  note: JobPayload;
}

const LEASE_MS = 60_000;

export function createJobQueue(deps: { db: Database; clock: Clock; log: Logger; pollMs?: number }): JobQueue {
  const { db, clock, log } = deps;
  const handlers = new Map<string, JobHandler>();
  const schedules = new Map<string, number>();
  const scheduleId = (kind: string) => `schedule:${kind}`;
  let running = false;
  let timer: NodeJS.Timeout | undefined;
  let active: Promise<void> | undefined;
  let wakeAgain = false;

  async function claim(kind?: string): Promise<typeof jobs.$inferSelect | undefined> {
    return db.tx({}, async (tx) => {
      const now = clock.now();
      const [due] = await tx
        .select({ id: jobs.id })
        .from(jobs)
        .where(
          and(
            isNull(jobs.finishedAt),
            isNull(jobs.failedAt),
            lte(jobs.runAt, now),
            or(isNull(jobs.lockedUntil), lte(jobs.lockedUntil, now)),
            kind === undefined ? undefined : eq(jobs.kind, kind),
          ),
        )
        .orderBy(asc(jobs.runAt), asc(jobs.createdAt), asc(jobs.id))
        .limit(1)
        .for("update", { skipLocked: true });
      if (!due) return undefined;
      const [job] = await tx
        .update(jobs)
        .set({ lockedUntil: new Date(now.getTime() + LEASE_MS), attempts: sql`${jobs.attempts} + 1` })
        .where(eq(jobs.id, due.id))
        .returning();
      return job;
    });
  }

  async function runOne(kind?: string): Promise<boolean> {
    const job = await claim(kind);
    if (!job) return false;
    const handler = handlers.get(job.kind);
    try {
      if (!handler) throw new Error(`no handler for job kind ${job.kind}`);
      await handler(job.payload as JobPayload, { jobId: job.id, attempt: job.attempts });
      const every = job.id === scheduleId(job.kind) ? schedules.get(job.kind) : undefined;
      await db.tx({}, (tx) =>
        every !== undefined
          ? tx
              .update(jobs)
              .set({ runAt: new Date(clock.now().getTime() + every), lockedUntil: null, attempts: 0, lastError: null })
              .where(eq(jobs.id, job.id))
          : tx.delete(jobs).where(eq(jobs.id, job.id)),
      );
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      const final = job.attempts >= job.maxAttempts;
      // exponential backoff: 2s, 4s, 8s … capped at one hour
      const delay = Math.min(schedules.get(job.kind) ?? 3600_000, 3600_000, 1000 * 2 ** job.attempts);
      log.warn({ jobId: job.id, kind: job.kind, attempt: job.attempts, final, err: message }, "job failed");
      await db.tx({}, (tx) =>
        tx
          .update(jobs)
          .set({
            lastError: message.slice(0, 2000),
            lockedUntil: null,
            runAt: new Date(clock.now().getTime() + delay),
            // a schedule never gives up: it keeps its next run (at most one period away)
            failedAt: final && !schedules.has(job.kind) ? clock.now() : null,
          })
          .where(eq(jobs.id, job.id)),
      );
    }
    return true;
  }

  async function loop(): Promise<void> {
    do {
      wakeAgain = false;
      try {
        while (running && (await runOne()));
      } catch (e) {
        log.error({ err: e }, "job worker could not claim a job");
      }
    } while (running && wakeAgain);
  }

  function wake(): void {
    if (!running) return;
    if (active) {
      wakeAgain = true;
      return;
    }
    active = loop().finally(() => {
      active = undefined;
    });
  }

  return {
    async enqueue(tx, kind, payload, opts = {}) {
      const id = newId("job");
      await tx.insert(jobs).values({
        id,
        kind,
        payload,
        runAt: opts.runAt ?? clock.now(),
        maxAttempts: opts.maxAttempts ?? 10,
      });
      return id;
    },
    register(kind, handler) {
      handlers.set(kind, handler);
    },
    async schedule(kind, everyMs, handler) {
      handlers.set(kind, handler);
      schedules.set(kind, everyMs);
      // the first instance creates the row (due now); the others find it and keep its time
      await db.tx({}, (tx) =>
        tx
          .insert(jobs)
          .values({ id: scheduleId(kind), kind, payload: {}, runAt: clock.now(), maxAttempts: 1_000_000 })
          .onConflictDoNothing({ target: jobs.id }),
      );
    },
    kick: wake,
    start() {
      if (running) return;
      running = true;
      timer = setInterval(wake, deps.pollMs ?? 2000);
      timer.unref();
      wake();
    },
    async stop() {
      running = false;
      if (timer) clearInterval(timer);
      await active;
    },
    async drain(kind) {
      let n = 0;
      while (await runOne(kind)) n++;
      return n;
    },
    async scheduleState(kind) {
      const [row] = await db.tx({}, (tx) =>
        tx
          .select({ runAt: jobs.runAt, lastError: jobs.lastError, payload: jobs.payload })
          .from(jobs)
          .where(eq(jobs.id, scheduleId(kind))),
      );
      return row && { nextRunAt: row.runAt, lastError: row.lastError, note: row.payload as JobPayload };
    },
    async noteSchedule(kind, note) {
      await db.tx({}, (tx) =>
        tx
          .update(jobs)
          .set({ payload: note })
          .where(eq(jobs.id, scheduleId(kind))),
      );
    },
    async purgeDead(before) {
      const gone = await db.tx({}, (tx) =>
        tx
          .delete(jobs)
          .where(and(or(lte(jobs.failedAt, before), lte(jobs.finishedAt, before)), sql`${jobs.id} not like 'schedule:%'`))
          .returning({ id: jobs.id }),
      );
      return gone.length;
    },
  };
}
