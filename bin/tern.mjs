#!/usr/bin/env node
// The `tern` command. The package pins Node 24 (devDependency `node`), so `npx tern` runs the
// TypeScript sources directly with Node's type stripping.
await import('../src/cli/main.ts');
