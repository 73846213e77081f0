import type { Executor } from "../../db/client.ts";
import type { GrantsRepo } from "./grants.repo.ts";
import type { ObjectType } from "./relations.ts";

/**
 * What other modules do to grants when what a grant names goes away (a member removed, teams deleted). The access
 * module owns grants and grant requests: nobody else writes them. Each function runs in the caller's transaction; the
 * caller invalidates the org's access facts after the commit.
 */
export function createGrantOwnerOps(deps: { repo: Pick<GrantsRepo, "deleteNaming" | "deleteOn"> }) {
  const { repo } = deps;
  return {
    /**
     * Deletes the grants held by the users (their shares and the peer grants they received) or teams (shares to them,
     * and every grant on them, the teams being objects too); the ids of the grants deleted. Peer grants a removed
     * member gave are kept: they stop counting with the grantor's membership, and stay listed for the record.
     */
    removeGrantsOf(tx: Executor, orgId: string, subject: { type: "user" | "team"; ids: readonly string[] }): Promise<string[]> {
      return repo.deleteNaming(tx, orgId, subject);
    },

    /** Deletes every grant on the objects (a secret deleted); the ids of the grants deleted. */
    removeGrantsOn(tx: Executor, orgId: string, object: { type: ObjectType; ids: readonly string[] }): Promise<string[]> {
      return repo.deleteOn(tx, orgId, object);
    },
  };
}

export type GrantOwnerOps = ReturnType<typeof createGrantOwnerOps>;
