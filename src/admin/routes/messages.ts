// One message shown three ways, for the queue and for mailboxes alike: its view (headers, text,
// attachments, Authentication-Results; ops/message-view.ts), its HTML body for the sandboxed frame, and
// one part as a download.
// SECURITY: message HTML is hostile. It is only ever served alone, as the document of an iframe the page
// gives an empty `sandbox` attribute, and with its own CSP: `sandbox` (no scripts, no forms, an opaque
// origin: no cookies, no API), `default-src 'none'` (no remote images, fonts, frames or beacons: nothing
// leaves for the sender to learn the message was read), inline styles and data: images only. Parts are
// downloads (Content-Disposition: attachment, application/octet-stream): never rendered here.

import type { FastifyReply } from 'fastify';
import { messageHtml, messagePart, MAX_VIEW_BYTES, viewMessage } from '../../ops/message-view.ts';
import { HttpProblem } from '../problem.ts';

export const MESSAGE_HTML_CSP =
  "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; frame-ancestors 'self'";

/** The bytes of a message, refusing one larger than the viewer takes apart. */
export async function messageBytes(body: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const c of body) {
    size += c.byteLength;
    if (size > MAX_VIEW_BYTES)
      throw new HttpProblem(
        413,
        'too-large',
        `the message is larger than ${MAX_VIEW_BYTES} bytes: download its source instead`,
      );
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

export function sendView(bytes: Uint8Array): ReturnType<typeof viewMessage> {
  return viewMessage(bytes);
}

export function sendHtml(reply: FastifyReply, bytes: Uint8Array, part: string): FastifyReply {
  const html = messageHtml(bytes, part);
  if (html === null) throw new HttpProblem(404, 'not-found', `no HTML part ${part}`);
  return reply
    .header('Content-Security-Policy', MESSAGE_HTML_CSP)
    .header('X-Frame-Options', 'SAMEORIGIN')
    .header('Cache-Control', 'no-store')
    .type('text/html; charset=utf-8')
    .send(html);
}

export function sendPart(reply: FastifyReply, bytes: Uint8Array, part: string): FastifyReply {
  const p = messagePart(bytes, part);
  if (p === null) throw new HttpProblem(404, 'not-found', `no part ${part}`);
  const name = (p.filename ?? `part-${part}`).replace(/[\r\n"\\]/g, '_');
  return reply
    .header(
      'Content-Disposition',
      `attachment; filename="${name.replace(/[^\x20-\x7e]/g, '_')}"; filename*=UTF-8''${encodeURIComponent(name)}`,
    )
    .type('application/octet-stream')
    .send(Buffer.from(p.body));
}

/** The raw source, as a download of type message/rfc822 (text a browser shows, never renders as HTML). */
export function sendSource(reply: FastifyReply, bytes: Uint8Array, name: string): FastifyReply {
  return reply
    .header('Content-Disposition', `inline; filename="${name.replace(/[^A-Za-z0-9._-]/g, '_')}.eml"`)
    .type('text/plain; charset=utf-8')
    .send(Buffer.from(bytes));
}

export const PART_PARAMS = {
  type: 'object',
  required: ['part'],
  properties: { part: { type: 'string', pattern: '^[0-9]+(\\.[0-9]+)*$', maxLength: 64 } },
} as const;
