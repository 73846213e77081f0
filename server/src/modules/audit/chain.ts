import { createHash } from "node:crypto";

export const GENESIS_HASH = "0".repeat(64);

/** JSON with object keys sorted at every depth, so the same event always hashes the same. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  if (value instanceof Date) return JSON.stringify(value.toISOString());
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
}

/** The fields an event's hash covers: everything but the hash itself. */
export interface ChainedFields {
  id: string;
  orgId: string;
  seq: number;
  action: string;
  actorType: string;
  actorId: string | null;
  impersonatorId: string | null;
  targetType: string;
  targetId: string | null;
  ip: string | null;
  userAgent: string | null;
  requestId: string | null;
  diff: unknown;
  createdAt: Date;
  prevHash: string;
}

export function eventHash(e: ChainedFields): string {
  const body = canonicalJson({
    id: e.id,
    org_id: e.orgId,
    seq: e.seq,
    action: e.action,
    actor_type: e.actorType,
    actor_id: e.actorId,
    impersonator_id: e.impersonatorId,
    target_type: e.targetType,
    target_id: e.targetId,
    ip: e.ip,
    user_agent: e.userAgent,
    request_id: e.requestId,
    diff: e.diff,
    created_at: e.createdAt.toISOString(),
  });
  return createHash("sha256").update(`${e.prevHash}\n${body}`).digest("hex");
}
