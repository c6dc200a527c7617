// The mailbox the IMAP benchmark reads (bench/imap.ts): message i of a seeded corpus, the same bytes on
// every run and for every server. A mix like a real inbox: about half plain text, a third
// multipart/alternative (text and quoted-printable HTML), the rest multipart/mixed with a base64
// attachment; sizes log-uniform from 1 to 100 KiB (median about 10 KiB); a fifth of the senders and
// subjects in UTF-8 (RFC 2047 encoded words, and a few raw UTF-8 headers as RFC 6532 allows); flags
// \Seen, \Flagged, \Answered on fixed shares. Two search words each sit in exactly one message in a
// hundred: an ASCII one and a UTF-8 one, so `UID SEARCH TEXT` has a known answer.
// Also fixed-size messages for APPEND throughput and IDLE deliveries.
// Deliberately NOT here: writing the corpus anywhere (bench/imap-peers.ts), broken MIME (the
// benchmark measures the common path; the imaptest suite tests the odd ones).
// RFC 5322 (message format), RFC 2045–2047 (MIME, encoded words), RFC 6532 (UTF-8 headers).

/** Each word sits in the messages whose index is `offset` modulo `every`, in their text part(s). */
export const SEARCH_WORDS = {
  ascii: { word: 'zephyrquartz', every: 100, offset: 37 },
  utf8: { word: 'kühlschrank', every: 100, offset: 71 },
} as const;

export type SearchWordId = keyof typeof SEARCH_WORDS;

/** The corpus indexes holding the word, among the first `count` messages. */
export function expectedHits(which: SearchWordId, count: number): number[] {
  const { every, offset } = SEARCH_WORDS[which];
  const out: number[] = [];
  for (let i = offset; i < count; i += every) out.push(i);
  return out;
}

export interface CorpusMessage {
  readonly index: number;
  readonly raw: Buffer;
  /** IMAP system flags, in the order Maildir's info suffix wants their letters (F, R, S). */
  readonly flags: readonly ('\\Flagged' | '\\Answered' | '\\Seen')[];
  readonly internalDate: Date;
  readonly messageId: string;
}

/** mulberry32: a small seeded PRNG, enough for reproducible filler. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = (
  'the of and to in is that for it as with was on be by this are from at or an have not which ' +
  'meeting report budget project invoice schedule review draft update release server mailbox ' +
  'quarterly customer delivery shipment agenda minutes weekend holiday travel office contract ' +
  'please thanks regards tomorrow yesterday morning evening attached document spreadsheet ' +
  'question answer proposal deadline planning design feedback team support ticket network ' +
  'café naïve résumé größe straße über señor façade smörgåsbord déjà jalapeño'
).split(' ');

const NAMES = [
  'Alice Martin',
  'Bob Chen',
  'Carol Smith',
  'David Okafor',
  'Emma Johansson',
  'Frank Müller',
  'Grace Lee',
  'Henry Dubois',
] as const;
/** Display names that need UTF-8: each fifth message's sender. */
const UTF8_NAMES = ['Jürgen Weiß', '日本 太郎', 'Zoë Ångström', 'Ελένη Παπαδοπούλου', 'Søren Kierkegård'];
const UTF8_SUBJECTS = ['Grüße aus München', '会議の議事録', 'Café à Paris', 'Προσφορά', 'Smørrebrød'];

function encodedWord(s: string): string {
  return /^[\x20-\x7e]*$/.test(s) ? s : `=?UTF-8?B?${Buffer.from(s, 'utf8').toString('base64')}?=`;
}

/** Quoted-printable (RFC 2045 §6.7) for text whose lines are already short. */
function quotedPrintable(text: string): string {
  const bytes = Buffer.from(text, 'utf8');
  let out = '';
  let col = 0;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b === 0x0d && bytes[i + 1] === 0x0a) {
      out += '\r\n';
      i += 1;
      col = 0;
      continue;
    }
    const lit = (b >= 33 && b <= 126 && b !== 61) || b === 32;
    const piece = lit ? String.fromCharCode(b) : `=${b.toString(16).toUpperCase().padStart(2, '0')}`;
    if (col + piece.length > 75) {
      out += '=\r\n';
      col = 0;
    }
    out += piece;
    col += piece.length;
  }
  return out;
}

