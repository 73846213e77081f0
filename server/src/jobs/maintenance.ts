import type { Logger } from "pino";
import type { Clock } from "../lib/clock.ts";
import type { JobPayload, JobQueue } from "./queue.ts";

/** What one run removed (or did), by kind of row: `{ sessions: 3 }`. */
export type MaintenanceCounts = Record<string, number>;
/** A task: a small function owned by the module whose table it cleans; it returns what it removed. */
export type MaintenanceRun = () => Promise<MaintenanceCounts>;

export interface MaintenanceLastRun {
  at: Date;
  outcome: "ok" | "failed";
  by: "schedule" | "cli";
  durationMs: number;
  counts: MaintenanceCounts;
  error: string | null;
}

export interface MaintenanceTask {
  name: string;
  everyMs: number;
  nextRunAt: Date | null;
  lastRun: MaintenanceLastRun | null;
}

/**
 * A task's name is its schedule's job kind (its row in the jobs table is `schedule:<name>`), so a schedule that
 * becomes a task (keys.retire) keeps its row. It must differ from every other job kind: a schedule takes its kind's
 * handler.
 */

/**
 * The maintenance registry: each task is scheduled through the job queue (once across all instances, see
 * JobQueue.schedule) and its last run — time, outcome, counts — is kept on its schedule's row, where
 * `plinth maintenance list` reads it. `run` runs one now (`plinth maintenance run <task>`), recorded the same way.
 */
export function createMaintenance(deps: { jobs: Pick<JobQueue, "schedule" | "scheduleState" | "noteSchedule">; clock: Clock; log: Logger }) {
  const { jobs, clock, log } = deps;
  const tasks = new Map<string, { everyMs: number; run: MaintenanceRun }>();

  async function runTask(name: string, by: MaintenanceLastRun["by"]): Promise<MaintenanceLastRun> {
    const task = tasks.get(name);
    if (!task) throw new Error(`no maintenance task ${name}`);
    const started = clock.now();
    const t0 = performance.now();
    let counts: MaintenanceCounts = {};
    let error: unknown;
    try {
      counts = await task.run();
    } catch (e) {
      error = e;
    }
    const last: MaintenanceLastRun = {
      at: started,
      outcome: error === undefined ? "ok" : "failed",
      by,
      durationMs: Math.round(performance.now() - t0),
      counts,
      error: error === undefined ? null : (error instanceof Error ? error.message : String(error)).slice(0, 500),
    };
    await jobs.noteSchedule(name, toNote(last));
    if (error !== undefined) throw error;
    const removed = Object.values(counts).reduce((a, b) => a + b, 0);
    if (removed) log.info({ task: name, counts }, "maintenance task removed rows");
    return last;
  }

  return {
    /** Adds a task and schedules it every `everyMs` (call before the worker starts). Names are unique. */
    async registerMaintenance(name: string, everyMs: number, run: MaintenanceRun): Promise<void> {
      if (tasks.has(name)) throw new Error(`maintenance task ${name} is registered twice`);
      tasks.set(name, { everyMs, run });
      await jobs.schedule(name, everyMs, async () => {
        await runTask(name, "schedule");
      });
    },

    names(): string[] {
      return [...tasks.keys()].sort();
    },

    /** Runs one task now; its outcome is recorded as its last run. Throws for an unknown name (see `names`). */
    run(name: string): Promise<MaintenanceLastRun> {
      return runTask(name, "cli");
    },

    /** Every task with its schedule and last run. */
    async list(): Promise<MaintenanceTask[]> {
      const out: MaintenanceTask[] = [];
      for (const name of [...tasks.keys()].sort()) {
        const state = await jobs.scheduleState(name);
        out.push({ name, everyMs: tasks.get(name)!.everyMs, nextRunAt: state?.nextRunAt ?? null, lastRun: state ? fromNote(state.note) : null });
      }
      return out;
    },
  };
}

export type Maintenance = ReturnType<typeof createMaintenance>;

// The schedule row's payload is flat (JobPayload): counts go in as `removed.<kind>`.
function toNote(r: MaintenanceLastRun): JobPayload {
  const note: JobPayload = { last_run_at: r.at.toISOString(), outcome: r.outcome, by: r.by, duration_ms: r.durationMs, error: r.error };
  for (const [k, v] of Object.entries(r.counts)) note[`removed.${k}`] = v;
  return note;
}

function fromNote(note: JobPayload): MaintenanceLastRun | null {
  if (typeof note.last_run_at !== "string") return null;
  const counts: MaintenanceCounts = {};
  for (const [k, v] of Object.entries(note)) if (k.startsWith("removed.") && typeof v === "number") counts[k.slice("removed.".length)] = v;
  return {
    at: new Date(note.last_run_at),
    outcome: note.outcome === "failed" ? "failed" : "ok",
    by: note.by === "cli" ? "cli" : "schedule",
    durationMs: typeof note.duration_ms === "number" ? note.duration_ms : 0,
    counts,
    error: typeof note.error === "string" ? note.error : null,
  };
}

/** "1 h", "10 min", "1 d": a schedule's period for people. */
export function formatPeriod(ms: number): string {
  const units: [number, string][] = [
    [86_400_000, "d"],
    [3_600_000, "h"],
    [60_000, "min"],
    [1000, "s"],
  ];
  for (const [size, unit] of units) if (ms >= size && ms % size === 0) return `${ms / size} ${unit}`;
  return `${ms} ms`;
}
