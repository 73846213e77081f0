import Fastify, { type FastifyBaseLogger, type FastifyInstance } from "fastify";
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import { Ajv } from "ajv";
import addFormats from "ajv-formats";
import type { Deps } from "./deps.ts";
import { AccessLogController } from "./http/access-log.ts";
import { installAuth } from "./http/auth.ts";
import { installInputGuard } from "./http/input-guard.ts";
import { installTenant } from "./http/tenant.ts";
import { installMetrics } from "./http/metrics.ts";
import { authPagesRoutes } from "./http/pages.ts";
import { installProblemHandlers, sendProblem } from "./http/problem.ts";
import { Problem } from "./http/schemas.ts";
import { platformError } from "./lib/errors.ts";
import { newId } from "./lib/ids.ts";
import type { Bindings } from "pino";
import { lazyRequestLogger, withLazyRequestLoggers } from "./logger.ts";
import { identitySchemas } from "./modules/identity/identity.routes.ts";
import { opsRoutes } from "./modules/ops/ops.routes.ts";

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export const OPENAPI_INFO = {
  title: "Plinth API",
  version: "0.1.0",
  description: "Identity, tenancy, authorization, secrets and spend for AI-agent products. Errors are RFC 9457 problem+json with a stable `code`.",
};

function newAjv(coerceTypes: false | "array"): Ajv {
  // unknown fields are rejected by `additionalProperties: false`, never silently removed
  const ajv = new Ajv({ removeAdditional: false, allErrors: true, coerceTypes, useDefaults: true, strict: false });
  (addFormats as unknown as (a: Ajv) => void)(ajv);
  return ajv;
}

/** The Fastify shell: plugins, error handling, OpenAPI, and every module's routes. Tests build it the same way. */
export async function buildApp(deps: Deps): Promise<FastifyInstance> {
  // At info and below every request writes one access line when its response has been sent (AccessLogController).
  // Above info (LOG_LEVEL=warn, error, …) Fastify runs without a logger of its own, which spares every request its
  // response listeners; request.log (errors) still writes through ours.
  const requestLogging = deps.log.isLevelEnabled("info");
  const app = Fastify({
    ...(requestLogging
      ? { loggerInstance: withLazyRequestLoggers(deps.log) as FastifyBaseLogger, logController: new AccessLogController(deps.log) }
      : { childLoggerFactory: (_logger: FastifyBaseLogger, bindings: Bindings) => lazyRequestLogger(deps.log, bindings) as FastifyBaseLogger }),
    trustProxy: deps.config.trustProxy,
    bodyLimit: 1024 * 1024,
    requestIdHeader: false,
    genReqId: (req) => {
      const given = req.headers["x-request-id"];
      return typeof given === "string" && REQUEST_ID.test(given) ? given : newId("request");
    },
    return503OnClosing: true,
    // errors the router raises before any route or hook (a malformed %-escape, a path segment over 100 characters)
    // leave as problem+json like every other error, not as Fastify's own JSON
    frameworkErrors: (error, request, reply) =>
      sendProblem(
        request,
        reply,
        platformError("BAD_REQUEST", error.code === "FST_ERR_MAX_PARAM_LENGTH" ? "A path segment is too long." : "The URL is malformed."),
      ),
  }).withTypeProvider<TypeBoxTypeProvider>();

  // Bodies are validated as sent (no coercion: 42 is not "42"); query strings and params are text, so they coerce.
  const strictAjv = newAjv(false);
  const coercingAjv = newAjv("array");
  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === "body" ? strictAjv : coercingAjv).compile(schema));

  // Bodies are JSON only: Fastify's built-in text/plain parser would hand a string to validation (400, not 415).
  app.removeContentTypeParser("text/plain");
  installProblemHandlers(app);
  installInputGuard(app);
  // callback style: an async hook would cost every request a promise and a microtask for one header
  app.addHook("onRequest", (request, reply, done) => {
    request.startedAt = performance.now();
    reply.header("x-request-id", request.id);
    done();
  });
  const metrics = installMetrics(app);

  app.addSchema(Problem);
  for (const s of identitySchemas) app.addSchema(s);

  await app.register(swagger, {
    openapi: {
      openapi: "3.1.0",
      info: OPENAPI_INFO,
      components: { securitySchemes: { bearerAuth: { type: "http", scheme: "bearer", bearerFormat: "JWT" } } },
    },
    refResolver: { buildLocalReference: (json, _base, _frag, i) => (typeof json.$id === "string" ? json.$id : `def-${i}`) },
  });
  await app.register(swaggerUi, { routePrefix: "/docs", uiConfig: { deepLinking: true } });
  app.get("/openapi.json", { config: { auth: "none" }, schema: { hide: true } }, async () => app.swagger());

  installAuth(app, {
    keys: deps.keys,
    apiKeys: deps.apiKeys.verifier,
    impersonations: deps.impersonation.checker,
    serviceTokens: deps.serviceKeys.verifier,
    revokedSessions: deps.identity.revocations,
    failures: deps.credentialFailures,
  });
  installTenant(app, deps.access, deps.principals);
  await app.register(opsRoutes({ db: deps.db, metrics }));
  await app.register(authPagesRoutes());
  for (const plugin of deps.routes) await app.register(plugin);
  return app;
}
