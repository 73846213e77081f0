import formbody from "@fastify/formbody";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { FastifyError, FastifyReply } from "fastify";
import { Type } from "typebox";
import { isAppError } from "../../lib/errors.ts";
import { ALL_PERMISSIONS } from "../access/permissions.ts";
import { MAX_ISSUED_TTL_SECONDS } from "../keys/signing-keys.ts";
import { EXTRA_CLAIMS_CLAIM, RESERVED_CLAIMS, refusePrototypeNames } from "./oauth.claims.ts";
import { OAuthError } from "./oauth.errors.ts";
import {
  GRANT_CLIENT_CREDENTIALS,
  GRANT_TOKEN_EXCHANGE,
  TOKEN_TYPE_ACCESS,
  TOKEN_TYPE_API_KEY,
  type ClientCredentials,
  type OAuthService,
} from "./oauth.service.ts";

const Param = (description: string, maxLength = 8192) => Type.Optional(Type.String({ minLength: 1, maxLength, description }));

const TokenBody = Type.Object(
  {
    grant_type: Type.String({ minLength: 1, maxLength: 100, description: `${GRANT_CLIENT_CREDENTIALS} or ${GRANT_TOKEN_EXCHANGE}` }),
    client_id: Param(
      "The OAuth client's cli_… id (or send it with HTTP Basic). Required for client_credentials; optional for the token exchange, where the client is then named in the token's azp. Never without client_secret: every client is confidential",
      100,
    ),
    client_secret: Param("The client's secret, with client_id (or send both with HTTP Basic)", 200),
    scope: Type.Optional(
      Type.String({
        maxLength: 2000,
        description: "Space-separated permissions to narrow the token to; each must be held by the subject (invalid_scope otherwise). Absent: all it holds",
      }),
    ),
    audience: Param(
      "The `aud` of the token: the service it is for. Absent: Plinth itself (a token for another audience does not work on Plinth's routes)",
      200,
    ),
    expires_in: Type.Optional(
      Type.Union([Type.String({ pattern: "^[0-9]{1,7}$" }), Type.Integer()], {
        description: `Lifetime in seconds, 1–${MAX_ISSUED_TTL_SECONDS}; default 300 (Plinth extension)`,
      }),
    ),
    subject_token: Param(`token exchange: an API key (plk_…) or a Plinth access token`),
    subject_token_type: Param(`token exchange: ${TOKEN_TYPE_API_KEY} for an API key (plk_…), ${TOKEN_TYPE_ACCESS} for a Plinth access token (a JWT)`, 100),
    requested_token_type: Param(`token exchange: ${TOKEN_TYPE_ACCESS} (the only one issued)`, 100),
    actor_token: Param("Not supported (invalid_request)"),
    actor_token_type: Param("Not supported (invalid_request)", 100),
    org_id: Param("token exchange of a signed-in user's access token: the organization whose permissions the new token carries (Plinth extension)", 40),
    claims: Type.Optional(
      Type.Union([Type.String({ maxLength: 2048 }), Type.Object({}, { additionalProperties: true })], {
        description:
          `Information for the receiving service: a JSON object (in a form, its JSON text), at most 20 members and 2048 bytes, issued as the one claim \`${EXTRA_CLAIMS_CLAIM}\` ` +
          `(never at the top level, where it could read as identity or authority). Member names are plain identifiers; ${[...RESERVED_CLAIMS].join(", ")} are refused, ` +
          "and __proto__, constructor and prototype at any depth (Plinth extension)",
      }),
    ),
  },
  { additionalProperties: false },
);

const TokenResponse = Type.Object(
  {
    access_token: Type.String({ description: "A JWT signed with Plinth's keys (verify offline against /.well-known/jwks.json)" }),
    token_type: Type.Literal("Bearer"),
    expires_in: Type.Integer({ description: "Seconds the token lives" }),
    scope: Type.String({ description: "The permissions it carries, space-separated" }),
    issued_token_type: Type.Optional(Type.String({ description: `token exchange: ${TOKEN_TYPE_ACCESS}` })),
  },
  { description: "An access token (RFC 6749 §5.1, RFC 8693 §2.2.1)" },
);

