/** Scenario (a): a bare Fastify route, the ceiling for any Fastify app on this machine. Fastify's defaults: no logger. */
import Fastify from "fastify";
import { serve } from "./announce.ts";

const app = Fastify();
app.get("/v1/bench/ping", async () => ({ ok: true }));
await serve(app);
