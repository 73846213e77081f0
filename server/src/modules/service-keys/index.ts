import type { Logger } from "pino";
import type { Database } from "../../db/client.ts";
import type { Clock } from "../../lib/clock.ts";
import type { AccessService } from "../access/access.service.ts";
import type { AuditService } from "../audit/audit.service.ts";
import type { JwtSettings } from "../keys/signing-keys.ts";
import { createServiceKeyMakerOps } from "./service-keys.makers.ts";
import { serviceKeysRepo } from "./service-keys.repo.ts";
import { serviceKeysRoutes } from "./service-keys.routes.ts";
import { createServiceKeysService, type JwksOptions } from "./service-keys.service.ts";
import { createServiceTokenVerifier, type ServiceTokenOptions } from "./service-keys.verifier.ts";

/**
 * The service key registry: services register public keys (per org, or platform-wide by platform admins) and call
 * Plinth with JWTs they sign themselves. `verifier` is what the auth hook asks about a JWT Plinth did not sign, and
 * what the tenant hook asks about such a service's authority. Both caches follow the access engine's invalidations
 * (the platform registry's under ""), here and on other instances.
 */
export function wire(deps: {
  db: Database;
  clock: Clock;
  log: Logger;
  jwt: Pick<JwtSettings, "audience">;
  access: AccessService;
  audit: AuditService;
  options?: ServiceTokenOptions & { jwks?: JwksOptions };
}) {
  const verifier = createServiceTokenVerifier({ ...deps, audience: deps.jwt.audience, repo: serviceKeysRepo, options: deps.options });
  const service = createServiceKeysService({ ...deps, repo: serviceKeysRepo, options: deps.options?.jwks });
  deps.access.onInvalidate((owner) => {
    verifier.invalidateOrg(owner);
    service.invalidateJwks(owner);
  });
  return {
    // `makers`: the registrations a member made, for their removal (members module)
    serviceKeys: { ...service, verifier, makers: createServiceKeyMakerOps({ ...deps, repo: serviceKeysRepo }) },
    routes: [serviceKeysRoutes({ serviceKeys: service, clock: deps.clock })],
    close: () => verifier.close(),
  };
}
