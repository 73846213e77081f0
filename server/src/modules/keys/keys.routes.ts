import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import type { SigningKeys } from "./signing-keys.ts";

const Jwk = Type.Object(
  {
    kty: Type.String(),
    kid: Type.String({ description: "Key id, as in the token header" }),
    alg: Type.String({ description: "ES256 (EC P-256: new keys by default) or EdDSA (OKP Ed25519); each key keeps its own" }),
    use: Type.String(),
    crv: Type.Optional(Type.String()),
    x: Type.Optional(Type.String()),
    y: Type.Optional(Type.String()),
  },
  { description: "Public JSON Web Key" },
);

export function keysRoutes(s: { keys: SigningKeys }): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      "/.well-known/jwks.json",
      {
        config: { auth: "none" },
        schema: {
          operationId: "getJwks",
          tags: ["keys"],
          summary: "Public keys that verify Plinth's access tokens",
          description: "Includes the current signing key and, after a rotation, the previous one until every token it signed has expired.",
          response: { 200: Type.Object({ keys: Type.Array(Jwk) }) },
        },
      },
      async (_req, reply) => {
        reply.header("cache-control", "public, max-age=300");
        return s.keys.jwks() as { keys: { kty: string; kid: string; alg: string; use: string }[] };
      },
    );
  };
}
