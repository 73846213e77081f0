import type { Database } from "../../db/client.ts";
import type { Clock } from "../../lib/clock.ts";
import { keysRoutes } from "./keys.routes.ts";
import { createSigningKeys, type JwtSettings } from "./signing-keys.ts";

/** Keys: token signing and the JWKS (API keys and service accounts come with their issue). */
export function wire(deps: { db: Database; clock: Clock; masterKey: Buffer; jwt: JwtSettings; accessTtlSeconds: number }) {
  const keys = createSigningKeys(deps);
  return { service: keys, routes: [keysRoutes({ keys })] };
}
