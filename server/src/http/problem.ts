import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { type AppError, isAppError, platformError } from "../lib/errors.ts";

/** One entry per invalid field in a 400. */
export interface FieldError {
  field: string;
  reason: string;
}

interface AjvIssue {
  instancePath: string;
  keyword: string;
  params: Record<string, unknown>;
  message?: string;
}

function fieldOf(issue: AjvIssue, context: string | undefined): string {
  const path = issue.instancePath.replace(/^\//, "").replace(/\//g, ".");
  const leaf =
    issue.keyword === "required"
      ? String(issue.params.missingProperty)
      : issue.keyword === "additionalProperties"
        ? String(issue.params.additionalProperty)
        : "";
  const field = [path, leaf].filter(Boolean).join(".");
  return field || (context === "body" ? "body" : (context ?? "request"));
}

function reasonOf(issue: AjvIssue): string {
  const p = issue.params;
  switch (issue.keyword) {
    case "required":
      return "is required";
    case "additionalProperties":
      return "is not a known field";
    case "format":
      return `must be a valid ${String(p.format)}`;
    case "minLength":
      return `must be at least ${String(p.limit)} characters`;
    case "maxLength":
      return `must be at most ${String(p.limit)} characters`;
    case "pattern":
      return "has an invalid format";
    case "type":
      return `must be of type ${String(p.type)}`;
    case "enum":
      return `must be one of: ${(p.allowedValues as unknown[]).join(", ")}`;
    case "minimum":
    case "maximum":
      return `must be ${issue.keyword === "minimum" ? "at least" : "at most"} ${String(p.limit)}`;
    default:
      return issue.message ?? "is invalid";
  }
}

/** The validation issues of a Fastify schema error, one per field, in a stable order. */
export function fieldErrors(err: FastifyError): FieldError[] {
  const seen = new Map<string, string>();
  for (const issue of (err.validation ?? []) as AjvIssue[]) {
    // anyOf/oneOf branches repeat the same field; keep the first, most specific reason
    if (issue.keyword === "anyOf" || issue.keyword === "oneOf") continue;
    const field = fieldOf(issue, err.validationContext);
    if (!seen.has(field)) seen.set(field, reasonOf(issue));
  }
  return [...seen].map(([field, reason]) => ({ field, reason }));
}

/** A route's body limit as people read it (1 MiB by default; a route may allow more). */
const sizeOf = (bytes: number) => (bytes % 1_048_576 === 0 ? `${bytes / 1_048_576} MiB` : bytes % 1024 === 0 ? `${bytes / 1024} KiB` : `${bytes} bytes`);

const FASTIFY_CODES: Record<string, (request: FastifyRequest) => AppError> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: () => platformError("UNSUPPORTED_MEDIA_TYPE", "Send the body as application/json."),
  FST_ERR_CTP_BODY_TOO_LARGE: (request) =>
    platformError("PAYLOAD_TOO_LARGE", `The body is larger than ${sizeOf(request.routeOptions?.bodyLimit ?? 1_048_576)}.`),
  FST_ERR_CTP_EMPTY_JSON_BODY: () => platformError("MALFORMED_JSON", "The body is empty but declared as JSON.", { field: "body" }),
  FST_ERR_CTP_INVALID_JSON_BODY: () => platformError("MALFORMED_JSON", "The body is not valid JSON.", { field: "body" }),
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: () => platformError("BAD_REQUEST", "Content-Length does not match the body."),
};

export function sendProblem(request: FastifyRequest, reply: FastifyReply, err: AppError, errors?: FieldError[]) {
  if (err.retryAfter !== undefined) reply.header("retry-after", String(err.retryAfter));
  if (err.status === 401) reply.header("www-authenticate", 'Bearer realm="plinth"');
  return reply
    .code(err.status)
    .type("application/problem+json")
    .send({
      type: `urn:plinth:error:${err.code.toLowerCase()}`,
      title: err.code
        .toLowerCase()
        .split("_")
        .map((w, i) => (i === 0 ? w[0].toUpperCase() + w.slice(1) : w))
        .join(" "),
      status: err.status,
      code: err.code,
      detail: err.message,
      ...(err.field ? { field: err.field } : {}),
      ...(errors?.length ? { errors } : {}),
      ...(err.extra ?? {}),
      instance: request.url.split("?")[0],
      request_id: request.id,
    });
}

/** Every error leaves as RFC 9457 problem+json; nothing answers with a stack trace. */
export function installProblemHandlers(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (isAppError(error)) {
      if (error.status >= 500) request.log.error({ err: error }, "request failed");
      return sendProblem(request, reply, error);
    }
    if (error.validation) {
      const errors = fieldErrors(error);
      const first = errors[0];
      const detail = errors.map((e) => `${e.field} ${e.reason}`).join("; ");
      return sendProblem(request, reply, platformError("VALIDATION_FAILED", detail || "The request is invalid.", { field: first?.field }), errors);
    }
    const known = error.code ? FASTIFY_CODES[error.code] : undefined;
    if (known) return sendProblem(request, reply, known(request));
    if (error instanceof SyntaxError || (error.statusCode === 400 && /JSON/i.test(error.message))) {
      return sendProblem(request, reply, platformError("MALFORMED_JSON", "The body is not valid JSON.", { field: "body" }));
    }
    if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) {
      const code = error.statusCode === 413 ? "PAYLOAD_TOO_LARGE" : error.statusCode === 415 ? "UNSUPPORTED_MEDIA_TYPE" : "BAD_REQUEST";
      return sendProblem(request, reply, platformError(code, error.message.replace(/^FST_\w+:\s*/, "")));
    }
    request.log.error({ err: error }, "unhandled error");
    return sendProblem(request, reply, platformError("INTERNAL", "Something went wrong on our side. Quote the request id if you report it."));
  });

  app.setNotFoundHandler((request, reply) =>
    sendProblem(request, reply, platformError("ROUTE_NOT_FOUND", `No route ${request.method} ${request.url.split("?")[0]}.`)),
  );
}
