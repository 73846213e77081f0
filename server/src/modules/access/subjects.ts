import type { Executor } from "../../db/client.ts";

/**
 * Whether an id names one of the org's members or teams, read in the caller's transaction: what a module checks
 * before it ties a record to a member or a team (a grant, a secret, a lease, a recovery share). The members and teams
 * modules own those tables and answer; access is wired before them, so it hands out this port and they fill it in.
 */
export interface OrgSubjects {
  isMember(ex: Executor, orgId: string, userId: string): Promise<boolean>;
  teamExists(ex: Executor, orgId: string, teamId: string): Promise<boolean>;
}

/** The port, answered by `answer(...)` once the owning modules are wired (deps.ts); asked before that, it throws. */
export function createSubjectsPort(): { subjects: OrgSubjects; answer(owners: OrgSubjects): void } {
  let owners: OrgSubjects | undefined;
  const need = (): OrgSubjects => {
    if (!owners) throw new Error("access: the members and teams modules have not answered the subjects port yet");
    return owners;
  };
  return {
    subjects: {
      isMember: (ex, orgId, userId) => need().isMember(ex, orgId, userId),
      teamExists: (ex, orgId, teamId) => need().teamExists(ex, orgId, teamId),
    },
    answer(o) {
      owners = o;
    },
  };
}
