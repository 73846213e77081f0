/** Scenario (a): a bare Fastify route, the ceiling for any Fastify app on this machine. Fastify's defaults: no logger. */
import Fastify from "fastify";
import { announce } from "./announce.ts";

const app = Fastify();
app.get("/v1/bench/ping", async () => ({ ok: true }));
await app.listen({ port: Number(process.env.PORT ?? 0), host: "127.0.0.1" });
announce(app);
process.once("SIGTERM", () => void app.close().finally(() => process.exit(0)));
