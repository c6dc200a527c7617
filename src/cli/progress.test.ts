import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, test } from 'node:test';
import { Progress, formatBytes } from './progress.ts';

function stream(isTTY: boolean): { out: PassThrough; text: () => string } {
  const out = Object.assign(new PassThrough(), { isTTY });
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  return { out, text: () => Buffer.concat(chunks).toString('utf8') };
}

describe('progress', () => {
  test('on a terminal: messages, bytes, rate and a bar, redrawn at most every 100 ms, cleared at the end', () => {
    let now = 1_000;
    const { out, text } = stream(true);
    const p = new Progress({
      stream: out,
      clock: { nowMs: () => now },
      verb: 'importing',
      totalBytes: 4_000_000,
    });
    now += 500;
    p.add(10, 1_000_000);
    now += 50;
    p.add(1, 1_000); // too soon: not drawn
    now += 450;
    p.add(9, 999_000);
    const drawn = text()
      .split('\r\x1b[K')
      .filter((l) => l !== '');
    assert.deepEqual(drawn, [
      'importing [#####...............]  25%  10 messages, 1.0 MB (2.0 MB/s, 20 msg/s)',
      'importing [##########..........]  50%  20 messages, 2.0 MB (2.0 MB/s, 20 msg/s)',
    ]);
    p.finish();
    assert.ok(text().endsWith('\r\x1b[K'));
  });

  test('without a known total: counts and rate only', () => {
    const p = new Progress({ stream: stream(true).out, clock: { nowMs: () => 0 }, verb: 'exporting' });
    p.add(3, 2_500);
    assert.equal(p.line(1_000), 'exporting: 3 messages, 2.5 kB (2.5 kB/s, 3 msg/s)');
  });

  test('on a pipe: nothing at all', () => {
    const { out, text } = stream(false);
    const p = new Progress({ stream: out, clock: { nowMs: () => 0 }, verb: 'importing', totalBytes: 10 });
    p.add(1, 10);
    p.finish();
    assert.equal(text(), '');
  });

  test('formatBytes uses decimal units', () => {
    assert.deepEqual([0, 999, 1000, 1_234_567, 5e12].map(formatBytes), [
      '0 B',
      '999 B',
      '1.0 kB',
      '1.2 MB',
      '5.0 TB',
    ]);
  });
});
