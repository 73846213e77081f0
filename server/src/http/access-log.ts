import { LogController, type FastifyReply, type FastifyRequest } from "fastify";
import type { Logger } from "pino";
import { ACCESS_LINE, ACCESS_LINE_ERRORED } from "../logger.ts";

/** Who made a request, for the access line: the kind of principal and its id (undefined before authentication). */
function callerOf(request: FastifyRequest): { kind: string; id: string } | undefined {
  const p = request.principal;
  if (!p) return undefined;
  switch (p.kind) {
    case "user":
      return { kind: p.kind, id: p.userId };
    case "api_key":
      return { kind: p.kind, id: p.keyId };
    case "service_account":
      return { kind: p.kind, id: p.serviceAccountId };
    case "service":
      return { kind: p.kind, id: p.serviceKeyId };
  }
}

/**
 * Fastify's request logging, as one access line per request instead of two ("incoming request" when it arrives,
 * "request completed" when it ends): method, redacted URL and client IP (the logger's `req` serializer), status,
 * response time in ms, request id, and the caller. It is written when the response has been sent (or its socket
 * failed: then at error level, with the error), from the app's logger itself, so a request that logs nothing else
 * never makes a pino child. Errors the app handles are logged where they are handled (http/problem.ts).
 */
export class AccessLogController extends LogController {
  readonly #log: Logger;
  /**
   * The access line skips the logger's redaction paths: every field in it is chosen here, none can hold a credential
   * (the `req` serializer keeps no header and masks the URL's token values), and the wildcard paths (`*.password`, …)
   * cost more than the rest of the line (they copy each top-level field before it is serialized).
   */
  readonly #accessLog: Logger;

  constructor(log: Logger) {
    super();
    this.#log = log;
    this.#accessLog = log.child({}, { redact: [] });
  }

  override incomingRequest(): void {}

  /** The access line already says 404; Fastify's own "Route … not found" would be a second line. */
  override routeNotFound(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    const line = {
      reqId: request.id,
      req: request,
      res: { statusCode: reply.statusCode },
      responseTime: reply.elapsedTime,
      principal: callerOf(request),
    };
    if (error) this.#log.error({ ...line, err: error }, ACCESS_LINE_ERRORED);
    else this.#accessLog.info(line, ACCESS_LINE);
  }
}
