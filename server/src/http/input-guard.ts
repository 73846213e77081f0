import type { FastifyInstance, FastifyRequest } from "fastify";
import { addRouteHook } from "./route-hooks.ts";
import { platformError } from "../lib/errors.ts";

const MAX_DEPTH = 32;

/**
 * Scans parsed input without recursion. Returns the path of the first string or key holding a NUL character (which
 * PostgreSQL text cannot store), `depth` when the value nests deeper than any API accepts, or undefined.
 */
export function scanInput(root: unknown): { field: string; reason: "nul" | "depth" } | undefined {
  const stack: [unknown, string, number][] = [[root, "", 0]];
  while (stack.length) {
    const [value, path, depth] = stack.pop() as [unknown, string, number];
    if (typeof value === "string") {
      if (value.includes("\u0000")) return { field: path || "body", reason: "nul" };
      continue;
    }
    if (!value || typeof value !== "object") continue;
    if (depth >= MAX_DEPTH) return { field: path || "body", reason: "depth" };
    const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v] as const) : Object.entries(value);
    for (const [k, v] of entries) {
      const p = path ? `${path}.${k}` : k;
      if (k.includes("\u0000")) return { field: p, reason: "nul" };
      stack.push([v, p, depth + 1]);
    }
  }
  return undefined;
}

/**
 * Refuses, for every route at once, NUL characters anywhere in a body, query or path (PostgreSQL rejects them in
 * text, which would otherwise surface as a 500 from whichever query met them first) and absurdly deep nesting.
 */
export function installInputGuard(app: FastifyInstance): void {
  // only routes that declare input read any; the others never see a body, query or param value
  app.addHook("onRoute", (route) => {
    const schema = route.schema as { body?: unknown; querystring?: unknown; params?: unknown } | undefined;
    if (schema?.body || schema?.querystring || schema?.params) addRouteHook(route, "preValidation", guard);
  });
  async function guard(request: FastifyRequest): Promise<void> {
    const hit = scanInput(request.body) ?? scanInput(request.query) ?? scanInput(request.params);
    if (!hit) return;
    throw platformError(
      "VALIDATION_FAILED",
      hit.reason === "nul" ? `${hit.field} must not contain NUL characters.` : `${hit.field} is nested more than ${MAX_DEPTH} levels deep.`,
      { field: hit.field },
    );
  }
}
