import { createThrottle, type LimiterStore, type Throttle, type ThrottleRule } from "../../limits/throttle.ts";

/** The throttles in front of POST /v1/oauth/token. */
export interface TokenRules {
  /** Failed client authentications (wrong secret, unknown or revoked client, disabled account) per client_id. */
  failuresPerClient: ThrottleRule;
  /** Failed client authentications and unusable subject tokens per IP address. */
  failuresPerIp: ThrottleRule;
  /** Tokens issued per OAuth client, and per subject of an exchange (its API key, else the user or account). */
  issuedPerCredential: ThrottleRule;
}

export const DEFAULT_TOKEN_RULES: TokenRules = {
  // a client secret is 256 random bits: these limit load and noise, and a stolen client_id's misuse, not guessing
  failuresPerClient: { points: 10, windowSeconds: 900, baseBlockSeconds: 30, maxBlockSeconds: 3600 },
  failuresPerIp: { points: 50, windowSeconds: 900, baseBlockSeconds: 60, maxBlockSeconds: 3600 },
  // 60 tokens a minute, then a minute's pause: a token lives 5 minutes by default, so a well-behaved client needs few
  issuedPerCredential: { points: 60, windowSeconds: 60, baseBlockSeconds: 60, maxBlockSeconds: 60 },
};

export type TokenThrottles = Record<keyof TokenRules, Throttle>;

/** Backed by Redis when it is configured (shared by every instance), by memory otherwise. */
export function createTokenThrottles(store: LimiterStore, rules: TokenRules = DEFAULT_TOKEN_RULES): TokenThrottles {
  return {
    failuresPerClient: createThrottle(store, "token-fail-client", rules.failuresPerClient),
    failuresPerIp: createThrottle(store, "token-fail-ip", rules.failuresPerIp),
    issuedPerCredential: createThrottle(store, "token-issued", rules.issuedPerCredential),
  };
}

/** Seconds to wait when any of the keys is blocked now, else 0. Counts nothing. */
export async function blockedFor(checks: [Throttle, string][]): Promise<number> {
  const waits = await Promise.all(checks.map(([t, k]) => t.blockedFor(k)));
  return Math.max(0, ...waits);
}
