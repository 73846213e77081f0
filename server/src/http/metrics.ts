import type { FastifyInstance } from "fastify";
import { collectDefaultMetrics, Counter, Histogram, Registry } from "prom-client";

/** Prometheus metrics: requests by route, method and status, with latency. One registry per app instance. */
export function installMetrics(app: FastifyInstance): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "plinth_" });
  const duration = new Histogram({
    name: "plinth_http_request_duration_seconds",
    help: "HTTP request latency by route, method and status",
    labelNames: ["method", "route", "status_code"],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const total = new Counter({
    name: "plinth_http_requests_total",
    help: "HTTP requests by route, method and status",
    labelNames: ["method", "route", "status_code"],
    registers: [registry],
  });
  app.addHook("onResponse", async (request, reply) => {
    // unmatched paths share one label so a scanner cannot blow up the label space
    const labels = { method: request.method, route: request.routeOptions.url ?? "(unmatched)", status_code: String(reply.statusCode) };
    duration.observe(labels, reply.elapsedTime / 1000);
    total.inc(labels);
  });
  return registry;
}
