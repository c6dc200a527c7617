#!/usr/bin/env -S node --max-semi-space-size=8
// The `tern` command. The package pins Node 24 (devDependency `node`), so `npx tern` runs the
// TypeScript sources directly with Node's type stripping.
// --max-semi-space-size=8: under load V8 grows its young generation to 64 MiB, all of it resident; 16
// MiB costs no throughput here and ~80 MiB less RSS at 200 connections (docs/performance.md). The same
// flags are in package.json's start script (test/launch.test.ts keeps them equal); tests and bench/
// read them here (test/support/launch.ts).
await import('../src/cli/main.ts');
