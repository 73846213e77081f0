import { randomToken, sha256 } from "../../lib/crypto.ts";
import { isId } from "../../lib/ids.ts";

/**
 * An invitation token is `<orgId>.<secret>`. Every query runs inside its org (row-level security), so the token names
 * the org it belongs to; only the secret (256 random bits) is hashed and stored, and only the mail carries it.
 */
export function newInvitationToken(orgId: string): { token: string; hash: string } {
  const secret = randomToken(32);
  return { token: `${orgId}.${secret}`, hash: sha256(secret) };
}

/** The org and the secret's hash, or undefined for anything that is not shaped like a token. */
export function parseInvitationToken(token: string): { orgId: string; hash: string } | undefined {
  const dot = token.indexOf(".");
  if (dot < 0) return undefined;
  const orgId = token.slice(0, dot);
  const secret = token.slice(dot + 1);
  if (!isId("org", orgId) || !/^[A-Za-z0-9_-]{43}$/.test(secret)) return undefined;
  return { orgId, hash: sha256(secret) };
}
