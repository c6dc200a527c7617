// IMAP BODY and BODYSTRUCTURE (RFC 9051 §7.5.2 and §9 "body"; RFC 3501 the same) from a stored
// MimePart tree. BODYSTRUCTURE adds the extension data: md5, disposition, language, location for a
// single part; parameters, disposition, language, location for a multipart.
// Choices where the RFC leaves one, matching Dovecot: a multipart with no parts gets one empty
// text/plain part (the grammar needs 1*body); a message/rfc822 whose inside was not parsed (encoded,
// too deep) is sent as a basic part; an RFC 2231 value that is not plain ASCII is sent as `name*` in
// UTF-8 percent-encoding for a client without UTF-8, and as itself in a UTF-8 string otherwise.
// Strings go through the one IMAP string writer (imap/format.ts formatString).
// PURE and total.

import type { MimeParam } from './params.ts';
import type { MimePart } from './structure.ts';
import { renderEnvelope } from './envelope.ts';
import { formatNstring, formatString, type WireOptions } from '../imap/format.ts';

function needsExtended(value: string): boolean {
  return !/^[\x20-\x7e]*$/.test(value);
}

function percentEncode(value: string): string {
  let out = "utf-8''";
  for (const b of new TextEncoder().encode(value)) {
    out += /[A-Za-z0-9!#$&+\-.^_`|~]/.test(String.fromCharCode(b))
      ? String.fromCharCode(b)
      : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function renderParams(params: readonly MimeParam[], opts: WireOptions): string {
  if (params.length === 0) return 'NIL';
  const items = params.map((p) =>
    !opts.utf8 && needsExtended(p.value)
      ? `${formatString(`${p.name}*`, opts)} ${formatString(percentEncode(p.value), opts)}`
      : `${formatString(p.name, opts)} ${formatString(p.value, opts)}`,
  );
  return `(${items.join(' ')})`;
}

function renderExtension(part: MimePart, opts: WireOptions): string {
  const d = part.disposition;
  const dsp = d ? `(${formatString(d.type, opts)} ${renderParams(d.params, opts)})` : 'NIL';
  const lang =
    part.language === null
      ? 'NIL'
      : part.language.length === 1
        ? formatString(part.language[0]!, opts)
        : `(${part.language.map((l) => formatString(l, opts)).join(' ')})`;
  return `${dsp} ${lang} ${formatNstring(part.location, opts)}`;
}

const EMPTY_TEXT = '("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0)';

/** BODYSTRUCTURE (`extended`) or BODY of `part`. */
export function renderBodyStructure(
  part: MimePart,
  extended: boolean,
  opts: WireOptions = { utf8: true },
): string {
  if (part.type === 'multipart') {
    const children =
      part.parts.length === 0
        ? EMPTY_TEXT
        : part.parts.map((p) => renderBodyStructure(p, extended, opts)).join('');
    const ext = extended ? ` ${renderParams(part.params, opts)} ${renderExtension(part, opts)}` : '';
    return `(${children} ${formatString(part.subtype, opts)}${ext})`;
  }
  const fields = [
    formatString(part.type, opts),
    formatString(part.subtype, opts),
    renderParams(part.params, opts),
    formatNstring(part.id, opts),
    formatNstring(part.description, opts),
    formatString(part.encoding, opts),
    String(part.bodyEnd - part.bodyStart),
  ];
  if (part.type === 'message' && part.message !== null && part.message.envelope !== null) {
    fields.push(renderEnvelope(part.message.envelope, opts));
    fields.push(renderBodyStructure(part.message, extended, opts));
    fields.push(String(part.lines));
  } else if (part.type === 'text') fields.push(String(part.lines));
  if (extended) fields.push(formatNstring(part.md5, opts), renderExtension(part, opts));
  return `(${fields.join(' ')})`;
}
