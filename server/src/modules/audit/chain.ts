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
  /** Hashed only when set: events from before the field existed keep their hashes. */
  viaKeyId?: string | null;
  targetType: string;
  targetId: string | null;
  ip: string | null;
  userAgent: string | null;
  requestId: string | null;
  diff: unknown;
  createdAt: Date;
  prevHash: string;
}

/**
 * An event's canonical body split around its seq: `before + seq + after` is the text its hash covers (after the
 * previous hash and a newline). Split so that PostgreSQL can put in the seq it assigns under the chain's lock and
 * hash the event there (audit.repo's append), with this same text.
 */
export function eventBodyParts(e: Omit<ChainedFields, "seq" | "prevHash">): { before: string; after: string } {
  const SEQ = -1; // canonicalJson writes a number as is; the body's keys are sorted, seq between request_id and target_id
  const body = canonicalJson({
    id: e.id,
    org_id: e.orgId,
    seq: SEQ,
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
    via_key_id: e.viaKeyId ?? undefined,
  });
  // the top-level seq follows request_id's value, which is a JSON string or null: no key inside diff comes after it
  const marker = `,"seq":${SEQ},"target_id":`;
  const at = body.lastIndexOf(marker);
  if (at < 0) throw new Error("canonical event body without its seq");
  return { before: body.slice(0, at + ',"seq":'.length), after: body.slice(at + `,"seq":${SEQ}`.length) };
}

export function eventHash(e: ChainedFields): string {
  const { before, after } = eventBodyParts(e);
  return createHash("sha256").update(`${e.prevHash}\n${before}${e.seq}${after}`).digest("hex");
}
