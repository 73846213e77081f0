export * from "./identity.ts";
export * from "./orgs.ts";
export * from "./audit.ts";
export * from "./tenancy.ts";
export * from "./machine.ts";
export * from "./vault.ts";
export * from "./vault-leases.ts";
export * from "./zk-vaults.ts";
