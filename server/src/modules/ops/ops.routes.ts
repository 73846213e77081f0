import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { Registry } from "prom-client";
import { Type } from "typebox";
import type { Database } from "../../db/client.ts";
import { migrationStatus } from "../../db/migrate.ts";
import { errors } from "../../http/schemas.ts";
import { platformError } from "../../lib/errors.ts";

const Check = Type.Object({ ok: Type.Boolean(), detail: Type.String() });

/** Liveness, readiness and metrics for load balancers and Prometheus. */
export function opsRoutes(s: { db: Database; metrics: Registry }): FastifyPluginAsyncTypebox {
  const tags = ["operations"];
  return async (app) => {
    app.get(
      "/healthz",
      {
        config: { auth: "none" },
        schema: { operationId: "healthz", tags, summary: "The process is alive", response: { 200: Type.Object({ status: Type.Literal("ok") }) } },
      },
      async () => ({ status: "ok" as const }),
    );

    app.get(
      "/readyz",
      {
        config: { auth: "none" },
        schema: {
          operationId: "readyz",
          tags,
          summary: "Ready for traffic: the database answers and every migration is applied",
          response: {
            200: Type.Object({ status: Type.Literal("ready"), checks: Type.Object({ database: Check, migrations: Check }) }),
            ...errors(503),
          },
        },
      },
      async () => {
        let database = { ok: true, detail: `${s.db.kind} reachable` };
        let migrations = { ok: false, detail: "not checked" };
        try {
          await s.db.ping();
          const m = await migrationStatus(s.db);
          migrations = { ok: m.applied >= m.expected, detail: `${m.applied} of ${m.expected} applied` };
        } catch (e) {
          database = { ok: false, detail: `unreachable: ${(e as Error).message}` };
        }
        if (database.ok && migrations.ok) return { status: "ready" as const, checks: { database, migrations } };
        throw platformError("NOT_READY", !database.ok ? `database ${database.detail}` : `migrations: ${migrations.detail}; run plinth migrate`);
      },
    );

    app.get(
      "/metrics",
      {
        config: { auth: "none" },
        schema: { operationId: "metrics", tags, summary: "Prometheus metrics (text exposition format)", produces: ["text/plain"] },
      },
      async (_req, reply) => {
        reply.type(s.metrics.contentType);
        return s.metrics.metrics();
      },
    );
  };
}
