import { randomBytes } from "node:crypto";
import { desc, eq } from "drizzle-orm";
import pino from "pino";
import type { Config } from "../config.ts";
import { createDeps, type Deps } from "../deps.ts";
import { auditHeads, mailOutbox, orgs } from "../db/schema/index.ts";
import { createLogger } from "../logger.ts";
import { identityRepo } from "../modules/identity/identity.repo.ts";
import { hashPassword, passwordProblem } from "../modules/identity/passwords.ts";
import { normalizeEmail } from "../lib/email.ts";
import { newId } from "../lib/ids.ts";
import { KEY_RELOAD_INTERVAL_MS } from "../modules/keys/signing-keys.ts";
import { formatPeriod } from "../jobs/maintenance.ts";

const out = (s: string) => process.stdout.write(s + "\n");

export async function withDeps<T>(config: Config, fn: (deps: Deps) => Promise<T>): Promise<T> {
  // Logs go to stderr so a command's own output stays clean; only warnings unless LOG_LEVEL asks for less.
  const level = config.logLevel === "silent" || config.logLevel === "error" || config.logLevel === "fatal" ? config.logLevel : "warn";
  const deps = await createDeps({ ...config, logLevel: level }, { log: createLogger(level, pino.destination(2)) });
  try {
    return await fn(deps);
  } finally {
    await deps.close();
  }
}

export async function migrateCommand(config: Config): Promise<void> {
  // createDeps migrates (and gives the app role its password on PostgreSQL)
  await withDeps({ ...config, autoMigrate: true }, async () => out("migrations are up to date"));
}

export async function createUser(config: Config, input: { email: string; name?: string; password?: string; admin: boolean }): Promise<void> {
  await withDeps(config, async (deps) => {
    const checked = normalizeEmail(input.email);
    if (!checked.ok) throw new Error(`--email: the email address ${checked.reason}`);
    const email = checked.email;
    const generated = input.password === undefined;
    const password = input.password ?? randomBytes(18).toString("base64url");
    const problem = passwordProblem(password, email);
    if (problem) throw new Error(`--password: the password ${problem}`);
    const hash = await hashPassword(password);
    const now = deps.clock.now();
    const userId = newId("user", now.getTime());
    const name = input.name ?? email.split("@")[0];
    await deps.db.tx({ userId }, async (tx) => {
      if (await identityRepo.findUserByEmail(tx, email)) throw new Error(`a user with email ${email} already exists`);
      const user = await identityRepo.insertUser(tx, {
        id: userId,
        email,
        name,
        emailVerifiedAt: now,
        isPlatformAdmin: input.admin,
        createdAt: now,
        updatedAt: now,
      });
      await identityRepo.setPasswordHash(tx, userId, hash, now);
      await deps.orgs.createPersonalOrg(tx, user, { type: "system", id: null });
    });
    out(`created ${input.admin ? "platform admin" : "user"} ${email} (${userId})`);
    if (generated) out(`password (shown once): ${password}`);
  });
}

/** Disables or enables an account as the operator (audited in the platform's chain as done by the system). */
export async function setUserDisabled(config: Config, email: string, disable: boolean): Promise<void> {
  await withDeps(config, async (deps) => {
    const checked = normalizeEmail(email);
    if (!checked.ok) throw new Error(`--email: the email address ${checked.reason}`);
    const user = await deps.identity.accounts.byEmail(checked.email);
    if (!user) throw new Error(`no user with email ${checked.email}`);
    const actor = { type: "system" as const, id: null };
    const r = disable
      ? await deps.identity.accounts.disable({ kind: "operator" }, user.id, actor)
      : await deps.identity.accounts.enable({ kind: "operator" }, user.id, actor);
    if (disable) out(`disabled ${r.user.email} (${r.user.id}); revoked ${r.revokedSessions} session(s)`);
    else out(`enabled ${r.user.email} (${r.user.id})`);
  });
}

