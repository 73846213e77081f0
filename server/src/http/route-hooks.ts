import type { RouteOptions } from "fastify";

type HookName = "onRequest" | "preValidation";
type Hook = NonNullable<RouteOptions["onRequest"]> extends infer H ? (H extends readonly unknown[] ? H[number] : H) : never;

/**
 * Attaches a hook to one route as it is registered (from an onRoute hook), so a step of the request spine runs only
 * on the routes it concerns instead of costing every request a check that returns early.
 */
export function addRouteHook(route: RouteOptions, name: HookName, hook: Hook): void {
  const existing = route[name];
  const list = existing === undefined ? [] : Array.isArray(existing) ? existing : [existing];
  (route as unknown as Record<HookName, unknown[]>)[name] = [...list, hook];
}
