import { type SQL, sql } from "drizzle-orm";

/**
 * A PostgreSQL array parameter, sent as one array literal (`{"a","b"}`) so it binds the same way on node-postgres and
 * PGlite and through the batched pipeline (pg-batch.ts). Every element is quoted and escaped, so any text is safe.
 */
export function textArray(items: readonly string[]): SQL {
  return sql`${textArrayLiteral(items)}::text[]`;
}

/** The literal itself, for a prepared query's placeholder (db/prepared.ts) cast to text[] in its SQL. */
export function textArrayLiteral(items: readonly string[]): string {
  return `{${items.map((i) => `"${i.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`).join(",")}}`;
}

/** An int[] parameter (see textArray). */
export function intArray(items: readonly number[]): SQL {
  for (const n of items) if (!Number.isInteger(n)) throw new TypeError(`intArray: ${n} is not an integer`);
  return sql`${`{${items.join(",")}}`}::int[]`;
}
