import type { FastifyReply } from "fastify";
import { platformError } from "./errors.ts";

/**
 * Optimistic concurrency for versioned records (vault secrets, zero-knowledge vault entries): the version a change
 * is based on, from If-Match (`3`, `"3"` or `W/"3"`) or the body's `version`; given both, they must agree (400 naming
 * `version`). Undefined: an unconditional change.
 */
export function expectedVersion(header: string | undefined, body: number | undefined): number | undefined {
  const fromHeader = header === undefined ? undefined : Number(header.replace(/^W\//, "").replaceAll('"', ""));
  if (fromHeader !== undefined && body !== undefined && fromHeader !== body) {
    throw platformError("VALIDATION_FAILED", `If-Match names version ${fromHeader} but the body's version is ${body}: give one, or the same in both.`, {
      field: "version",
    });
  }
  return fromHeader ?? body;
}

/** The record's version as its ETag, for the next If-Match. */
export const etag = (reply: FastifyReply, version: number) => reply.header("etag", `"${version}"`);