/** Lines of about 72 columns from the word list, about `bytes` long, CRLF-terminated. */
function paragraphs(rand: () => number, bytes: number, insert: readonly string[]): string {
  const lines: string[] = [];
  let total = 0;
  let line = '';
  let n = 0;
  const pending = [...insert];
  while (total < bytes) {
    let w = WORDS[Math.floor(rand() * WORDS.length)]!;
    if (pending.length > 0 && total >= bytes / 2) w = pending.shift()!;
    if (line.length + w.length + 1 > 72) {
      lines.push(line);
      total += line.length + 2;
      line = '';
      if (++n % 8 === 0) {
        lines.push('');
        total += 2;
      }
    }
    line = line === '' ? w : `${line} ${w}`;
  }
  // A word still pending (a very short message) goes at the end.
  if (pending.length > 0) line = `${line} ${pending.join(' ')}`;
  lines.push(line);
  return `${lines.join('\r\n')}\r\n`;
}

/** Base64 of pseudo-random bytes, 76 columns. */
function base64Lines(rand: () => number, bytes: number): string {
  const buf = Buffer.allocUnsafe(bytes);
  for (let i = 0; i < bytes; i += 4) {
    const v = Math.floor(rand() * 4294967296);
    buf[i] = v & 0xff;
    if (i + 1 < bytes) buf[i + 1] = (v >>> 8) & 0xff;
    if (i + 2 < bytes) buf[i + 2] = (v >>> 16) & 0xff;
    if (i + 3 < bytes) buf[i + 3] = v >>> 24;
  }
  const b64 = buf.toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 76) lines.push(b64.slice(i, i + 76));
  return `${lines.join('\r\n')}\r\n`;
}

const BASE_DATE_MS = Date.UTC(2026, 0, 1, 8, 0, 0);
const KiB = 1024;