const OAuthErrorBody = Type.Object(
  {
    error: Type.String({
      description:
        "invalid_request, invalid_client, invalid_grant, unauthorized_client, unsupported_grant_type, invalid_scope, invalid_target, slow_down (429, with Retry-After) or server_error",
    }),
    error_description: Type.String({ description: "What went wrong, in words" }),
  },
  { description: "An RFC 6749 §5.2 error (this endpoint only; every other route answers problem+json)" },
);

/** HTTP Basic client credentials (RFC 6749 §2.3.1: each part form-urlencoded), undefined without an Authorization header. */
function basicCredentials(header: string | undefined): ClientCredentials | undefined {
  if (header === undefined) return undefined;
  const m = /^basic +([A-Za-z0-9+/=]{1,1000})$/i.exec(header.trim());
  if (!m) throw new OAuthError("invalid_client", "The Authorization header must be HTTP Basic with the client id and secret.");
  const text = Buffer.from(m[1], "base64").toString("utf8");
  const colon = text.indexOf(":");
  if (colon < 1) throw new OAuthError("invalid_client", "The Basic credentials must be client_id:client_secret.");
  try {
    const decode = (s: string) => decodeURIComponent(s.replace(/\+/g, " "));
    return { id: decode(text.slice(0, colon)), secret: decode(text.slice(colon + 1)) };
  } catch {
    throw new OAuthError("invalid_client", "The Basic credentials are not form-urlencoded.");
  }
}

const BODY_LIMIT = 64 * 1024;

/**
 * JSON bodies of the token endpoint, parsed here so that a prototype-polluting name (`__proto__`, `constructor`,
 * `prototype`, at any depth) is refused by name: Fastify's default parser refuses some of them too, but only as
 * "not valid JSON". JSON.parse makes such a name an own property, never the prototype, so nothing is polluted before.
 */
function parseJsonBody(_req: unknown, body: string | Buffer, done: (err: Error | null, value?: unknown) => void): void {
  let value: unknown;
  try {
    value = JSON.parse(body.toString());
  } catch {
    return done(new OAuthError("invalid_request", "The body is not valid JSON."));
  }
  try {
    refusePrototypeNames(value, "");
  } catch (e) {
    return done(e as Error);
  }
  done(null, value);
}

function sendOAuthError(reply: FastifyReply, e: OAuthError, basic: boolean): FastifyReply {
  if (e.status === 401 && basic) reply.header("www-authenticate", 'Basic realm="plinth", charset="UTF-8"');
  if (e.retryAfter !== undefined) reply.header("retry-after", String(e.retryAfter));
  return reply.code(e.status).header("cache-control", "no-store").header("pragma", "no-cache").send({ error: e.error, error_description: e.message });
}

/**
 * POST /v1/oauth/token. Its errors follow RFC 6749 §5.2 ({error, error_description}, 400, or 401 for client
 * authentication) rather than problem+json, because OAuth client libraries read that format; in this plugin's scope
 * only. It also reads application/x-www-form-urlencoded bodies (the OAuth encoding) besides JSON.
 */
