import type { Database } from "../../db/client.ts";
import { accessRoutes } from "./access.routes.ts";
import { createAccessService } from "./access.service.ts";

/** Access: permissions, roles and the authorization engine. */
export function wire(deps: { db: Database }) {
  const access = createAccessService(deps);
  return { service: access, routes: [accessRoutes()] };
}
