export * from "./identity.ts";
export * from "./orgs.ts";