export async function rotateKeys(config: Config): Promise<void> {
  await withDeps(config, async (deps) => {
    const { kid, previous } = await deps.keys.rotate();
    out(`new signing key ${kid} is now signing tokens`);
    const minutes = Math.ceil((KEY_RELOAD_INTERVAL_MS / 1000 + config.jwt.accessTtlSeconds + 60) / 60);
    for (const p of previous) out(`previous key ${p} stays in the JWKS for ${minutes} minutes, until every token it signed has expired`);
    out("other running instances pick the new key up within 10 minutes, or at once when they meet a token it signed");
  });
}

export async function listKeys(config: Config): Promise<void> {
  await withDeps(config, async (deps) => {
    for (const k of await deps.keys.list()) {
      const state = k.retiredAt ? "retired" : k.supersededAt ? `published until ${k.retireAfter?.toISOString()}` : "signing";
      out(`${k.kid}  ${k.alg}  created ${k.createdAt.toISOString()}  ${state}`);
    }
  });
}

export async function listMail(config: Config, limit: number): Promise<void> {
  await withDeps(config, async (deps) => {
    const rows = await deps.db.read((r) => r.select().from(mailOutbox).orderBy(desc(mailOutbox.id)).limit(limit));
    if (!rows.length) {
      out(config.mail.kind === "smtp" ? "SMTP_URL is set: mail goes to the SMTP server, not the dev outbox" : "the dev outbox is empty");
      return;
    }
    for (const m of rows.reverse()) {
      out(`--- ${m.createdAt.toISOString()}  to ${m.to}\nSubject: ${m.subject}\n\n${m.text}`);
    }
  });
}

/** Walks an org's audit chain; exits non-zero naming the first broken link. */
export async function verifyAudit(config: Config, orgId: string): Promise<boolean> {
  return withDeps(config, async (deps) => {
    // a purged org keeps its audit log (and its anchored head): verify that too
    const exists = await deps.db.tx({ orgId }, async (tx) => [
      ...(await tx.select({ id: orgs.id }).from(orgs).where(eq(orgs.id, orgId))),
      ...(await tx.select({ id: auditHeads.orgId }).from(auditHeads).where(eq(auditHeads.orgId, orgId))),
    ]);
    if (!exists.length) {
      out(`no organization ${orgId}`);
      return false;
    }
    const result = await deps.audit.verify(orgId);
    if (result.ok) {
      out(`audit chain of ${orgId} is intact: ${result.events} events`);
      return true;
    }
    out(`audit chain of ${orgId} is BROKEN at event #${result.brokenAt.seq} (${result.brokenAt.id}): ${result.brokenAt.reason}`);
    return false;
  });
}

/** `plinth maintenance list`: each task, its schedule, when it runs next, and what its last run did. */
export async function listMaintenance(config: Config): Promise<void> {
  await withDeps(config, async (deps) => {
    for (const t of await deps.maintenance.list()) {
      const next = t.nextRunAt ? `next ${t.nextRunAt.toISOString()}` : "not scheduled";
      const last = t.lastRun
        ? `last ${t.lastRun.at.toISOString()} (${t.lastRun.by}) ${t.lastRun.outcome}${t.lastRun.error ? `: ${t.lastRun.error}` : ""}; removed ${describeCounts(t.lastRun.counts)}`
        : "never run";
      out(`${t.name}  every ${formatPeriod(t.everyMs)}  ${next}  ${last}`);
    }
  });
}

/** `plinth maintenance run <task>`: runs one task now and prints what it removed; 2 (with the list) for an unknown task. */
export async function runMaintenance(config: Config, task: string | undefined): Promise<number> {
  return withDeps(config, async (deps) => {
    if (!task || !deps.maintenance.names().includes(task)) {
      process.stderr.write(`plinth: ${task ? `no maintenance task ${task}` : "maintenance run needs a task"}; the tasks are:\n`);
      for (const n of deps.maintenance.names()) process.stderr.write(`  ${n}\n`);
      return 2;
    }
    const r = await deps.maintenance.run(task);
    out(`${task}: removed ${describeCounts(r.counts)} in ${r.durationMs} ms`);
    return 0;
  });
}

const describeCounts = (counts: Record<string, number>) =>
  Object.keys(counts).length
    ? Object.entries(counts)
        .map(([k, v]) => `${v} ${k}`)
        .join(", ")
    : "nothing";
