// End to end: one `tern serve` per data directory (the lock file <data_dir>/tern.lock), and a start that
// cannot bind a listener stops before the delivery worker runs, naming the listener and its config line.
// Real `tern serve` processes; the second server and the failed start are separate processes too.

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { CLI, RawSmtpClient, ehlo, runProcess, startTern, ternConfigToml, waitFor } from './harness.ts';
import type { Tern } from './harness.ts';
import { spawnTernServe, ternNodeFlags } from '../support/launch.ts';

const servers: Tern[] = [];
after(async () => {
  for (const s of servers) await s.stop();
});

function serveOnce(configPath: string, cwd: string, timeoutMs = 20_000) {
  return runProcess(process.execPath, [...ternNodeFlags(), CLI, 'serve', '--config', configPath], {
    cwd,
    timeoutMs,
  });
}

test('a second tern serve on the same data directory refuses to start, naming the pid of the first', async () => {
  const tern = await startTern();
  servers.push(tern);
  const lock = join(tern.dataDir, 'tern.lock');
  assert.equal(readFileSync(lock, 'utf8').split('\n')[0], String(tern.pid));

  const second = await serveOnce(tern.configPath, tern.dir);
  assert.equal(second.code, 1, `second serve: ${second.stdout}${second.stderr}`);
  assert.match(second.stderr, new RegExp(`in use by another tern serve \\(pid ${tern.pid}\\)`));
  assert.doesNotMatch(second.stdout, /^listening /m, 'the second server bound nothing');

  // The first one is untouched, keeps its lock, and CLI commands still work beside it.
  assert.equal(tern.alive(), true);
  assert.equal(readFileSync(lock, 'utf8').split('\n')[0], String(tern.pid));
  const client = await RawSmtpClient.open(tern.ports.smtp);
  assert.ok((await ehlo(client)).length > 0);
  client.close();
  const list = await tern.tern(['user', 'list']);
  assert.equal(list.code, 0, list.stderr);
  const queue = await tern.tern(['queue', 'list']);
  assert.equal(queue.code, 0, queue.stderr);
});

test('the lock goes at a clean stop; a lock left by kill -9 is stale and the next start takes it over', async () => {
  const tern = await startTern();
  servers.push(tern);
  const lock = join(tern.dataDir, 'tern.lock');
  await tern.kill('SIGKILL');
  assert.equal(readFileSync(lock, 'utf8').split('\n')[0], String(tern.pid), 'kill -9 leaves the lock behind');

  const child = spawnTernServe(tern.configPath, tern.dir);
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    await waitFor(
      'the restarted server to listen',
      () => {
        if (child.exitCode !== null) throw new Error(`restart failed:\n${out}`);
        return (out.match(/^listening /gm)?.length ?? 0) >= 3 ? true : undefined;
      },
      20_000,
    );
    assert.equal(readFileSync(lock, 'utf8').split('\n')[0], String(child.pid));
  } finally {
    child.kill('SIGTERM');
  }
  assert.equal(await exited, 0, out);
  assert.equal(existsSync(lock), false, 'a clean stop removes the lock');
});

test('a listener address in use stops the start (exit 1) before delivery starts, naming the listener and its line', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tern-e2e-inuse-'));
  after(() => rm(dir, { recursive: true, force: true }));
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  after(() => blocker.close());
  const port = (blocker.address() as { port: number }).port;
  const configPath = join(dir, 'tern.toml');
  // The harness's config with the second listener moved onto the busy port.
  const lines = ternConfigToml(join(dir, 'data'), {}).split('\n');
  const second = lines.findIndex((l, i) => l === 'address = "127.0.0.1:0"' && lines.indexOf(l) !== i);
  lines[second] = `address = "127.0.0.1:${port}"`;
  await writeFile(configPath, lines.join('\n'));

  const r = await serveOnce(configPath, dir);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.equal(
    r.stderr.split('\n').find((l) => l.startsWith('tern: ')),
    `tern: ${configPath}:${second + 1}: listeners[1].address: 127.0.0.1:${port} is in use`,
  );
  const output = r.stdout + r.stderr;
  assert.doesNotMatch(output, /delivery\.worker\.started/, 'the delivery worker never started');
  assert.doesNotMatch(output, /^listening /m);
  assert.equal(existsSync(join(dir, 'data', 'tern.lock')), false, 'the lock is released');
});
