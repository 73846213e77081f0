/**
 * The audit row the bare floors insert (bench/servers/*-bare.ts): the INSERT text from drizzle (once, at boot, so it
 * is the statement Plinth's audit writes), a row with a sequence number the bare process counts, and its values in
 * the statement's order. No hash chain: that is Plinth's extra work, which the ratios measure.
 */
import { createHash, randomUUID } from "node:crypto";
import type { drizzle } from "drizzle-orm/node-postgres";
import { auditEvents } from "../../server/src/db/schema/index.ts";

export function bareAudit(mock: ReturnType<typeof drizzle.mock>, orgId: string, action: string, targetType: string) {
  const row = (seq: number, targetId: string, diff: Record<string, unknown>) => ({
    id: `aev_${randomUUID().replaceAll("-", "")}`,
    orgId,
    seq,
    action,
    actorType: "api_key",
    actorId: "bench",
    impersonatorId: null,
    targetType,
    targetId,
    ip: "127.0.0.1",
    userAgent: null,
    requestId: null,
    diff,
    createdAt: new Date(),
    prevHash: "0".repeat(64),
    hash: createHash("sha256")
      .update(`${seq}${targetId}${JSON.stringify(diff)}`)
      .digest("hex"),
  });
  const sql = mock
    .insert(auditEvents)
    .values(row(0, "x", {}))
    .toSQL().sql;
  /** The INSERT's values for the event of `seq` on `targetId`. */
  const values = (seq: number, targetId: string, diff: Record<string, unknown>): unknown[] => {
    const r = row(seq, targetId, diff);
    return [
      r.id,
      r.orgId,
      r.seq,
      r.action,
      r.actorType,
      r.actorId,
      r.impersonatorId,
      r.targetType,
      r.targetId,
      r.ip,
      r.userAgent,
      r.requestId,
      JSON.stringify(r.diff),
      r.createdAt,
      r.prevHash,
      r.hash,
    ];
  };
  return { sql, values };
}
