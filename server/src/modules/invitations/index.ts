import type { Database } from "../../db/client.ts";
import type { JobQueue } from "../../jobs/queue.ts";
import type { Clock } from "../../lib/clock.ts";
import type { Mailer } from "../../mail/mailer.ts";
import type { AccessService } from "../access/access.service.ts";
import type { AuditService } from "../audit/audit.service.ts";
import type { IdentityService } from "../identity/identity.service.ts";
import type { MembersService } from "../members/members.service.ts";
import type { TeamMembersService } from "../teams/teams.members.service.ts";
import { createInvitationAcceptService } from "./invitations.accept.service.ts";
import { invitationAcceptRoutes, invitationRoutes } from "./invitations.routes.ts";
import { createInvitationsService } from "./invitations.service.ts";
import { invitationsRepo } from "./invitations.repo.ts";

/** How long an accepted, revoked or expired invitation stays visible to its org before maintenance removes it. */
export const INVITATION_GRACE_MS = 30 * 24 * 60 * 60 * 1000;

/** Invitations: emailed, single-use links to join an org. */
export function wire(deps: {
  db: Database;
  clock: Clock;
  audit: AuditService;
  access: AccessService;
  jobs: JobQueue;
  mailer: Mailer;
  identity: IdentityService;
  /** Accepting joins through the owners of memberships and team memberships. */
  members: Pick<MembersService, "add" | "isMember">;
  teams: Pick<TeamMembersService, "placeNewMember">;
  publicUrl: string;
}) {
  const invitations = createInvitationsService(deps);
  const accept = createInvitationAcceptService(deps);
  return {
    service: {
      invitations,
      accept,
      /** Maintenance: invitations of every org that ended (accepted, revoked, expired) more than INVITATION_GRACE_MS ago. */
      purgeEnded: async () => ({
        invitations: await deps.db.tx({}, (tx) => invitationsRepo.purgeEnded(tx, new Date(deps.clock.now().getTime() - INVITATION_GRACE_MS))),
      }),
    },
    routes: [invitationRoutes({ invitations, clock: deps.clock }), invitationAcceptRoutes({ accept })],
  };
}
