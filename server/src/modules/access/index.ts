import type { Redis } from "ioredis";
import type { Logger } from "pino";
import type { Database } from "../../db/client.ts";
import type { Clock } from "../../lib/clock.ts";
import { accessRoutes } from "./access.routes.ts";
import type { AuditService } from "../audit/audit.service.ts";
import { grantsRoutes } from "./grants.routes.ts";
import { createGrantsService } from "./grants.service.ts";
import { createAccessService, type AccessOptions } from "./access.service.ts";
import { createInvalidationBus } from "./invalidation.ts";

/** Access: permissions, roles and the authorization engine, with its cross-instance cache invalidation. */
export async function wire(deps: { db: Database; clock: Clock; log: Logger; redis?: Redis; audit: AuditService; options?: AccessOptions }) {
  const access = createAccessService(deps);
  const bus = await createInvalidationBus({ redis: deps.redis, log: deps.log, onInvalidate: (orgId) => access.invalidateLocal(orgId) });
  access.setPublisher((orgId) => bus.publish(orgId));
  return { service: access, routes: [accessRoutes(), grantsRoutes({ grants: createGrantsService({ ...deps, access }), clock: deps.clock })], close: () => bus.close() };
}
