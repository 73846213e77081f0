import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";

/** Grants, peer grants, grant requests, and the check / explain API. */
export function grantsRoutes(): FastifyPluginAsyncTypebox {
  return async () => {};
}
