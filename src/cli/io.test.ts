import assert from 'node:assert/strict';
import { PassThrough, Readable } from 'node:stream';
import { test } from 'node:test';
import type { CliStdin } from './io.ts';
import { CliError, promptNewPassword, readHiddenLine, readPasswordFromStdin } from './io.ts';

test('readPasswordFromStdin takes the first line and drops the line ending', async () => {
  assert.equal(await readPasswordFromStdin(Readable.from(['s3cret pass\r\nsecond line\n'])), 's3cret pass');
  assert.equal(await readPasswordFromStdin(Readable.from(['no newline'])), 'no newline');
});

test('readPasswordFromStdin refuses an empty password and an oversized input', async () => {
  await assert.rejects(readPasswordFromStdin(Readable.from(['\n'])), /empty password/);
  await assert.rejects(readPasswordFromStdin(Readable.from([])), /empty password/);
  await assert.rejects(
    readPasswordFromStdin(Readable.from([Buffer.alloc(5000, 'a')])),
    /longer than 4096 bytes/,
  );
});

/** A fake terminal: a PassThrough that records raw-mode switches. */
function fakeTty(): { stdin: CliStdin & PassThrough; rawModes: boolean[] } {
  const rawModes: boolean[] = [];
  const stream = new PassThrough() as PassThrough & { isTTY: boolean; setRawMode(mode: boolean): void };
  stream.isTTY = true;
  stream.setRawMode = (mode: boolean) => {
    rawModes.push(mode);
  };
  return { stdin: stream, rawModes };
}

function sink(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (d: Buffer) => (text += d.toString()));
  return { stream, text: () => text };
}

test('readHiddenLine reads in raw mode, applies backspace, echoes nothing and restores the terminal', async () => {
  const { stdin, rawModes } = fakeTty();
  const err = sink();
  const line = readHiddenLine({ stdin, stderr: err.stream }, 'Password: ');
  stdin.write('pax\u007fss\r');
  assert.equal(await line, 'pass');
  assert.deepEqual(rawModes, [true, false]);
  assert.equal(err.text(), 'Password: \n');
});

test('readHiddenLine turns Ctrl-C into a cancel with exit status 130', async () => {
  const { stdin } = fakeTty();
  const line = readHiddenLine({ stdin, stderr: sink().stream }, 'Password: ');
  stdin.write('abc\u0003');
  await assert.rejects(line, (e: unknown) => e instanceof CliError && e.exitCode === 130);
});

test('promptNewPassword asks twice and refuses a mismatch', async () => {
  const ok = fakeTty();
  const p1 = promptNewPassword({ stdin: ok.stdin, stderr: sink().stream });
  ok.stdin.write('hunter2\r');
  setImmediate(() => ok.stdin.write('hunter2\r'));
  assert.equal(await p1, 'hunter2');

  const bad = fakeTty();
  const p2 = promptNewPassword({ stdin: bad.stdin, stderr: sink().stream });
  bad.stdin.write('one\r');
  setImmediate(() => bad.stdin.write('two\r'));
  await assert.rejects(p2, /passwords do not match/);
});

test('readHiddenLine refuses a stdin that is not a terminal', async () => {
  await assert.rejects(
    readHiddenLine({ stdin: Readable.from([]), stderr: sink().stream }, 'Password: '),
    /not a terminal/,
  );
});
