import type { FastifyPluginAsync } from "fastify";
import { Redis } from "ioredis";
import type { Logger } from "pino";
import type { Config } from "./config.ts";
import { openPglite, openPostgres, type Database } from "./db/client.ts";
import { loadOrCreateKeyFile, lockDataDir } from "./db/data-dir.ts";
import { migrate } from "./db/migrate.ts";
import { createKms } from "./kms/kms.ts";
import { assertRootKeyConfigured } from "./kms/root-check.ts";
import { createJobQueue, type JobQueue } from "./jobs/queue.ts";
import { createMaintenance, type Maintenance } from "./jobs/maintenance.ts";
import { systemClock, type Clock } from "./lib/clock.ts";
import { deriveKey } from "./lib/crypto.ts";
import { createOutboundGuard } from "./lib/outbound.ts";
import { createThrottle, type LimiterStore, type Throttle } from "./limits/throttle.ts";
import { createServerLogger } from "./logger.ts";
import { createMailer, type Mailer } from "./mail/mailer.ts";
import { createBus, type Bus } from "./pubsub/bus.ts";
import { DEFAULT_ABUSE_RULES, type AbuseRules } from "./modules/identity/abuse.ts";
import * as access from "./modules/access/index.ts";
import * as audit from "./modules/audit/index.ts";
import * as connections from "./modules/connections/index.ts";
import * as identity from "./modules/identity/index.ts";
import * as invitations from "./modules/invitations/index.ts";
import * as members from "./modules/members/index.ts";
import * as teams from "./modules/teams/index.ts";
import * as keys from "./modules/keys/index.ts";
import { KEY_RELOAD_INTERVAL_MS } from "./modules/keys/signing-keys.ts";
import * as orgs from "./modules/orgs/index.ts";
import * as serviceAccounts from "./modules/service-accounts/index.ts";
import * as serviceKeys from "./modules/service-keys/index.ts";
import * as impersonation from "./modules/impersonation/index.ts";
import * as vault from "./modules/vault/index.ts";
import * as zkVaults from "./modules/zk-vaults/index.ts";
import * as webhooks from "./modules/webhooks/index.ts";
import * as ingestion from "./modules/ingestion/index.ts";

export interface Deps {
  config: Config;
  log: Logger;
  clock: Clock;
  db: Database;
  jobs: JobQueue;
  /** Scheduled clean-ups (jobs/maintenance.ts): `plinth maintenance list|run`. */
  maintenance: Maintenance;
  mailer: Mailer;
  redis?: Redis;
  bus: Bus;
  /** Failed credentials per client IP on authenticated routes (the auth hook). */
  credentialFailures: Throttle;
  keys: ReturnType<typeof keys.wire>["service"];
  apiKeys: ReturnType<typeof keys.wire>["apiKeys"];
  orgs: ReturnType<typeof orgs.wire>["service"];
  orgProfile: ReturnType<typeof orgs.wire>["profile"];
  orgLifecycle: ReturnType<typeof orgs.wire>["lifecycle"];
  access: Awaited<ReturnType<typeof access.wire>>["service"];
  principals: Awaited<ReturnType<typeof access.wire>>["principals"];
  audit: ReturnType<typeof audit.wire>["service"];
  identity: ReturnType<typeof identity.wire>["service"];
  teams: ReturnType<typeof teams.wire>["service"];
  members: ReturnType<typeof members.wire>["service"];
  invitations: ReturnType<typeof invitations.wire>["service"];
  serviceAccounts: ReturnType<typeof serviceAccounts.wire>["service"];
  serviceKeys: ReturnType<typeof serviceKeys.wire>["serviceKeys"];
  impersonation: ReturnType<typeof impersonation.wire>["service"];
  vault: ReturnType<typeof vault.wire>["service"];
  connections: ReturnType<typeof connections.wire>["service"];
  webhooks: ReturnType<typeof webhooks.wire>["service"];
  ingestion: ReturnType<typeof ingestion.wire>;
  routes: FastifyPluginAsync[];
  close(): Promise<void>;
}

export interface DepsOverrides {
  log?: Logger;
  clock?: Clock;
  /** An already-open database (tests share one per file). */
  db?: Database;
  abuseRules?: AbuseRules;
}

const HOUR_MS = 60 * 60 * 1000;
/** How long a job that failed for good stays in the jobs table (for `plinth jobs`, a look at its last error). */
export const DEAD_JOB_RETENTION_MS = 14 * 24 * HOUR_MS;