/** Message `index` of the corpus; the same bytes for the same (index, seed). */
export function corpusMessage(index: number, seed = 1): CorpusMessage {
  const rand = prng((seed * 0x9e3779b1 + index * 0x85ebca6b) >>> 0);
  const size = Math.round(KiB * Math.pow(100, rand()));
  const kind = rand();
  const utf8 = index % 5 === 2;
  // index / 5 (not index) picks among them: index % 5 is fixed here.
  const fromName = utf8
    ? UTF8_NAMES[Math.floor(index / 5) % UTF8_NAMES.length]!
    : NAMES[Math.floor(rand() * NAMES.length)]!;
  const subjectBase =
    index % 5 === 4 ? UTF8_SUBJECTS[Math.floor(index / 5) % UTF8_SUBJECTS.length]! : 'Weekly update';
  const subject = `${subjectBase} #${index}`;
  // One message in fifty writes its UTF-8 headers raw (RFC 6532), the others as encoded words.
  const raw8 = index % 50 === 2;
  const header = (s: string): string => (raw8 ? s : encodedWord(s));
  const date = new Date(BASE_DATE_MS + index * 47 * 60_000);
  const messageId = `<${index}.${seed}@corpus.bench.test>`;
  const insert: string[] = [];
  for (const w of Object.values(SEARCH_WORDS)) if (index % w.every === w.offset) insert.push(w.word);

  const head = [
    `From: ${header(fromName)} <sender${index % 97}@example.org>`,
    'To: Bench User <user@bench.test>',
    `Subject: ${header(subject)}`,
    `Date: ${date.toUTCString().replace('GMT', '+0000')}`,
    `Message-ID: ${messageId}`,
    'MIME-Version: 1.0',
  ];
  let body: string;
  const boundary = `=_bench_${index}_${seed}`;
  if (kind < 0.55) {
    const text = paragraphs(rand, Math.max(200, size - 400), insert);
    head.push('Content-Type: text/plain; charset=UTF-8', 'Content-Transfer-Encoding: 8bit');
    body = text;
  } else if (kind < 0.85) {
    const text = paragraphs(rand, Math.max(200, (size - 800) / 2.2), insert);
    const html = `<html><body>\r\n<p>${text.replace(/\r\n\r\n/g, '</p>\r\n<p>')}</p>\r\n</body></html>\r\n`;
    head.push(`Content-Type: multipart/alternative; boundary="${boundary}"`);
    body = [
      'This is a multi-part message in MIME format.',
      `--${boundary}`,
      'Content-Type: text/plain; charset=UTF-8',
      'Content-Transfer-Encoding: 8bit',
      '',
      text,
      `--${boundary}`,
      'Content-Type: text/html; charset=UTF-8',
      'Content-Transfer-Encoding: quoted-printable',
      '',
      quotedPrintable(html),
      `--${boundary}--`,
      '',
    ].join('\r\n');
  } else {
    const text = paragraphs(rand, 300 + rand() * 1500, insert);
    const attachmentBytes = Math.max(256, Math.floor(((size - 1500) * 3) / 4));
    const pdf = rand() < 0.5;
    const filename =
      index % 5 === 3 ? 'Übersicht März.pdf' : pdf ? `report-${index}.pdf` : `photo-${index}.jpg`;
    // RFC 2231 for a UTF-8 file name, as current clients send it.
    const nameParam = /^[\x20-\x7e]*$/.test(filename)
      ? `filename="${filename}"`
      : `filename*=UTF-8''${encodeURIComponent(filename)}`;
    head.push(`Content-Type: multipart/mixed; boundary="${boundary}"`);
    body = [
      'This is a multi-part message in MIME format.',
      `--${boundary}`,
      'Content-Type: text/plain; charset=UTF-8',
      'Content-Transfer-Encoding: 8bit',
      '',
      text,
      `--${boundary}`,
      `Content-Type: ${pdf ? 'application/pdf' : 'image/jpeg'}`,
      `Content-Disposition: attachment; ${nameParam}`,
      'Content-Transfer-Encoding: base64',
      '',
      base64Lines(rand, attachmentBytes),
      `--${boundary}--`,
      '',
    ].join('\r\n');
  }
  const flags: ('\\Flagged' | '\\Answered' | '\\Seen')[] = [];
  if (index % 23 === 0) flags.push('\\Flagged');
  if (index % 31 === 0) flags.push('\\Answered');
  if (index % 10 < 7) flags.push('\\Seen');
  return {
    index,
    raw: Buffer.from(`${head.join('\r\n')}\r\n\r\n${body}`, 'utf8'),
    flags,
    internalDate: new Date(date.getTime() + 2000),
    messageId,
  };
}

/**
 * A plain-text message of exactly `bytes` bytes (at least about 300), for APPEND throughput and IDLE
 * deliveries; `tag` makes each one distinct (Message-ID and subject).
 */
export function fixedMessage(bytes: number, tag: string): Buffer {
  const head =
    `From: Bench Sender <sender@example.org>\r\nTo: user@bench.test\r\nSubject: bench ${tag}\r\n` +
    `Date: Thu, 01 Jan 2026 08:00:00 +0000\r\nMessage-ID: <${tag}@fixed.bench.test>\r\n` +
    'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n';
  const room = bytes - Buffer.byteLength(head);
  if (room < 2) throw new Error(`fixedMessage: ${bytes} bytes is too small`);
  // Lines of 70 letters and CRLF; the last one shortened to land on the exact size.
  const line = `${'abcdefghij'.repeat(7)}\r\n`;
  let full = Math.floor(room / line.length);
  const rest = room - full * line.length;
  let tail = '';
  if (rest >= 2) tail = `${'x'.repeat(rest - 2)}\r\n`;
  else if (rest === 1 && full > 0) {
    // One byte over a whole line cannot be a line of its own: the last line grows by one instead.
    full -= 1;
    tail = `${'x'.repeat(line.length - 1)}\r\n`;
  } else if (rest === 1) throw new Error(`fixedMessage: ${bytes} bytes cannot be made`);
  return Buffer.from(head + line.repeat(full) + tail, 'utf8');
}

/** IMAP date-time (RFC 9051 §9 `date-time`), e.g. "01-Jan-2026 08:00:02 +0000". */
export function imapDateTime(d: Date): string {
  const mon = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'][
    d.getUTCMonth()
  ]!;
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${p(d.getUTCDate())}-${mon}-${d.getUTCFullYear()} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}
