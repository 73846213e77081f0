import { LogController, type FastifyReply, type FastifyRequest } from "fastify";
import pino, { type Logger } from "pino";
import { ACCESS_LINE, ACCESS_LINE_ERRORED, requestFields } from "../logger.ts";

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
 * A writer of info lines that skips pino's generic line building, for a logger whose lines it can reproduce exactly:
 * no formatters of log objects, mixin, stream hook, message prefix or nesting key, a plain stream. It writes the same
 * text pino would (`{"level":30,"time":…` and the logger's bindings, then the fields, then `"msg"`) to the same
 * stream; undefined when the logger is configured otherwise (pino then writes the line).
 */
function infoLineWriter(log: Logger, msg: string): ((fields: string) => void) | undefined {
  const l = log as unknown as Record<symbol, unknown> & { levels: { values: Record<string, number> } };
  const sym = pino.symbols as unknown as Record<string, symbol>;
  const formatters = l[sym.formattersSym] as { log?: unknown } | undefined;
  const hooks = l[sym.hooksSym] as { streamWrite?: unknown } | undefined;
  const stream = l[sym.streamSym] as { write(s: string): void; [k: symbol]: unknown } | undefined;
  const levelPrefix = (l[sym.lsCacheSym] as Record<number, string> | undefined)?.[l.levels.values.info];
  const time = l[sym.timeSym] as (() => string) | undefined;
  if (formatters?.log || l[sym.mixinSym] || hooks?.streamWrite || l[sym.msgPrefixSym] || l[sym.nestedKeySym] || l[sym.messageKeySym] !== "msg")
    return undefined;
  if (!stream || stream[sym.needsMetadataGsym] || typeof levelPrefix !== "string" || typeof time !== "function") return undefined;
  const tail = `,"msg":${JSON.stringify(msg)}${l[sym.endSym] as string}`;
  return (fields) => {
    if (!log.isLevelEnabled("info")) return;
    stream.write(`${levelPrefix}${time.call(log)}${l[sym.chindingsSym] as string}${fields}${tail}`);
  };
}

/**
 * Fastify's request logging, as one access line per request instead of two ("incoming request" when it arrives,
 * "request completed" when it ends): method, redacted URL and client IP (logger.ts's requestFields), status,
 * response time in ms, request id, and the caller. It is written when the response has been sent (or its socket
 * failed: then at error level, with the error), from the app's logger itself, so a request that logs nothing else
 * never makes a pino child. Errors the app handles are logged where they are handled (http/problem.ts).
 */
export class AccessLogController extends LogController {
  readonly #log: Logger;
  /**
   * The access line skips the logger's redaction paths: every field in it is chosen here, none can hold a credential
   * (requestFields keeps no header and masks the URL's token values), and the wildcard paths (`*.password`, …) cost
   * more than the rest of the line (they copy each top-level field before it is serialized). For the same reason it
   * is written as text, not through pino's generic serializer (a third of a trivial request's logging cost, bench/auth
   * (b+log)), whenever the logger's lines can be reproduced exactly.
   */
  readonly #accessLog: Logger;
  readonly #writeInfo: ((fields: string) => void) | undefined;

  constructor(log: Logger) {
    super();
    this.#log = log;
    this.#accessLog = log.child({}, { redact: [] });
    this.#writeInfo = infoLineWriter(log, ACCESS_LINE);
  }

  override incomingRequest(): void {}

  /** The access line already says 404; Fastify's own "Route … not found" would be a second line. */
  override routeNotFound(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (!error && this.#writeInfo) {
      // the fields of the line below, in its order, as pino writes them (undefined ones left out)
      const principal = callerOf(request);
      const time = reply.elapsedTime;
      this.#writeInfo(
        `,"reqId":${JSON.stringify(request.id)},"req":${JSON.stringify(requestFields(request))},"res":{"statusCode":${reply.statusCode}},` +
          `"responseTime":${Number.isFinite(time) ? time : null}${principal ? `,"principal":${JSON.stringify(principal)}` : ""}`,
      );
      return;
    }
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
