/**
 * The zero-knowledge vault client library: everything that touches a passphrase, a vault key or a plaintext runs
 * here, in the client (the CLI now, a browser later). The server stores only what these functions output.
 */
export * from "./zk.create.ts";
export * from "./zk.errors.ts";
export * from "./zk.kdf.ts";
export * from "./zk.members.ts";
export * from "./zk.primitives.ts";
export * from "./zk.recovery.ts";
export * from "./zk.user-keys.ts";
export * from "./zk.vault.ts";
