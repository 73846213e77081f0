import type { Database } from "../../db/client.ts";
import type { ApiKeyAuthenticator } from "../access/principal.ts";
import type { SourceKeys } from "../access/principal.ts";
import type { LimiterStore } from "../../limits/throttle.ts";
import type { Clock } from "../../lib/clock.ts";
import type { AccessService } from "../access/access.service.ts";
import type { AuditService } from "../audit/audit.service.ts";
import type { ApiKeysService } from "../keys/api-keys.service.ts";
import type { SigningKeys } from "../keys/signing-keys.ts";
import type { KeyOwnerOps } from "../keys/api-keys.owners.ts";
import { createOAuthService } from "./oauth.service.ts";
import { discoveryRoutes, oauthRoutes } from "./oauth.routes.ts";
import { createTokenThrottles } from "./oauth.throttle.ts";
import { createClientMakerOps } from "./service-accounts.makers.ts";
import { serviceAccountsRepo } from "./service-accounts.repo.ts";
import { serviceAccountsRoutes } from "./service-accounts.routes.ts";
import { createServiceAccountsService } from "./service-accounts.service.ts";

/**
 * Service accounts (CRUD and OAuth clients under /v1/orgs/:orgId/service-accounts), the token endpoint
 * (POST /v1/oauth/token: client credentials, token exchange) and the issuer metadata. `service.memberships` is what
 * the tenant hook asks about a service account's token. `apiKeys` is the key verifier (authentication, and whether the
 * key an exchanged token came from still works); `apiKeyService` makes the accounts' keys.
 */
export function wire(deps: {
  db: Database;
  clock: Clock;
  audit: AuditService;
  access: AccessService;
  keys: SigningKeys;
  apiKeys: ApiKeyAuthenticator & SourceKeys;
  apiKeyService: Pick<ApiKeysService, "create"> & { owners: Pick<KeyOwnerOps, "revokeAllOf"> };
  limiterStore: LimiterStore;
  issuer: string;
  publicUrl: string;
}) {
  const service = {
    ...createServiceAccountsService({ ...deps, apiKeys: deps.apiKeyService, keyOwners: deps.apiKeyService.owners, repo: serviceAccountsRepo }),
    // the clients a member made, for their removal (members module)
    ...createClientMakerOps({ ...deps, repo: serviceAccountsRepo }),
  };
  const throttles = createTokenThrottles(deps.limiterStore);
  const oauth = createOAuthService({ clock: deps.clock, keys: deps.keys, apiKeys: deps.apiKeys, access: deps.access, serviceAccounts: service, throttles });
  return {
    service,
    routes: [
      serviceAccountsRoutes({ serviceAccounts: service, clock: deps.clock }),
      oauthRoutes({ oauth }),
      discoveryRoutes({ issuer: deps.issuer, publicUrl: deps.publicUrl }),
    ],
  };
}
