// The header block as a list of fields, and the edits filters ask for (policy/filters: milter
// SMFIR_INSHEADER/CHGHEADER, rspamd's milter headers, a rewritten Subject:). Fields are kept as byte
// strings (one char per octet, "latin1") so that every field no edit touches is written back exactly;
// new values are UTF-8 (RFC 6532).
// Deliberately NOT here: which edits to make (the filters), writing the message (server/message-intake.ts).

import { headerEnd } from './smtp/header-capture.ts';

/** A field as filters see it: name, unfolded value, and the value as written (folds kept). */
export interface EditableField {
  readonly name: string;
  /** Unfolded, trimmed, UTF-8 decoded. */
  readonly value: string;
  /** After the colon exactly as written (leading space and folding CRLFs kept, no final CRLF), UTF-8 decoded. */
  readonly raw: string;
}

export type FieldEdit =
  | { readonly op: 'insert'; readonly index: number; readonly name: string; readonly value: string }
  | {
      readonly op: 'change';
      readonly name: string;
      readonly occurrence: number;
      readonly value: string | null;
    };

const utf8 = new TextDecoder('utf-8');

function decode(byteString: string): string {
  return utf8.decode(Buffer.from(byteString, 'latin1'));
}

/**
 * Split the header block at the start of `bytes` into raw fields (byte strings, CRLF-terminated);
 * `bodyOffset` is where the body starts (after the empty line), or bytes.length when there is none.
 */
export function splitFields(bytes: Uint8Array): {
  readonly fields: string[];
  readonly bodyOffset: number;
  /** The empty line that ends the header block is among the bytes. */
  readonly complete: boolean;
} {
  const end = headerEnd(bytes);
  const sectionEnd = end < 0 ? bytes.length : end - 2;
  const section = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1', 0, sectionEnd);
  const fields: string[] = [];
  let current = '';
  for (const line of section.split(/(?<=\r\n)/)) {
    if ((line.startsWith(' ') || line.startsWith('\t')) && current !== '') current += line;
    else {
      if (current !== '') fields.push(current);
      current = line;
    }
  }
  if (current !== '') fields.push(current.endsWith('\r\n') ? current : `${current}\r\n`);
  return { fields, bodyOffset: end < 0 ? bytes.length : end, complete: end >= 0 };
}

/** A raw field as filters see it; null for a line that is not a field. */
export function fieldOf(raw: string): EditableField | null {
  const colon = raw.indexOf(':');
  if (colon <= 0) return null;
  const name = raw.slice(0, colon).trimEnd();
  if (!/^[\x21-\x39\x3b-\x7e]+$/.test(name)) return null;
  const written = raw.slice(colon + 1).replace(/\r\n$/, '');
  return {
    name,
    value: decode(written.replace(/\r\n(?=[ \t])/g, '')).trim(),
    raw: decode(written),
  };
}

/** A new field's bytes (UTF-8), CRLF-terminated; CR and LF in the value become folds or go. */
export function formatField(name: string, value: string): string {
  // Folds (a line break before white space) stay folds; any other CR or LF would start a new field.
  const clean = value.replace(/\r?\n(?=[ \t])/g, '\r\n').replace(/\r\n(?![ \t])|\r(?!\n)|(?<!\r)\n/g, ' ');
  return Buffer.from(`${name}: ${clean}\r\n`, 'utf8').toString('latin1');
}

/** Apply inserts and changes in order (Sendmail's semantics: a change to a missing occurrence adds). */
export function applyFieldEdits(fields: readonly string[], edits: readonly FieldEdit[]): string[] {
  const out = [...fields];
  for (const e of edits) {
    if (e.op === 'insert') {
      out.splice(Math.max(0, Math.min(e.index, out.length)), 0, formatField(e.name, e.value));
      continue;
    }
    const lower = e.name.toLowerCase();
    let seen = 0;
    const at = out.findIndex(
      (f) => fieldOf(f)?.name.toLowerCase() === lower && ++seen === Math.max(1, e.occurrence),
    );
    if (at < 0) {
      if (e.value !== null) out.push(formatField(e.name, e.value));
    } else if (e.value === null) out.splice(at, 1);
    else out[at] = formatField(fieldOf(out[at]!)?.name ?? e.name, e.value);
  }
  return out;
}
