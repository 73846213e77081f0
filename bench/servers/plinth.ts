/**
 * Scenarios (b) and (d): Plinth exactly as `plinth serve` builds it (loadConfig → createDeps → buildApp, job worker
 * on), from the environment, plus one trivial route, GET /v1/bench/ping → {ok:true}. Being under /v1 it sits behind
 * the real authentication hook (a user access token is required), and it also passes through Plinth's other hooks
 * (request id, metrics, request logging at LOG_LEVEL).
 *
 * For bench/keys, the same route under an org as well, GET /v1/orgs/{orgId}/bench/ping (org:read), shaped like every
 * org route (an OrgIdParams schema): it also passes the tenant step (membership, narrowing of an API key, permission).
 */
import { buildApp } from "../../server/src/app.ts";
import { loadConfig } from "../../server/src/config.ts";
import { createDeps } from "../../server/src/deps.ts";
import { OrgIdParams } from "../../server/src/http/schemas.ts";
import { announce } from "./announce.ts";

const config = loadConfig(process.env);
const deps = await createDeps(config);
const app = await buildApp(deps);
app.get("/v1/bench/ping", { schema: { hide: true } }, async () => ({ ok: true }));
app.get("/v1/orgs/:orgId/bench/ping", { config: { permission: "org:read" }, schema: { hide: true, params: OrgIdParams } }, async () => ({ ok: true }));
if (config.runWorker) deps.jobs.start();
await app.listen({ port: config.port, host: "127.0.0.1" });
announce(app);
process.once("SIGTERM", () => {
  void (async () => {
    try {
      await app.close();
      await deps.close();
    } finally {
      process.exit(0);
    }
  })();
});
