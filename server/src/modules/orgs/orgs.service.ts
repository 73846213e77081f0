import type { Database, Executor } from "../../db/client.ts";
import type { Clock } from "../../lib/clock.ts";
import { randomToken } from "../../lib/crypto.ts";
import { newId } from "../../lib/ids.ts";
import type { AuditActor, AuditService } from "../audit/audit.service.ts";
import type { MembershipWrites } from "../members/members.service.ts";
import type { OrgsRepo, OrgRow } from "./orgs.repo.ts";

export function slugify(name: string): string {
  const base = name
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 40);
  return base || "org";
}

/** Organizations: the tenant. This issue lays the personal org; teams, members and invitations come next. */
export function createOrgsService(deps: {
  db: Database;
  repo: Pick<OrgsRepo, "insertOrg" | "listForUser">;
  clock: Clock;
  audit: Pick<AuditService, "record">;
  /** The members module, which writes memberships: the new org's owner. */
  members: Pick<MembershipWrites, "add">;
}) {
  const { db, repo, clock, audit, members } = deps;
  return {
    /** Creates the user's personal org with the user as owner, inside the caller's (registration) transaction. */
    async createPersonalOrg(tx: Executor, user: { id: string; name: string }, actor?: AuditActor): Promise<OrgRow> {
      const now = clock.now();
      const id = newId("org", now.getTime());
      // The transaction acts for the new org from here on, so row-level security admits the inserts.
      await db.actFor(tx, id);
      const suffix = randomToken(6)
        .toLowerCase()
        .replace(/[^a-z0-9]/g, "")
        .slice(0, 6);
      const org = await repo.insertOrg(tx, {
        id,
        name: `${user.name}'s workspace`.slice(0, 100),
        slug: `${slugify(user.name)}-${suffix}`,
        personal: true,
        createdAt: now,
        updatedAt: now,
      });
      await members.add(tx, { orgId: id, userId: user.id, role: "owner", now });
      await audit.record(tx, actor ?? { type: "user", id: user.id }, {
        orgId: id,
        action: "org.created",
        target: { type: "org", id },
        diff: { name: [null, org.name], slug: [null, org.slug], personal: [null, true] },
      });
      return org;
    },

    async listMyOrgs(userId: string) {
      return db.tx({ userId }, (tx) => repo.listForUser(tx, userId));
    },
  };
}

export type OrgsService = ReturnType<typeof createOrgsService>;