/** The app role's PostgreSQL password, derived from the master key unless DATABASE_APP_URL names one. */
export function appRolePassword(masterKey: Buffer): string {
  return deriveKey(masterKey, "db-app-role-password").toString("base64url");
}

export function appDatabaseUrl(config: Extract<Config["database"], { kind: "postgres" }>, masterKey: Buffer): string {
  if (config.appUrl) return config.appUrl;
  const u = new URL(config.url);
  u.username = "plinth_app";
  u.password = appRolePassword(masterKey);
  return u.toString();
}

/** Opens the database for `config`: PGlite under the data dir (locked), or PostgreSQL as the app role. */
export async function openDatabase(config: Config, masterKey: Buffer): Promise<{ db: Database; release: () => void }> {
  if (config.database.kind === "embedded") {
    const release = lockDataDir(config.dataDir);
    try {
      return { db: await openPglite(config.database.dir), release };
    } catch (e) {
      release();
      throw e;
    }
  }
  const db = await openPostgres({ ownerUrl: config.database.url, appUrl: appDatabaseUrl(config.database, masterKey), poolSize: config.database.poolSize });
  return { db, release: () => {} };
}

export function resolveMasterKey(config: Config, log: Logger): Buffer {
  if (config.masterKey) return config.masterKey;
  const file = loadOrCreateKeyFile(config.dataDir);
  if (file.created) log.warn({ path: file.path }, "generated a master key file (mode 0600); back it up with the data dir, or set PLINTH_MASTER_KEY");
  return file.key;
}

