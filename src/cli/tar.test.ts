import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { checkEntryName, readTar, TAR_END, tarHeader, tarPadding, type TarEntry } from './tar.ts';

function archive(files: { name: string; body?: string; dir?: boolean }[]): Buffer {
  const parts: Buffer[] = [];
  for (const f of files) {
    const body = Buffer.from(f.body ?? '', 'utf8');
    parts.push(
      tarHeader({
        name: f.name,
        type: f.dir === true ? 'dir' : 'file',
        size: body.length,
        mode: 0o600,
        mtimeS: 1_700_000_000,
      }),
    );
    if (f.dir !== true) parts.push(body, tarPadding(body.length));
  }
  parts.push(TAR_END);
  return Buffer.concat(parts);
}

async function read(bytes: Buffer, chunk = 7): Promise<{ entry: TarEntry; body: string }[]> {
  const out: { entry: TarEntry; body: string }[] = [];
  const pieces: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += chunk) pieces.push(bytes.subarray(i, i + chunk));
  const source = Readable.from(pieces);
  for await (const { entry, body } of readTar(source)) {
    const parts: Buffer[] = [];
    for await (const c of body) parts.push(Buffer.from(c));
    out.push({ entry, body: Buffer.concat(parts).toString('utf8') });
  }
  return out;
}

describe('the export archive (ustar)', () => {
  test('files and folders round-trip, whatever the chunking; UTF-8 names (日本, jürgen) and long paths', async () => {
    const long = `mail/blobs/${'ab/'.repeat(40)}cdef`;
    const bytes = archive([
      { name: 'mail', dir: true },
      { name: 'mail/日本.txt', body: 'こんにちは' },
      { name: 'dkim/jürgen.example/sel.pem', body: 'key' },
      { name: long, body: 'x'.repeat(1000) },
      { name: 'empty', body: '' },
    ]);
    for (const chunk of [1, 7, 512, 100_000]) {
      const got = await read(bytes, chunk);
      assert.deepEqual(
        got.map((g) => [g.entry.name, g.entry.type, g.body.length]),
        [
          ['mail', 'dir', 0],
          ['mail/日本.txt', 'file', 5],
          ['dkim/jürgen.example/sel.pem', 'file', 3],
          [long, 'file', 1000],
          ['empty', 'file', 0],
        ],
      );
    }
  });

  test('GNU tar reads what we write', async () => {
    const { spawnSync } = await import('node:child_process');
    const r = spawnSync('tar', ['-tvf', '-'], { input: archive([{ name: 'a/b.txt', body: 'hello' }]) });
    if (r.status === null || r.error !== undefined) return; // no tar here: nothing to compare with
    assert.equal(r.status, 0, r.stderr.toString());
    assert.match(r.stdout.toString(), /a\/b\.txt/);
  });

  test('hostile archives: absolute names, "..", links, bad checksums, truncation are refused', async () => {
    for (const bad of ['/etc/passwd', '../x', 'a/../../x', 'a//b', './a'])
      assert.throws(() => checkEntryName(bad), /refused entry name/, bad);
    const link = archive([{ name: 'l', body: '' }]);
    link[156] = '2'.charCodeAt(0); // a symlink, with its checksum made right again
    link.write('        ', 148, 'latin1');
    let sum0 = 0;
    for (let i = 0; i < 512; i++) sum0 += link[i]!;
    link.write(`${sum0.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    await assert.rejects(read(link), /not a file or folder/);
    const sum = archive([{ name: 'a', body: 'x' }]);
    sum[0] = 'b'.charCodeAt(0);
    await assert.rejects(read(sum), /checksum/);
    const full = archive([{ name: 'a', body: 'x'.repeat(2000) }]);
    await assert.rejects(read(full.subarray(0, 1024)), /cut short|ends/);
    await assert.rejects(read(full.subarray(0, full.length - 1024)), /end blocks/);
  });
});
