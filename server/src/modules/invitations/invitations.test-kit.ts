/** Shared set-up of the invitation tests: an app with a real SMTP server, a manual clock and a captured log. */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { Writable } from "node:stream";
import { sql, type SQL } from "drizzle-orm";
import { createTestApp, GOOD_PASSWORD, makeOrg, signUp, uniqueSlug, type Backend, type TestApp, type TestUser } from "../../../test/harness.ts";
import { linkIn, startSmtp, type TestSmtp } from "../../../test/smtp.ts";
import { createManualClock } from "../../lib/clock.ts";
import { newId } from "../../lib/ids.ts";
import { createLogger } from "../../logger.ts";

export interface Kit {
  t: TestApp;
  smtp: TestSmtp;
  clock: ReturnType<typeof createManualClock>;
  /** Every log line the app wrote (at trace level). */
  log: string[];
  close(): Promise<void>;
}

export async function startKit(backend: Backend): Promise<Kit> {
  const smtp = await startSmtp();
  const clock = createManualClock();
  const log: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      log.push(String(chunk));
      cb();
    },
  });
  const t = await createTestApp({ backend, clock, env: { SMTP_URL: smtp.url }, log: createLogger("trace", sink) });
  return {
    t,
    smtp,
    clock,
    log,
    async close() {
      await t.close();
      await smtp.close();
    },
  };
}

export async function rows<T>(t: TestApp, q: SQL): Promise<T[]> {
  return ((await t.db.owner.execute(q)) as unknown as { rows: T[] }).rows;
}

export const sha256 = (s: string) => createHash("sha256").update(s).digest("base64url");

/** A new org "Invite Co" (the name the mails show) owned by `owner`. */
export function newOrg(t: TestApp, owner: TestUser): Promise<string> {
  return makeOrg(t, owner, "Invite Co", uniqueSlug("inv"));
}

export async function addTeam(t: TestApp, orgId: string, name = `team-${randomBytes(4).toString("hex")}`): Promise<string> {
  const id = newId("team");
  await t.db.owner.execute(sql`insert into teams (id, org_id, name, path) values (${id}, ${orgId}, ${name}, ARRAY[${id}]::text[])`);
  return id;
}

export async function addCustomRole(t: TestApp, orgId: string, name: string, permissions: string[]): Promise<void> {
  await t.db.owner.execute(
    sql`insert into custom_roles (id, org_id, name, permissions) values (${newId("role")}, ${orgId}, ${name}, ${sql.raw(`ARRAY[${permissions.map((p) => `'${p}'`).join(",")}]::text[]`)})`,
  );
  await t.deps.access.invalidate(orgId);
}

export async function markVerified(t: TestApp, user: TestUser): Promise<void> {
  await t.db.owner.execute(sql`update users set email_verified_at = now() where id = ${user.id}`);
}

/** A signed-up user whose address is verified. */
export async function verifiedUser(t: TestApp, name = "Invitee"): Promise<TestUser> {
  const u = await signUp(t, name);
  await markVerified(t, u);
  return u;
}

/** Fresh tokens for `user` (after the clock moved past the old access token). */
export async function relogin(t: TestApp, user: TestUser): Promise<TestUser> {
  const res = await t.call("POST", "/v1/auth/login", { email: user.email, password: user.password ?? GOOD_PASSWORD });
  assert.equal(res.statusCode, 200, res.body);
  return { ...user, ...res.json() };
}

export const SUBJECT = /^Join .+ on Plinth$/;
export const TOKEN = /^org_[0-9a-z]{26}\.[A-Za-z0-9_-]{43}$/;

/** Waits for the next invitation mail to `email` and returns its token, checking where the link points. */
export async function tokenFor(smtp: TestSmtp, email: string): Promise<string> {
  const mail = await smtp.waitFor(email, (m) => SUBJECT.test(m.subject));
  const { url, token } = linkIn(mail, "/invitations/accept");
  assert.equal(url.origin, "http://plinth.test");
  assert.equal(url.pathname, "/invitations/accept");
  assert.match(token, TOKEN);
  assert.ok(mail.html.includes(token), "the HTML part carries the same link");
  return token;
}

export async function auditActions(t: TestApp, orgId: string) {
  return (await t.deps.audit.list(orgId, {}, 1000)).reverse();
}
