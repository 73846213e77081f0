import type { Database } from "../../db/client.ts";
import type { JobQueue } from "../../jobs/queue.ts";
import type { Clock } from "../../lib/clock.ts";
import type { Mailer } from "../../mail/mailer.ts";
import type { AccessService } from "../access/access.service.ts";
import type { AuditService } from "../audit/audit.service.ts";
import type { IdentityService } from "../identity/identity.service.ts";

/** Invitations: emailed, single-use links to join an org. */
export function wire(_deps: { db: Database; clock: Clock; audit: AuditService; access: AccessService; jobs: JobQueue; mailer: Mailer; identity: IdentityService; publicUrl: string }) {
  return { service: {}, routes: [] };
}