export function oauthRoutes(s: { oauth: OAuthService }): FastifyPluginAsyncTypebox {
  return async (app) => {
    await app.register(formbody, { bodyLimit: BODY_LIMIT });
    app.removeContentTypeParser("application/json");
    app.addContentTypeParser("application/json", { parseAs: "string", bodyLimit: BODY_LIMIT }, parseJsonBody);
    app.setErrorHandler((error: FastifyError, request, reply) => {
      const basic = request.headers.authorization !== undefined;
      if (error instanceof OAuthError) return sendOAuthError(reply, error, basic);
      if (error.validation) {
        const v = error.validation[0];
        const params = v?.params as { missingProperty?: string; additionalProperty?: string } | undefined;
        const field = params?.missingProperty ?? params?.additionalProperty ?? (v?.instancePath ?? "").replace(/^\//, "").replace(/\//g, ".");
        const why = params?.missingProperty ? "is required" : params?.additionalProperty ? "is not a known parameter" : (v?.message ?? "is invalid");
        return sendOAuthError(reply, new OAuthError("invalid_request", `${field || "body"} ${why}.`), basic);
      }
      const status = isAppError(error) ? error.status : (error.statusCode ?? 500);
      if (status < 500) return sendOAuthError(reply, new OAuthError("invalid_request", error.message.slice(0, 300)), basic);
      request.log.error({ err: error }, "token request failed");
      return reply
        .code(500)
        .header("cache-control", "no-store")
        .send({ error: "server_error", error_description: "The server could not answer; retry later." });
    });

    app.post(
      "/v1/oauth/token",
      {
        config: { auth: "none" },
        schema: {
          operationId: "issueToken",
          tags: ["oauth"],
          summary: "Get a short-lived access token: client credentials, or token exchange (RFC 8693)",
          description:
            `grant_type=${GRANT_CLIENT_CREDENTIALS}: a service account's OAuth client (HTTP Basic or client_id/client_secret) gets a token whose sub is the ` +
            `account. grant_type=${GRANT_TOKEN_EXCHANGE}: an API key (subject_token_type=${TOKEN_TYPE_API_KEY}) or a Plinth access token ` +
            `(${TOKEN_TYPE_ACCESS}) becomes a token for one organization, narrowed by scope, for an audience, with extra claims (under \`${EXTRA_CLAIMS_CLAIM}\`). ` +
            "The exchange may be made by an OAuth client of that organization authenticating as for client_credentials (as standard clients do): " +
            "a wrong secret is invalid_client, a client of another organization unauthorized_client, and the token names the client in azp; the " +
            "subject token stays the only authority. A token exchanged from a client_credentials token keeps that token's client_id. Tokens live 300 s " +
            `by default, at most ${MAX_ISSUED_TTL_SECONDS} s (and never longer than an access token they were exchanged from), carry sub, org and ` +
            "scope, and are verified offline against /.well-known/jwks.json. Nothing widens authority: asking for a permission the subject lacks is " +
            "invalid_scope. On Plinth's own routes such a token acts within its org and scope only, and a service account's stops when it is " +
            "disabled or its client (client_id) revoked, and one exchanged from an API key stops when the key is revoked (services verifying offline rely on its short life). " +
            "A token exchanged from an API key carries key_id and never outlives the key. Throttled: repeated failed client authentications " +
            "lock the client_id and the IP out for growing periods (during which even the right secret is refused), and each client, API key or " +
            "subject gets at most 60 tokens a minute; both answer 429 slow_down with Retry-After. Errors are RFC 6749 §5.2 JSON, not " +
            "problem+json. Form-encoded or JSON bodies.",
          consumes: ["application/x-www-form-urlencoded", "application/json"],
          body: TokenBody,
          response: { 200: TokenResponse, 400: OAuthErrorBody, 401: OAuthErrorBody, 429: OAuthErrorBody },
        },
      },
      async (req, reply) => {
        const basic = basicCredentials(req.headers.authorization);
        const out = await s.oauth.token(req.body, basic, req.ip);
        return reply.header("cache-control", "no-store").header("pragma", "no-cache").send(out);
      },
    );
  };
}

/**
 * GET /.well-known/openid-configuration: where the token endpoint and the keys are, and what they support. Plinth is
 * not an OpenID provider (no authorization endpoint, no ID tokens); the document serves OAuth clients and verifiers.
 */
export function discoveryRoutes(s: { issuer: string; publicUrl: string }): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      "/.well-known/openid-configuration",
      {
        config: { auth: "none" },
        schema: {
          operationId: "getOpenIdConfiguration",
          tags: ["oauth"],
          summary: "Issuer metadata: the token endpoint, the JWKS and what they support",
          response: {
            200: Type.Object({
              issuer: Type.String({ description: "The `iss` of Plinth's tokens" }),
              jwks_uri: Type.String({ description: "The public keys that verify them" }),
              token_endpoint: Type.String({ description: "POST here for tokens" }),
              grant_types_supported: Type.Array(Type.String()),
              token_endpoint_auth_methods_supported: Type.Array(Type.String()),
              scopes_supported: Type.Array(Type.String(), { description: "The permissions a token may be narrowed to" }),
            }),
          },
        },
      },
      async (_req, reply) => {
        reply.header("cache-control", "public, max-age=300");
        return {
          issuer: s.issuer,
          jwks_uri: `${s.publicUrl}/.well-known/jwks.json`,
          token_endpoint: `${s.publicUrl}/v1/oauth/token`,
          grant_types_supported: [GRANT_CLIENT_CREDENTIALS, GRANT_TOKEN_EXCHANGE],
          token_endpoint_auth_methods_supported: ["client_secret_basic", "client_secret_post"],
          scopes_supported: ALL_PERMISSIONS,
        };
      },
    );
  };
}
