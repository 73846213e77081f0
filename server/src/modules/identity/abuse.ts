import type { LimiterStore, Throttle, ThrottleRule } from "../../limits/throttle.ts";
import { createThrottle } from "../../limits/throttle.ts";
import { platformError } from "../../lib/errors.ts";

/** The throttles in front of sign-in and the flows that reveal or mail to an account. */
export interface AbuseRules {
  loginPerAccount: ThrottleRule;
  loginPerIp: ThrottleRule;
  registerPerIp: ThrottleRule;
  registerPerEmail: ThrottleRule;
  emailPerIp: ThrottleRule;
  emailPerAccount: ThrottleRule;
  /** Failed credentials (bad tokens, unknown keys) on authenticated routes, per client IP. */
  credentialFailuresPerIp: ThrottleRule;
}

export const DEFAULT_ABUSE_RULES: AbuseRules = {
  // failed sign-ins: 5 per account per 15 min, then 30 s, 60 s, 120 s … up to an hour
  loginPerAccount: { points: 5, windowSeconds: 900, baseBlockSeconds: 30, maxBlockSeconds: 3600 },
  loginPerIp: { points: 50, windowSeconds: 900, baseBlockSeconds: 60, maxBlockSeconds: 3600 },
  registerPerIp: { points: 20, windowSeconds: 3600, baseBlockSeconds: 300, maxBlockSeconds: 86_400 },
  registerPerEmail: { points: 5, windowSeconds: 3600, baseBlockSeconds: 300, maxBlockSeconds: 86_400 },
  // password-reset and magic-link requests
  emailPerIp: { points: 30, windowSeconds: 3600, baseBlockSeconds: 300, maxBlockSeconds: 86_400 },
  emailPerAccount: { points: 5, windowSeconds: 900, baseBlockSeconds: 300, maxBlockSeconds: 3600 },
  // random checksum-valid keys or random-kid JWTs: 100 failures a minute per IP, then 60 s, 120 s … up to an hour
  credentialFailuresPerIp: { points: 100, windowSeconds: 60, baseBlockSeconds: 60, maxBlockSeconds: 3600 },
};

export type AbuseThrottles = Record<keyof AbuseRules, Throttle>;

export function createAbuseThrottles(store: LimiterStore, rules: AbuseRules): AbuseThrottles {
  const out = {} as AbuseThrottles;
  for (const name of Object.keys(rules) as (keyof AbuseRules)[]) out[name] = createThrottle(store, name, rules[name]);
  return out;
}

function tooMany(seconds: number) {
  return platformError("RATE_LIMITED", `Too many attempts. Try again in ${seconds} seconds.`, { retryAfter: seconds });
}

/** Refuses when any key is blocked now. */
export async function refuseIfBlocked(checks: [Throttle, string][]): Promise<void> {
  const waits = await Promise.all(checks.map(([t, k]) => t.blockedFor(k)));
  const wait = Math.max(0, ...waits);
  if (wait > 0) throw tooMany(wait);
}

/** Counts a hit on every key; refuses when that exhausted any allowance. */
export async function countOrRefuse(checks: [Throttle, string][]): Promise<void> {
  await refuseIfBlocked(checks);
  const waits = await Promise.all(checks.map(([t, k]) => t.hit(k)));
  const wait = Math.max(0, ...waits);
  if (wait > 0) throw tooMany(wait);
}
