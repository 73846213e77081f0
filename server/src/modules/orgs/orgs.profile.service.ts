import type { Database } from "../../db/client.ts";
import type { Clock } from "../../lib/clock.ts";
import { isUniqueViolation } from "../../lib/pg-errors.ts";
import { newId } from "../../lib/ids.ts";
import type { AuditActor, AuditService } from "../audit/audit.service.ts";
import { canonicalJson } from "../audit/chain.ts";
import type { MembershipWrites } from "../members/members.service.ts";
import { orgProfileRepo, orgsRepo, type OrgRow } from "./orgs.repo.ts";

export { orgsError } from "./orgs.errors.ts";
import { orgsError } from "./orgs.errors.ts";

export interface OrgProfilePatch {
  name?: string;
  slug?: string;
  display_name?: string | null;
  logo_url?: string | null;
  primary_color?: string | null;
  address?: Record<string, string> | null;
  contact_email?: string | null;
  contact_phone?: string | null;
  owner_impersonation?: boolean;
}

const PROFILE_FIELDS: [keyof OrgProfilePatch, keyof OrgRow][] = [
  ["name", "name"],
  ["slug", "slug"],
  ["display_name", "displayName"],
  ["logo_url", "logoUrl"],
  ["primary_color", "primaryColor"],
  ["address", "address"],
  ["contact_email", "contactEmail"],
  ["contact_phone", "contactPhone"],
  ["owner_impersonation", "ownerImpersonation"],
];

/** Creating organizations and changing their profile; every change is audited in its own transaction. */
export function createOrgProfileService(deps: { db: Database; clock: Clock; audit: Pick<AuditService, "record">; members: Pick<MembershipWrites, "add"> }) {
  const { db, clock, audit, members } = deps;
  const taken = () => orgsError("SLUG_TAKEN", "Another organization already uses this slug.", { field: "slug" });

  return {
    /** A new org with its creator as owner. */
    async createOrg(userId: string, input: { name: string; slug: string }, actor: AuditActor): Promise<OrgRow> {
      const now = clock.now();
      const id = newId("org", now.getTime());
      try {
        return await db.tx({ orgId: id, userId }, async (tx) => {
          const org = await orgsRepo.insertOrg(tx, { id, name: input.name.trim(), slug: input.slug, createdAt: now, updatedAt: now });
          await members.add(tx, { orgId: id, userId, role: "owner", now }); // memberships are the members module's
          await audit.record(tx, actor, {
            orgId: id,
            action: "org.created",
            target: { type: "org", id },
            diff: { name: [null, org.name], slug: [null, org.slug] },
          });
          return org;
        });
      } catch (e) {
        if (isUniqueViolation(e)) throw taken();
        throw e;
      }
    },

    async getOrg(orgId: string): Promise<OrgRow> {
      const org = await db.read({ orgId }, (ex) => orgProfileRepo.findLive(ex, orgId));
      if (!org) throw orgsError("ORG_NOT_FOUND", "No such organization.");
      return org;
    },

    /** Changes the profile and records which fields changed, before and after. */
    async updateOrg(orgId: string, patch: OrgProfilePatch, actor: AuditActor): Promise<OrgRow> {
      try {
        return await db.tx({ orgId }, async (tx) => {
          const before = await orgProfileRepo.lockLive(tx, orgId);
          if (!before) throw orgsError("ORG_NOT_FOUND", "No such organization.");
          const set: Record<string, unknown> = { updatedAt: clock.now() };
          const diff: Record<string, [unknown, unknown]> = {};
          for (const [api, col] of PROFILE_FIELDS) {
            if (patch[api] === undefined) continue;
            const value = typeof patch[api] === "string" && api === "name" ? (patch[api] as string).trim() : patch[api];
            // canonical (key-sorted) JSON: jsonb does not keep the key order of the address the client sent
            if (canonicalJson(before[col]) === canonicalJson(value)) continue;
            set[col] = value;
            diff[api] = [before[col], value];
          }
          if (!Object.keys(diff).length) return before;
          const after = (await orgProfileRepo.update(tx, orgId, set)) as OrgRow;
          await audit.record(tx, actor, { orgId, action: "org.updated", target: { type: "org", id: orgId }, diff });
          return after;
        });
      } catch (e) {
        if (isUniqueViolation(e)) throw taken();
        throw e;
      }
    },
  };
}

export type OrgProfileService = ReturnType<typeof createOrgProfileService>;
