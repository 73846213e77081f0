import type { Database, Executor } from "../../db/client.ts";
import { liveOrg } from "../orgs/index.ts";
import type { Clock } from "../../lib/clock.ts";
import { canonicalEmail, normalizeEmail } from "../../lib/email.ts";
import { platformError } from "../../lib/errors.ts";
import type { AccessService } from "../access/access.service.ts";
import type { AuditActor, AuditService } from "../audit/audit.service.ts";
import { accountIdByEmail, type RequestMeta, type UserRow } from "../identity/index.ts";
import type { IdentityService } from "../identity/identity.service.ts";
import type { TokenPair } from "../identity/sessions.service.ts";
import type { MembersService } from "../members/members.service.ts";
import type { TeamMembersService } from "../teams/teams.members.service.ts";
import { invitationError } from "./invitations.errors.ts";
import { invitationsRepo as repo, type InvitationRow } from "./invitations.repo.ts";
import { parseInvitationToken } from "./invitations.token.ts";

export interface Joined {
  org: { id: string; name: string; slug: string };
  role: string;
  teamIds: string[];
}

/** One answer for every token that names no invitation: forged, mistyped, replaced by a resend, or of a deleted org. */
function invalid() {
  return invitationError("INVITATION_INVALID", "This invitation link is not valid. Ask for a new invitation.", { field: "token" });
}

/**
 * Answering an invitation: accept it as the signed-in user whose verified address it was sent to, or create the
 * account through the link (which proves the address). Either way the user joins the org with the invited role and
 * teams, in one transaction with the audit events.
 */
export function createInvitationAcceptService(deps: {
  db: Database;
  clock: Clock;
  audit: Pick<AuditService, "record">;
  access: Pick<AccessService, "rolePermissions" | "invalidate">;
  identity: Pick<IdentityService, "getMe" | "registerVerified">;
  members: Pick<MembersService, "add" | "isMember">;
  teams: Pick<TeamMembersService, "placeNewMember">;
}) {
  const { db, clock, audit, access, identity, members, teams } = deps;

  /** The invitation of a token, locked, if it can still be answered; otherwise the error that says why not. */
  async function openInvitation(tx: Executor, orgId: string, hash: string, now: Date): Promise<{ inv: InvitationRow; org: Joined["org"] }> {
    const inv = await repo.lockByTokenHash(tx, orgId, hash);
    const org = inv && (await liveOrg(tx, orgId));
    if (!inv || !org) throw invalid();
    if (inv.acceptedAt) throw invitationError("INVITATION_USED", "This invitation was already accepted.", { field: "token" });
    if (inv.revokedAt) throw invitationError("INVITATION_REVOKED", "This invitation was revoked. Ask for a new one.", { field: "token" });
    if (inv.expiresAt <= now) throw invitationError("INVITATION_EXPIRED", "This invitation has expired. Ask for it to be sent again.", { field: "token" });
    if (!(await access.rolePermissions(tx, orgId, inv.role))) {
      throw invitationError("INVITATION_ROLE_GONE", `The role ${inv.role} no longer exists in this organization. Ask for a new invitation.`, {
        field: "token",
      });
    }
    return { inv, org: { id: org.id, name: org.name, slug: org.slug } };
  }

  /** Membership, team memberships (of the invited teams that still exist), the invitation spent, and the audit. */
  async function join(tx: Executor, inv: InvitationRow, userId: string, actor: AuditActor, now: Date): Promise<string[]> {
    const orgId = inv.orgId;
    if (await members.isMember(tx, orgId, userId)) throw invitationError("ALREADY_MEMBER", "You are already a member of this organization.");
    // memberships belong to the members module, team memberships to teams: each writes its own
    await members.add(tx, { orgId, userId, role: inv.role, now });
    const teamIds = await teams.placeNewMember(tx, orgId, userId, inv.teamIds, now);
    await repo.update(tx, orgId, inv.id, { acceptedAt: now, acceptedBy: userId });
    await audit.record(tx, actor, {
      orgId,
      action: "invitation.accepted",
      target: { type: "invitation", id: inv.id },
      diff: { status: ["pending", "accepted"], accepted_by: [null, userId] },
    });
    await audit.record(tx, actor, {
      orgId,
      action: "member.joined",
      target: { type: "user", id: userId },
      diff: { role: [null, inv.role], team_ids: [null, teamIds], invitation_id: [null, inv.id] },
    });
    return teamIds;
  }

  const actorFor = (userId: string, meta: RequestMeta): AuditActor => ({
    type: "user",
    id: userId,
    ip: meta.ip,
    userAgent: meta.userAgent,
    requestId: meta.requestId,
  });

  return {
    /** The signed-in user joins, if the invitation was sent to their verified address. */
    async accept(userId: string, token: string, meta: RequestMeta): Promise<Joined> {
      const parsed = parseInvitationToken(token);
      if (!parsed) throw invalid();
      const user = await identity.getMe(userId);
      const now = clock.now();
      const joined = await db.tx({ orgId: parsed.orgId, userId }, async (tx) => {
        const { inv, org } = await openInvitation(tx, parsed.orgId, parsed.hash, now);
        // both sides in the one canonical form (lib/email.ts): the account's address may predate it
        if (inv.emailKey !== canonicalEmail(user.email)) {
          throw invitationError("INVITATION_EMAIL_MISMATCH", "This invitation was sent to another email address. Sign in with that account.", {
            field: "token",
          });
        }
        if (!user.emailVerifiedAt) {
          throw invitationError("EMAIL_NOT_VERIFIED", "Verify your email address first (see the mail we sent), then accept the invitation.");
        }
        const teamIds = await join(tx, inv, userId, actorFor(userId, meta), now);
        return { org, role: inv.role, teamIds };
      });
      await access.invalidate(parsed.orgId);
      return joined;
    },

    /**
     * Creates the account for the invited address (verified: the link proved it), joins the org and signs in, all in
     * one transaction: if the invitation was answered elsewhere meanwhile, no account is left behind.
     */
    async register(input: { token: string; name: string; password: string }, meta: RequestMeta): Promise<Joined & { user: UserRow; tokens: TokenPair }> {
      const parsed = parseInvitationToken(input.token);
      if (!parsed) throw invalid();
      const { orgId, hash } = parsed;
      const inv = await db.tx({ orgId }, async (tx) => {
        const { inv } = await openInvitation(tx, orgId, hash, clock.now());
        // an invitation made before addresses were checked may name one that cannot be an account now
        const checked = normalizeEmail(inv.email);
        if (!checked.ok) {
          throw platformError("VALIDATION_FAILED", `The invited email address ${checked.reason}. Ask for an invitation to the address as you type it.`, {
            field: "token",
          });
        }
        if ((await accountIdByEmail(tx, checked.email)) !== undefined) {
          throw invitationError("EMAIL_TAKEN", "An account with this email address already exists: sign in and accept the invitation.", { field: "token" });
        }
        return inv;
      });
      let joined: Joined | undefined;
      const { user, tokens } = await identity.registerVerified({ email: inv.email, name: input.name, password: input.password }, meta, async (tx, created) => {
        // the account's creation scoped the transaction to its personal org: act for the inviting org now
        await db.actFor(tx, orgId);
        const now = clock.now();
        const { inv: live, org } = await openInvitation(tx, orgId, hash, now);
        const teamIds = await join(tx, live, created.id, actorFor(created.id, meta), now);
        joined = { org, role: live.role, teamIds };
      });
      await access.invalidate(orgId);
      return { ...joined!, user, tokens };
    },
  };
}

export type InvitationAcceptService = ReturnType<typeof createInvitationAcceptService>;
