// The Node flags the `tern` command runs with (the shebang of bin/tern.mjs, the same as `npm start`),
// so test servers, the soak and the bench run Tern's process as users do; and starting `tern serve`
// for a test.

import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export function ternNodeFlags(): string[] {
  const shebang = readFileSync(join(ROOT, 'bin', 'tern.mjs'), 'utf8').split('\n', 1)[0] ?? '';
  const m = /^#!\/usr\/bin\/env -S node(?: (.*))?$/.exec(shebang);
  return m?.[1]?.split(/\s+/).filter((f) => f.length > 0) ?? [];
}

/** Stops the server when the test process dies: its stdin pipe closes, and it sends itself SIGTERM. */
export const WATCHDOG =
  'data:text/javascript,' +
  encodeURIComponent(
    // The main thread only: NODE_OPTIONS preloads run in every worker thread too (session threads).
    'import{isMainThread}from"node:worker_threads";if(isMainThread){' +
      'process.stdin.on("end",()=>process.kill(process.pid,"SIGTERM"));' +
      'process.stdin.on("error",()=>{});process.stdin.resume();process.stdin.unref();}',
  );

/**
 * `tern serve --config configPath` as a child process the way users run it (the `tern` command's Node
 * flags), with the watchdog above and TERN_DEBUG (stack traces in errors). The caller tracks the child.
 */
export function spawnTernServe(
  configPath: string,
  cwd: string,
  extraArgs: readonly string[] = [],
): ChildProcessWithoutNullStreams {
  const child = spawn(
    process.execPath,
    [
      ...ternNodeFlags(),
      '--import',
      WATCHDOG,
      join(ROOT, 'src', 'cli', 'main.ts'),
      'serve',
      '--config',
      configPath,
      ...extraArgs,
    ],
    { cwd, env: { ...process.env, TERN_DEBUG: '1' }, stdio: ['pipe', 'pipe', 'pipe'] },
  );
  child.stdin.on('error', () => undefined);
  return child;
}
