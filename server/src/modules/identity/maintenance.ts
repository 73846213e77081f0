import type { Database } from "../../db/client.ts";
import type { Clock } from "../../lib/clock.ts";
import { identityRepo } from "./identity.repo.ts";

/** How long an ended session stays (for the account's session list and the revocation feed) before it is removed. */
export const SESSION_GRACE_MS = 7 * 24 * 60 * 60 * 1000;
/** How long a used or expired emailed token stays before it is removed. */
export const EMAIL_TOKEN_GRACE_MS = 24 * 60 * 60 * 1000;

/**
 * Identity's maintenance tasks (registered in jobs/maintenance.ts by deps.ts). A used refresh token is kept while its
 * session lives — presenting it again is how reuse is detected — so refresh tokens go only with their session.
 */
export function createIdentityMaintenance(deps: { db: Database; clock: Clock }) {
  const { db, clock } = deps;
  const ago = (ms: number) => new Date(clock.now().getTime() - ms);
  return {
    /** Sessions expired or revoked more than SESSION_GRACE_MS ago, with their refresh tokens. */
    purgeSessions: () => db.tx({}, (tx) => identityRepo.purgeEndedSessions(tx, ago(SESSION_GRACE_MS))),
    /** Emailed tokens (verification, reset, magic link) expired or used more than EMAIL_TOKEN_GRACE_MS ago. */
    purgeEmailTokens: async () => ({ emailTokens: await db.tx({}, (tx) => identityRepo.purgeEndedEmailTokens(tx, ago(EMAIL_TOKEN_GRACE_MS))) }),
  };
}
