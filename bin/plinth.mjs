#!/usr/bin/env node
// The plinth command. Plinth runs on Node 24+ (TypeScript type stripping); npm scripts put that Node first on PATH.
const [major] = process.versions.node.split(".").map(Number);
if (major < 24) {
  process.stderr.write(`plinth needs Node 24 or newer (this is ${process.version}); run it through npm (npm run plinth -- …) or npx plinth\n`);
  process.exit(1);
}
const { run } = await import("../server/src/cli/main.ts");
const code = await run(process.argv.slice(2));
if (code >= 0) process.exit(code);
