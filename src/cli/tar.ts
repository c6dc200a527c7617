// A minimal POSIX ustar archive, for `tern export`/`tern import`: regular files and folders only, each
// header and body padded to 512 octets, two zero blocks at the end (POSIX.1-1988; readable by GNU and
// BSD tar). Names longer than ustar's 100 octets use its 155-octet prefix field; nothing Tern stores is
// longer. The reader refuses what an archive must not do to the folder it is unpacked in: absolute
// names, "..", links and devices.
// Deliberately NOT here: compression (zlib around it), what goes in (commands/export.ts).

const BLOCK = 512;

export interface TarEntry {
  /** Slash-separated, relative; folders end without a slash. */
  readonly name: string;
  readonly type: 'file' | 'dir';
  readonly size: number;
  readonly mode: number;
  readonly mtimeS: number;
}

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, '0')}\0`;
}

function splitName(name: string): { name: string; prefix: string } | null {
  const bytes = Buffer.byteLength(name);
  if (bytes <= 100) return { name, prefix: '' };
  // The prefix ends at a slash: "prefix/name".
  for (let i = name.lastIndexOf('/'); i > 0; i = name.lastIndexOf('/', i - 1)) {
    const prefix = name.slice(0, i);
    const rest = name.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(rest) <= 100) return { name: rest, prefix };
  }
  return null;
}

/** One 512-octet ustar header. Throws for a name ustar cannot hold or a file of 8 GiB or more. */
export function tarHeader(e: TarEntry): Buffer {
  const split = splitName(e.type === 'dir' ? `${e.name}/` : e.name);
  if (split === null) throw new Error(`name too long for the archive: ${e.name}`);
  if (e.size >= 8 ** 11) throw new Error(`file too large for the archive: ${e.name}`);
  const h = Buffer.alloc(BLOCK);
  h.write(split.name, 0, 100, 'utf8');
  h.write(octal(e.mode & 0o7777, 8), 100, 'latin1');
  h.write(octal(0, 8), 108, 'latin1');
  h.write(octal(0, 8), 116, 'latin1');
  h.write(octal(e.type === 'dir' ? 0 : e.size, 12), 124, 'latin1');
  h.write(octal(Math.max(0, Math.floor(e.mtimeS)), 12), 136, 'latin1');
  h.write('        ', 148, 'latin1');
  h.write(e.type === 'dir' ? '5' : '0', 156, 'latin1');
  h.write('ustar\0', 257, 'latin1');
  h.write('00', 263, 'latin1');
  h.write(split.prefix, 345, 155, 'utf8');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return h;
}

/** Zero octets that pad a body of `size` to a whole block. */
export function tarPadding(size: number): Buffer {
  return Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);
}

/** The two zero blocks that end an archive. */
export const TAR_END = Buffer.alloc(2 * BLOCK);

function field(h: Buffer, start: number, length: number): string {
  const raw = h.subarray(start, start + length);
  const nul = raw.indexOf(0);
  return raw.subarray(0, nul < 0 ? length : nul).toString('utf8');
}

function parseOctal(h: Buffer, start: number, length: number): number {
  const text = field(h, start, length).trim();
  if (!/^[0-7]*$/.test(text)) throw new Error('archive: a number field is not octal');
  return text === '' ? 0 : Number.parseInt(text, 8);
}

/** A safe relative name, or an error saying why not. */
export function checkEntryName(name: string): string {
  const clean = name.replace(/\/+$/, '');
  if (clean === '' || clean.startsWith('/') || clean.includes('\0'))
    throw new Error(`archive: refused entry name ${JSON.stringify(name)}`);
  if (clean.split('/').some((part) => part === '..' || part === '' || part === '.'))
    throw new Error(`archive: refused entry name ${JSON.stringify(name)}`);
  return clean;
}

/**
 * Read an archive as it streams: each entry's header, then its body as chunks. Bounded memory: at most
 * one block of header plus the chunk in hand.
 */
export async function* readTar(
  source: AsyncIterable<Uint8Array>,
): AsyncGenerator<{ entry: TarEntry; body: AsyncGenerator<Uint8Array> }> {
  const it = source[Symbol.asyncIterator]();
  let pending = Buffer.alloc(0);
  const take = async (n: number): Promise<Buffer | null> => {
    while (pending.length < n) {
      const next = await it.next();
      if (next.done === true) return null;
      pending = pending.length === 0 ? Buffer.from(next.value) : Buffer.concat([pending, next.value]);
    }
    const out = pending.subarray(0, n);
    pending = pending.subarray(n);
    return out;
  };
  for (;;) {
    const h = await take(BLOCK);
    if (h === null) throw new Error('archive: it ends without its end blocks (truncated?)');
    if (h.every((b) => b === 0)) return;
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!;
    if (parseOctal(h, 148, 8) !== sum) throw new Error('archive: a header checksum does not match');
    const typeflag = String.fromCharCode(h[156]!);
    const prefix = field(h, 345, 155);
    const rawName = prefix === '' ? field(h, 0, 100) : `${prefix}/${field(h, 0, 100)}`;
    if (typeflag !== '0' && typeflag !== '\0' && typeflag !== '5')
      throw new Error(`archive: ${JSON.stringify(rawName)} is not a file or folder (type ${typeflag})`);
    const type = typeflag === '5' ? 'dir' : 'file';
    const size = type === 'dir' ? 0 : parseOctal(h, 124, 12);
    const entry: TarEntry = {
      name: checkEntryName(rawName),
      type,
      size,
      mode: parseOctal(h, 100, 8),
      mtimeS: parseOctal(h, 136, 12),
    };
    let left = size;
    let done = false;
    const body = (async function* () {
      while (left > 0) {
        if (pending.length === 0) {
          const next = await it.next();
          if (next.done === true) throw new Error(`archive: ${entry.name} is cut short`);
          pending = Buffer.from(next.value);
        }
        const n = Math.min(left, pending.length);
        const chunk = pending.subarray(0, n);
        pending = pending.subarray(n);
        left -= n;
        yield chunk;
      }
      done = true;
    })();
    yield { entry, body };
    // The caller may not have read the body: skip what is left of it, then the padding.
    if (!done) for await (const _ of body) void _;
    const pad = (BLOCK - (size % BLOCK)) % BLOCK;
    if (pad > 0 && (await take(pad)) === null) throw new Error('archive: it ends inside an entry');
  }
}
