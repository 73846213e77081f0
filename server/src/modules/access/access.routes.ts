import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import { bearerSecurity, errors } from "../../http/schemas.ts";
import { ALL_PERMISSIONS, PERMISSIONS } from "./permissions.ts";

export function accessRoutes(): FastifyPluginAsyncTypebox {
  const tags = ["access"];
  return async (app) => {
    app.get(
      "/v1/permissions",
      {
        schema: {
          operationId: "listPermissions",
          tags,
          summary: "Every permission a role can hold",
          security: bearerSecurity,
          response: {
            200: Type.Object({ items: Type.Array(Type.Object({ name: Type.String({ description: "resource:action" }), description: Type.String() })) }),
            ...errors(401),
          },
        },
      },
      async () => ({ items: ALL_PERMISSIONS.map((name) => ({ name, description: PERMISSIONS[name] })) }),
    );
  };
}
