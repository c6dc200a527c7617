// The message source of the imaptest runner (imaptest src/mailbox-source-mbox.c): the messages of a
// script's `<name>.mbox` (or the suite's `default.mbox`), each with the INTERNALDATE of its `From ` line,
// handed out in order and wrapping around at the end, with every line ending in CRLF. The messages are
// the bytes between two `From ` separator lines, the blank line before the next separator included, and
// `>From ` quoting is left alone, as imaptest does.
//
// Deliberately NOT here: writing mbox files, or any mbox variant other than the plain one the suite uses.

/** One message: its bytes (a byte string, see imap-args.ts) and its IMAP date-time for APPEND. */
export interface MboxMessage {
  readonly body: string;
  readonly internalDate: string;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

// `From sender  Fri Feb 22 17:06:23 2008` with an optional numeric zone; without one the time is UTC.
const FROM_LINE =
  /^From \S+\s+[A-Za-z]{3} +([A-Za-z]{3}) +([0-9]{1,2}) ([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))? ([0-9]{4})(?: ([+-][0-9]{4}))?/;

/** The IMAP date-time (RFC 9051 date-time) of a `From ` line, or undefined if it is not a separator. */
export function fromLineDate(line: string): string | undefined {
  const m = FROM_LINE.exec(line);
  if (m === null) return undefined;
  const month = MONTHS.findIndex((x) => x.toLowerCase() === m[1]!.toLowerCase());
  if (month < 0) return undefined;
  const two = (s: string | undefined): string => (s ?? '0').padStart(2, '0');
  return `${two(m[2])}-${MONTHS[month]}-${m[6]} ${two(m[3])}:${two(m[4])}:${two(m[5])} ${m[7] ?? '+0000'}`;
}

/** Splits an mbox (a byte string) into its messages. */
export function parseMbox(text: string): MboxMessage[] {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  const messages: MboxMessage[] = [];
  let date: string | undefined;
  let body: string[] = [];
  for (const raw of lines) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    const next = line.startsWith('From ') ? fromLineDate(line) : undefined;
    if (next !== undefined && (date === undefined || body.length > 0)) {
      if (date !== undefined)
        messages.push({ body: body.map((l) => l + '\r\n').join(''), internalDate: date });
      date = next;
      body = [];
      continue;
    }
    if (date === undefined) throw new Error('Not a valid mbox file: no From line at the start');
    body.push(line);
  }
  if (date !== undefined) {
    if (body.length === 0) throw new Error('mbox file ends with From-line');
    messages.push({ body: body.map((l) => l + '\r\n').join(''), internalDate: date });
  }
  if (messages.length === 0) throw new Error('Empty mbox file');
  return messages;
}

/** The messages handed out one after another, shared by the set-up and the script's bare APPENDs. */
export class MboxSource {
  readonly #messages: MboxMessage[];
  #next = 0;

  constructor(messages: MboxMessage[]) {
    this.#messages = messages;
  }

  /** True once every message was handed out (the point where `messages: all` stops). */
  get eof(): boolean {
    return this.#next >= this.#messages.length;
  }

  next(): MboxMessage {
    if (this.#next >= this.#messages.length) this.#next = 0;
    return this.#messages[this.#next++]!;
  }
}
