#!/usr/bin/env -S node --max-semi-space-size=8
// The `tern` command, and what `npm start` and `npm run tern` run. The package pins Node 24 (the `node`
// package, a dependency so that production installs get it too: docs/install.md), so `npx tern` and the
// npm scripts run the TypeScript sources directly with Node's type stripping.
// --max-semi-space-size=8: under load V8 grows its young generation to 64 MiB, all of it resident; 16
// MiB costs no throughput here and ~80 MiB less RSS at 200 connections (docs/performance.md). The same
// flags are in package.json's start script (test/launch.test.ts keeps them equal); tests and bench/
// read them here (test/support/launch.ts).
// This file is plain JavaScript that older Nodes parse: an older Node (the system's, when the pinned one
// is not on PATH) gets one line saying so instead of a stack trace from the first .ts import.

const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(
    `Tern needs Node.js ≥ 24, found ${process.versions.node}\n` +
      `(${process.execPath}; \`npm ci\` in the checkout installs Node 24: run Tern with \`npm start\`, ` +
      '`npx tern` or node_modules/.bin/node, see docs/install.md)\n',
  );
  process.exit(1);
}

// Run through a link named sendmail, mailq or newaliases (docs/install.md): that name is the command.
const called = { sendmail: [], mailq: ['-bp'], newaliases: ['-bi'] }[process.argv[1]?.split('/').pop() ?? ''];
if (called !== undefined) process.argv.splice(2, 0, 'sendmail', ...called);

await import('../src/cli/main.ts');
