import type { Logger } from "pino";
import type { Database } from "../../db/client.ts";
import type { Clock } from "../../lib/clock.ts";
import type { LimiterStore } from "../../limits/throttle.ts";
import type { AccessService } from "../access/access.service.ts";
import type { AuditService } from "../audit/audit.service.ts";
import type { Principals } from "../access/principal.ts";
import { createKeyOwnerOps } from "./api-keys.owners.ts";
import { apiKeysRepo } from "./api-keys.repo.ts";
import { apiKeysRoutes } from "./api-keys.routes.ts";
import { createApiKeysService } from "./api-keys.service.ts";
import { createApiKeyVerifier, type VerifierOptions } from "./api-keys.verifier.ts";
import { keysRoutes } from "./keys.routes.ts";
import { createSigningKeys, type JwtSettings } from "./signing-keys.ts";

/** The key rows other modules name in their own types. */
export type { ApiKeyRow } from "./api-keys.repo.ts";

/**
 * Keys: token signing and the JWKS; API keys (managed under /v1/orgs/:orgId/keys, checked by `apiKeys.verifier` in
 * the auth hook). The verifier's cache follows the access engine's invalidations, here and on other instances.
 */
export function wire(deps: {
  db: Database;
  clock: Clock;
  log: Logger;
  masterKey: Buffer;
  previousMasterKeys?: readonly Buffer[];
  jwt: JwtSettings;
  accessTtlSeconds: number;
  access: AccessService;
  principals: Principals;
  audit: AuditService;
  limiterStore: LimiterStore;
  apiKeyOptions?: VerifierOptions;
}) {
  const keys = createSigningKeys(deps);
  const verifier = createApiKeyVerifier({ ...deps, repo: apiKeysRepo, options: deps.apiKeyOptions });
  deps.access.onInvalidate((orgId) => verifier.invalidateOrg(orgId));
  const apiKeys = createApiKeysService({ ...deps, repo: apiKeysRepo });
  return {
    service: keys,
    /** `owners`: what other modules do to the keys of an owner or maker (members removed, accounts deleted). */
    apiKeys: { ...apiKeys, verifier, owners: createKeyOwnerOps({ ...deps, repo: apiKeysRepo }) },
    routes: [keysRoutes({ keys }), apiKeysRoutes({ apiKeys, clock: deps.clock })],
    close: () => verifier.close(),
  };
}
