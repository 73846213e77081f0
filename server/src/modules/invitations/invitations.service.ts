import { actsAsRole, requireWithin } from "../access/authority.ts";
import { existingTeams } from "../teams/index.ts";
import { liveOrg } from "../orgs/index.ts";
import type { Database, Executor } from "../../db/client.ts";
import type { JobPayload, JobQueue } from "../../jobs/queue.ts";
import type { Clock } from "../../lib/clock.ts";
import { canonicalEmail, requireEmail } from "../../lib/email.ts";
import { isAppError, platformError } from "../../lib/errors.ts";
import { isId, newId } from "../../lib/ids.ts";
import { isUniqueViolation } from "../../lib/pg-errors.ts";
import type { Mailer } from "../../mail/mailer.ts";
import type { AccessService, OrgMembership } from "../access/access.service.ts";
import type { AuditActor, AuditService } from "../audit/audit.service.ts";
import { accountIdByEmail, accountNames } from "../identity/index.ts";
import type { MembersService } from "../members/members.service.ts";
import { renderInvitationEmail } from "./invitations.email.ts";
import { invitationError } from "./invitations.errors.ts";
import { invitationsRepo as repo, statusOf, type InvitationRow, type InvitationStatus } from "./invitations.repo.ts";
import { newInvitationToken } from "./invitations.token.ts";

export const INVITATION_JOB = "invitations.send-email";
export const INVITATION_TTL_MS = 7 * 24 * 3600 * 1000;

export interface InvitationInput {
  email: string;
  role: string;
  teams?: string[];
}

export type BulkResult =
  | { email: string; status: "invited"; invitation_id: string }
  | { email: string; status: "error"; error: { code: string; detail: string; field?: string } };

/**
 * Who an invitation names as its inviter. A membership's id says which kind of principal acts: a person (directly or
 * through their API key), a service account (sa_…: its token or key) or a registered service (svk_…). Only a person
 * goes into invited_by (a foreign key to users): writing a machine's id there was a 500.
 */
export function inviterOf(m: Pick<OrgMembership, "userId">): {
  invitedBy: string | null;
  invitedByType: "user" | "service_account" | "service";
  invitedById: string;
} {
  if (isId("serviceAccount", m.userId)) return { invitedBy: null, invitedByType: "service_account", invitedById: m.userId };
  if (isId("serviceKey", m.userId)) return { invitedBy: null, invitedByType: "service", invitedById: m.userId };
  return { invitedBy: m.userId, invitedByType: "user", invitedById: m.userId };
}

/**
 * Inviting people by email: create (one or in bulk), list, resend, revoke, and the job that mails the link. Requests
 * only enqueue a job naming the invitation; the job makes the token when it runs, so no secret sits in a job payload
 * and the raw token exists only in the mail.
 */
