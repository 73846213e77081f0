import type { Database } from "../../db/client.ts";
import type { Clock } from "../../lib/clock.ts";
import { accessRoutes } from "./access.routes.ts";
import type { AuditService } from "../audit/audit.service.ts";
import { createGrantOwnerOps } from "./grants.owners.ts";
import { grantsRepo } from "./grants.repo.ts";
import { grantsRoutes } from "./grants.routes.ts";
import { createGrantRequestsService } from "./grant-requests.service.ts";
import { createGrantRules } from "./grants.rules.ts";
import { createGrantsService, type ObjectRegistry, type ObjectVerifiers } from "./grants.service.ts";
import { createAccessService, type AccessOptions } from "./access.service.ts";
import { createPrincipals } from "./principal.ts";
import { createSubjectsPort } from "./subjects.ts";
import type { Bus } from "../../pubsub/bus.ts";

/**
 * Access: permissions, roles and the authorization engine, with its cross-instance cache invalidation. `grants` is
 * what other modules call when what a grant names goes away (the access module owns grants).
 */
export async function wire(deps: { db: Database; clock: Clock; bus: Bus; audit: AuditService; options?: AccessOptions }) {
  const access = createAccessService(deps);
  // another instance changed an org's access facts: drop them here before it answers
  const invalidations = deps.bus.channel<string>("access", (orgId) => {
    if (typeof orgId === "string") access.invalidateLocal(orgId);
  });
  access.setPublisher((orgId) => invalidations.publish(orgId));
  const verifiers: ObjectVerifiers = {};
  const subjects = createSubjectsPort();
  // one set of grant rules for both services: a peer grant is given directly or by approving a request, alike
  const rules = createGrantRules({ audit: deps.audit, access });
  const grantDeps = { ...deps, access, subjects: subjects.subjects, rules };
  return {
    service: access,
    principals: createPrincipals(access),
    grants: createGrantOwnerOps({ repo: grantsRepo }),
    // whether an id names one of the org's members or teams (subjects.ts): the members and teams modules answer
    subjects: subjects.subjects,
    answerSubjects: subjects.answer,
    // a module owning a kind of object (the vault: secrets) says whether a grant may name an id of it; wired later
    objects: {
      verify(type, verifier) {
        verifiers[type] = verifier;
      },
    } satisfies ObjectRegistry as ObjectRegistry,
    routes: [
      accessRoutes(),
      grantsRoutes({
        grants: createGrantsService({ ...grantDeps, objects: verifiers }),
        requests: createGrantRequestsService(grantDeps),
        clock: deps.clock,
      }),
    ],
  };
}