/** The composition root: database → platform ports → modules. */
export async function createDeps(config: Config, overrides: DepsOverrides = {}): Promise<Deps> {
  const log = overrides.log ?? createServerLogger(config);
  const clock = overrides.clock ?? systemClock;
  const masterKey = resolveMasterKey(config, log);
  let release = () => {};
  let db = overrides.db;
  if (!db) {
    const opened = await openDatabase(config, masterKey);
    db = opened.db;
    release = opened.release;
  }
  let redis: Redis | undefined;
  const closers: (() => Promise<void>)[] = [];
  try {
    // a wrong root key stops the boot here, before migrations or anything else writes
    await assertRootKeyConfigured(db, createKms({ masterKey, previousMasterKeys: config.previousMasterKeys, clock }));
    if (config.autoMigrate && !overrides.db) {
      const wantsPassword = config.database.kind === "postgres" && !config.database.appUrl;
      const { applied } = await migrate(db, wantsPassword ? appRolePassword(masterKey) : undefined);
      if (applied) log.info({ applied }, "applied database migrations");
    }
    redis =
      config.redis.kind === "configured" ? new Redis(config.redis.url, { lazyConnect: false, maxRetriesPerRequest: 2, enableOfflineQueue: true }) : undefined;
    redis?.on("error", (e) => log.warn({ err: e.message }, "redis connection problem"));
    const limiterStore: LimiterStore = redis ? { kind: "redis", client: redis } : { kind: "memory" };

    const jobs = createJobQueue({ db, clock, log });
    const maintenance = createMaintenance({ jobs, clock, log });
    const mailer = createMailer({ config: config.mail, db, log, logBodies: config.database.kind === "embedded" });
    const au = audit.wire({ db, clock });
    const bus = await createBus({ redis, log });
    closers.push(bus.close);
    const ac = await access.wire({ db, clock, bus, audit: au.service });
    const k = keys.wire({
      db,
      clock,
      log,
      masterKey,
      previousMasterKeys: config.previousMasterKeys,
      jwt: config.jwt,
      accessTtlSeconds: config.jwt.accessTtlSeconds,
      access: ac.service,
      principals: ac.principals,
      audit: au.service,
      limiterStore,
    });
    closers.push(k.close); // writes the API key usage counted since the last batch
    const created = await k.service.ensureActiveKey();
    if (created.created) log.info("generated the first token-signing key");
    // superseded keys leave the JWKS once their tokens have expired: one job across all instances, every reload period
    await maintenance.registerMaintenance("keys.retire", KEY_RELOAD_INTERVAL_MS, async () => {
      const retired = await k.service.retireExpired();
      if (retired.length) log.info({ kids: retired }, "retired signing keys");
      return { signingKeys: retired.length };
    });
    // each table has one writer: a new org's owner goes in through the members module (wired later, see wireMemberships)
    const o = orgs.wire({ db, clock, audit: au.service, access: ac.service, jobs, members: members.wireMemberships() });
    const id = identity.wire({
      db,
      clock,
      jobs,
      mailer,
      keys: k.service,
      orgs: o.service,
      limiterStore,
      abuseRules: overrides.abuseRules ?? DEFAULT_ABUSE_RULES,
      publicUrl: config.publicUrl,
      accessTtlSeconds: config.jwt.accessTtlSeconds,
      refreshTtlSeconds: config.jwt.refreshTtlSeconds,
      bus,
      maxTokenTtlSeconds: Math.max(config.jwt.accessTtlSeconds, 3600),
      audit: au.service,
      // a disabled account's memberships stop counting: every org it belongs to drops its cached access
      onAccountChanged: async (userId) => {
        for (const { org } of await o.service.listMyOrgs(userId)) await ac.service.invalidate(org.id);
      },
    });
    closers.push(id.close);
    await id.start();
    const tm = teams.wire({ db, clock, audit: au.service, access: ac.service, grants: ac.grants });
    const sa = serviceAccounts.wire({
      db,
      clock,
      audit: au.service,
      access: ac.service,
      keys: k.service,
      apiKeys: k.apiKeys.verifier,
      apiKeyService: k.apiKeys,
      limiterStore,
      issuer: config.jwt.issuer,
      publicUrl: config.publicUrl,
    });
    const svk = serviceKeys.wire({ db, clock, log, jwt: config.jwt, access: ac.service, audit: au.service });
    closers.push(svk.close); // writes the service keys' last use counted since the last batch
    // a removal ends or lists the member's rows through the modules owning them; revoked sessions stop after the commit
    const memberOwners = { sessions: id.service.sessions, grants: ac.grants, keys: k.apiKeys.owners, clients: sa.service, serviceKeys: svk.serviceKeys.makers };
    const mb = members.wire({
      db,
      clock,
      audit: au.service,
      access: ac.service,
      owners: memberOwners,
      onSessionsRevoked: (ids) => id.service.sessions.revoked(ids),
    });
    // whether an id names a member or a team: asked by grants, the vault and zero-knowledge vaults, answered by owners
    ac.answerSubjects({ isMember: mb.service.members.isMember, teamExists: teams.teamExists });
    const inv = invitations.wire({
      db,
      clock,
      audit: au.service,
      access: ac.service,
      jobs,
      mailer,
      identity: id.service.identity,
      members: mb.service.members,
      teams: tm.service.members,
      publicUrl: config.publicUrl,
    });
    // the other clean-ups, each a function of the module owning the table (docs/operations/maintenance.md)
    await maintenance.registerMaintenance("identity.sessions", HOUR_MS, id.service.maintenance.purgeSessions);
    await maintenance.registerMaintenance("identity.email-tokens", HOUR_MS, id.service.maintenance.purgeEmailTokens);
    await maintenance.registerMaintenance("invitations.ended", HOUR_MS, inv.service.purgeEnded);
    await maintenance.registerMaintenance("orgs.purge-deleted", HOUR_MS, o.lifecycle.purgeDue);
    await maintenance.registerMaintenance("jobs.dead", 24 * HOUR_MS, async () => ({
      jobs: await jobs.purgeDead(new Date(clock.now().getTime() - DEAD_JOB_RETENTION_MS)),
    }));
    // what each kind of principal may do is answered in one place (access/principal.ts), from these modules' facts
    ac.principals.setSources({
      serviceAccounts: sa.service.memberships,
      clients: sa.service.clients,
      sourceKeys: k.apiKeys.verifier,
      services: svk.serviceKeys.verifier,
    });
    const imp = impersonation.wire({ db, clock, keys: k.service, access: ac.service, audit: au.service, bus });
    const vt = vault.wire({
      db,
      clock,
      masterKey,
      previousMasterKeys: config.previousMasterKeys,
      jobs,
      audit: au.service,
      subjects: ac.subjects,
      access: ac.service,
      grants: ac.grants,
      objects: ac.objects,
      // a lease is held by a member or a service account, and only while it is one (and enabled)
      holders: { membership: (orgId, h) => (h.type === "user" ? ac.service.membership(orgId, h.id) : sa.service.memberships.membership(orgId, h.id)) },
      mailer,
      publicUrl: config.publicUrl,
    });
    // orgs whose rotation period has passed get a new KEK: one job across all instances
    await jobs.schedule(vault.ROTATE_DUE_JOB, vault.ROTATE_DUE_EVERY_MS, async () => {
      const rotated = await vt.keys.rotateDue();
      if (rotated.length) log.info({ orgs: rotated }, "rotated vault keys on schedule");
    });
    // expiry notices, rotation reminders, version retention and ended leases: one pass per due org, across instances once
    await maintenance.registerMaintenance(vault.LIFECYCLE_JOB, vault.LIFECYCLE_EVERY_MS, async () => {
      const passes = await vt.lifecycle.runDue();
      if (passes.length) log.info({ orgs: passes.map((p) => p.org_id) }, "ran the vault lifecycle pass");
      const sum = (f: (p: (typeof passes)[number]) => number) => passes.reduce((n, p) => n + f(p), 0);
      return {
        orgs: passes.length,
        expiry_notices: sum((p) => p.expiring.length),
        rotation_reminders: sum((p) => p.rotation_due.length),
        versions_pruned: sum((p) => p.versions_pruned),
        leases_purged: sum((p) => p.leases_purged),
      };
    });
    // every call to a URL a tenant gave (token endpoints, webhook endpoints) passes the SSRF guard
    const outbound = createOutboundGuard({ allow: config.outboundAllow });
    const cn = connections.wire({ db, clock, jobs, audit: au.service, secrets: vt.service.managed, outbound });
    // connections whose access token expires within minutes get one refresh job each: one scan across all instances
    await jobs.schedule(connections.REFRESH_DUE_JOB, connections.REFRESH_DUE_EVERY_MS, async () => {
      const queued = await cn.service.enqueueDue();
      if (queued) log.info({ queued }, "queued connection refreshes");
    });
    const zk = zkVaults.wire({ db, clock, audit: au.service, subjects: ac.subjects });
    // outbound webhooks: every audited change is offered to them (audit.onRecorded), secrets under the vault's KMS layer
    const wh = webhooks.wire({
      db,
      clock,
      log,
      jobs,
      audit: au.service,
      kms: vt.kms,
      outbound,
      bus,
      mailer,
      notifiable: members.membersToNotify,
      publicUrl: config.publicUrl,
    });
    // webhook signing secrets are under the org's key too: its rotation re-wraps them, and keeps what they still use
    vt.keys.addEnvelopeHolder(wh.envelopes);
    // inbound events: stored before the 202, processed in batches by jobs, purged after the retention window
    const ing = ingestion.wire({ db, clock, jobs, bounds: config.ingestion });
    await maintenance.registerMaintenance(ingestion.RETENTION_JOB, ingestion.RETENTION_EVERY_MS, async () => {
      const purged = await ing.service.runRetention();
      if (purged.length) log.info({ orgs: purged }, "purged ingested events past their retention");
      return { orgs: purged.length, events: purged.reduce((n, p) => n + p.purged, 0) };
    });
    const ownDb = db;
    return {
      config,
      log,
      clock,
      db,
      jobs,
      maintenance,
      mailer,
      redis,
      bus,
      credentialFailures: createThrottle(limiterStore, "credentialFailuresPerIp", (overrides.abuseRules ?? DEFAULT_ABUSE_RULES).credentialFailuresPerIp),
      keys: k.service,
      apiKeys: k.apiKeys,
      orgs: o.service,
      orgProfile: o.profile,
      orgLifecycle: o.lifecycle,
      access: ac.service,
      principals: ac.principals,
      audit: au.service,
      identity: id.service,
      teams: tm.service,
      members: mb.service,
      invitations: inv.service,
      serviceAccounts: sa.service,
      serviceKeys: svk.serviceKeys,
      impersonation: imp.service,
      vault: vt.service,
      connections: cn.service,
      webhooks: wh.service,
      ingestion: ing,
      routes: [
        ...k.routes,
        ...o.routes,
        ...id.routes,
        ...ac.routes,
        ...au.routes,
        ...tm.routes,
        ...mb.routes,
        ...inv.routes,
        ...sa.routes,
        ...svk.routes,
        ...imp.routes,
        ...vt.routes,
        ...cn.routes,
        ...zk.routes,
        ...wh.routes,
        ...ing.routes,
      ],
      async close() {
        await jobs.stop();
        for (const c of closers) await c();
        mailer.close();
        redis?.disconnect();
        if (!overrides.db) await ownDb.close();
        release();
      },
    };
  } catch (e) {
    for (const c of closers) await c().catch(() => {});
    redis?.disconnect(); // a live connection would keep the process from exiting
    if (!overrides.db) await db.close();
    release();
    throw e;
  }
}