export function createInvitationsService(deps: {
  db: Database;
  clock: Clock;
  audit: Pick<AuditService, "record">;
  access: Pick<AccessService, "rolePermissions" | "require">;
  jobs: Pick<JobQueue, "enqueue" | "kick" | "register">;
  mailer: Pick<Mailer, "send">;
  members: Pick<MembersService, "isMember">;
  publicUrl: string;
}) {
  const { db, clock, audit, access, jobs, mailer, members } = deps;

  /** Whether the account with this canonical email is a member already (identity's and members' own functions). */
  async function isMemberByEmail(tx: Executor, orgId: string, emailKey: string): Promise<boolean> {
    const userId = await accountIdByEmail(tx, emailKey);
    return userId !== undefined && (await members.isMember(tx, orgId, userId));
  }

  /**
   * The role an invitation offers must exist and hold nothing the inviter lacks (authority.ts: 403 ROLE_ABOVE_OWN with
   * every missing permission); only owners offer ownership. `field` names the request field holding the role (absent
   * on resend, where the role is the invitation's).
   */
  async function requireOfferable(tx: Executor, m: OrgMembership, role: string, field?: string): Promise<void> {
    const perms = await access.rolePermissions(tx, m.orgId, role);
    if (!perms) {
      if (field) throw platformError("VALIDATION_FAILED", `There is no role ${role} in this organization.`, { field });
      throw invitationError("INVITATION_ROLE_GONE", `The role ${role} no longer exists; revoke this invitation and send a new one.`);
    }
    requireWithin(m, perms, { subject: `The role ${role}`, field, error: (detail, options) => invitationError("ROLE_ABOVE_OWN", detail, options) });
    // a peer grant can lend every permission, but never ownership
    if (role === "owner" && !actsAsRole(m, "owner")) throw invitationError("ROLE_ABOVE_OWN", "Only owners can invite owners.", { field });
  }

  async function createOne(m: OrgMembership, input: InvitationInput, actor: AuditActor): Promise<InvitationRow> {
    // the canonical address (lib/email.ts) is both what is mailed and what the invitation is matched on, against
    // accounts (whose addresses are stored in the same form) and against other invitations
    const email = requireEmail(input.email);
    const emailKey = email;
    const teamIds = [...new Set(input.teams ?? [])];
    const now = clock.now();
    const orgId = m.orgId;
    // placing someone in a team is managing its membership: teams:update, or admin of that team (a maintainer).
    // Asked before the transaction: the engine reads through its own (PGlite has one session).
    for (const teamId of teamIds) {
      if (!m.permissions.has("teams:update")) await access.require(m, "teams:update", { ref: { type: "team", id: teamId }, relation: "admin" });
    }
    try {
      return await db.tx({ orgId }, async (tx) => {
        await requireOfferable(tx, m, input.role, "role");
        const found = await existingTeams(tx, orgId, teamIds);
        const unknown = teamIds.filter((id) => !found.has(id));
        if (unknown.length) throw platformError("VALIDATION_FAILED", `No team ${unknown.join(", ")} in this organization.`, { field: "teams" });
        if (await isMemberByEmail(tx, orgId, emailKey)) {
          throw invitationError("ALREADY_MEMBER", `${email} is already a member of this organization.`, { field: "email" });
        }
        const open = await repo.findOpenByEmail(tx, orgId, emailKey);
        if (open && open.expiresAt > now) {
          throw invitationError("INVITATION_PENDING", `${email} already has a pending invitation (${open.id}); resend or revoke it.`, { field: "email" });
        }
        if (open) {
          // an expired, unanswered invitation gives way to the new one (one open invitation per address)
          await repo.update(tx, orgId, open.id, { revokedAt: now });
          await audit.record(tx, actor, {
            orgId,
            action: "invitation.revoked",
            target: { type: "invitation", id: open.id },
            diff: { status: ["expired", "revoked"], reason: [null, "superseded"] },
          });
        }
        const inv = await repo.insert(tx, {
          id: newId("invitation", now.getTime()),
          orgId,
          email,
          emailKey,
          role: input.role,
          teamIds,
          ...inviterOf(m),
          expiresAt: new Date(now.getTime() + INVITATION_TTL_MS),
          createdAt: now,
        });
        await audit.record(tx, actor, {
          orgId,
          action: "invitation.created",
          target: { type: "invitation", id: inv.id },
          diff: { email: [null, email], role: [null, input.role], team_ids: [null, teamIds] },
        });
        await jobs.enqueue(tx, INVITATION_JOB, { orgId, invitationId: inv.id });
        return inv;
      });
    } catch (e) {
      if (isUniqueViolation(e))
        throw invitationError("INVITATION_PENDING", `${email} already has a pending invitation; resend or revoke it.`, { field: "email" });
      throw e;
    }
  }

  /** The job: a fresh token replaces any earlier one, then the mail goes out (after the commit, never inside it). */
  async function sendInvitation(payload: JobPayload): Promise<void> {
    const orgId = String(payload.orgId);
    const invitationId = String(payload.invitationId);
    const now = clock.now();
    const { token, hash } = newInvitationToken(orgId);
    const mail = await db.tx({ orgId }, async (tx) => {
      const inv = await repo.findById(tx, orgId, invitationId, true);
      if (!inv || statusOf(inv, now) !== "pending") return undefined; // answered or run out since: nothing to send
      const org = await liveOrg(tx, orgId);
      if (!org) return undefined;
      await repo.update(tx, orgId, inv.id, { tokenHash: hash, sentCount: inv.sentCount + 1, lastSentAt: now });
      const inviterName = inv.invitedBy ? (await accountNames(tx, [inv.invitedBy]))[0]?.name : undefined;
      return renderInvitationEmail({
        to: inv.email,
        orgName: org.displayName ?? org.name,
        inviterName,
        role: inv.role,
        token,
        publicUrl: deps.publicUrl,
        expiresAt: inv.expiresAt,
      });
    });
    if (mail) await mailer.send(mail);
  }
  jobs.register(INVITATION_JOB, sendInvitation);

  return {
    async create(m: OrgMembership, input: InvitationInput, actor: AuditActor): Promise<InvitationRow> {
      const inv = await createOne(m, input, actor);
      jobs.kick();
      return inv;
    },

    /** Each entry in its own transaction: a valid one is created whatever happens to the others. */
    async createMany(m: OrgMembership, inputs: InvitationInput[], actor: AuditActor): Promise<BulkResult[]> {
      // an address that cannot be made canonical is a malformed entry, like one the schema refuses: nothing is created
      for (const [i, input] of inputs.entries()) requireEmail(input.email, `invitations.${i}.email`);
      const results: BulkResult[] = [];
      for (const input of inputs) {
        try {
          const inv = await createOne(m, input, actor);
          results.push({ email: inv.email, status: "invited", invitation_id: inv.id });
        } catch (e) {
          if (!isAppError(e) || e.status >= 500) throw e;
          results.push({
            email: canonicalEmail(input.email),
            status: "error",
            error: { code: e.code, detail: e.message, ...(e.field ? { field: e.field } : {}) },
          });
        }
      }
      if (results.some((r) => r.status === "invited")) jobs.kick();
      return results;
    },

    async list(orgId: string, opts: { status?: InvitationStatus; limit: number; before?: string }): Promise<InvitationRow[]> {
      return db.tx({ orgId }, (tx) => repo.list(tx, orgId, { ...opts, now: clock.now() }));
    },

    async get(orgId: string, id: string): Promise<InvitationRow> {
      const inv = await db.tx({ orgId }, (tx) => repo.findById(tx, orgId, id));
      if (!inv) throw notFound(id);
      return inv;
    },

    /** A new link with a new 7-day expiry; the old link dies at once (its hash is gone before the new mail exists). */
    async resend(m: OrgMembership, id: string, actor: AuditActor): Promise<InvitationRow> {
      const now = clock.now();
      const orgId = m.orgId;
      const inv = await db.tx({ orgId }, async (tx) => {
        const before = await repo.findById(tx, orgId, id, true);
        if (!before) throw notFound(id);
        answeredRefusal(before);
        await requireOfferable(tx, m, before.role);
        if (await isMemberByEmail(tx, orgId, before.emailKey)) {
          throw invitationError("ALREADY_MEMBER", `${before.email} is already a member of this organization.`);
        }
        const expiresAt = new Date(now.getTime() + INVITATION_TTL_MS);
        const after = await repo.update(tx, orgId, id, { tokenHash: null, expiresAt });
        await audit.record(tx, actor, {
          orgId,
          action: "invitation.resent",
          target: { type: "invitation", id },
          diff: { expires_at: [before.expiresAt.toISOString(), expiresAt.toISOString()] },
        });
        await jobs.enqueue(tx, INVITATION_JOB, { orgId, invitationId: id });
        return after;
      });
      jobs.kick();
      return inv;
    },

    /** The link stops working at once. Revoking a revoked invitation changes nothing; an accepted one cannot be. */
    async revoke(m: OrgMembership, id: string, actor: AuditActor): Promise<void> {
      const now = clock.now();
      const orgId = m.orgId;
      await db.tx({ orgId }, async (tx) => {
        const before = await repo.findById(tx, orgId, id, true);
        if (!before) throw notFound(id);
        if (before.acceptedAt) throw invitationError("INVITATION_USED", "This invitation was already accepted; remove the member instead.");
        if (before.revokedAt) return;
        await repo.update(tx, orgId, id, { revokedAt: now });
        await audit.record(tx, actor, {
          orgId,
          action: "invitation.revoked",
          target: { type: "invitation", id },
          diff: { status: [statusOf(before, now), "revoked"] },
        });
      });
    },
  };
}

function notFound(id: string) {
  return invitationError("INVITATION_NOT_FOUND", `No invitation ${id} in this organization.`, { field: "invitationId" });
}

/** An accepted or revoked invitation is over: it cannot be resent. */
function answeredRefusal(inv: InvitationRow): void {
  if (inv.acceptedAt) throw invitationError("INVITATION_USED", "This invitation was already accepted.");
  if (inv.revokedAt) throw invitationError("INVITATION_REVOKED", "This invitation was revoked; send a new one.");
}

export type InvitationsService = ReturnType<typeof createInvitationsService>;
