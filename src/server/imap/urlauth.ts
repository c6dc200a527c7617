// URLAUTH (RFC 4467) with URLAUTH=BINARY (RFC 5524): GENURLAUTH signs a URL rump with the folder's
// mailbox access key, RESETKEY forgets keys, URLFETCH checks a URL's token and access and sends the
// octets it names, with RFC 5524's BODYPARTSTRUCTURE, BODY and BINARY parameters.
// Choices where the RFCs leave one: the one mechanism is INTERNAL, an HMAC-SHA256 of the rump under a
// 256-bit key kept in the store (RFC 4467 §7 asks for at least 128 bits), its token 64 hex digits; keys
// are made per folder by the first GENURLAUTH; a URL fails (NIL, never a failed command) when it is
// not an absolute URLAUTH URL, has expired, names a folder without a key, has a wrong token, or its
// access does not admit this user: "user+x" only x, "authuser" and "anonymous" any logged-in user
// (IMAP has no anonymous session here), "submit+x" nobody over IMAP (it is for BURL on submission);
// a URL's owner is any user of this server (urlauth2: another user reads it), its host is not checked.
// After BINARY decoding, BODYPARTSTRUCTURE describes the octets sent (encoding 7bit, 8bit or binary,
// their size, 0 lines), as Dovecot does; without BINARY it describes the part as stored.
// BURL (RFC 4468) on submission reads "submit+user" URLs through burlContent below.
// Deliberately NOT here: URLMECH at SELECT, mechanisms other than INTERNAL, the SMTP side of BURL.

import { createHmac, timingSafeEqual } from 'node:crypto';
import { assertNever } from '../../core/assert-never.ts';
import type { CommandOf } from './context.ts';
import {
  Refusals,
  bad,
  completionOf,
  mailboxArg,
  no,
  ok,
  wire,
  type Completion,
  type ImapContext,
} from './context.ts';
import { accessNames, parseImapUrl, urlOwner, type ImapUrl } from '../../protocol/imap/imap-url.ts';
import { formatAstring, formatString } from '../../protocol/imap/format.ts';
import { renderBodyStructure } from '../../protocol/mime/bodystructure.ts';
import { MailboxError, normalizeUser } from '../../store/mailbox-store.ts';
import { locateUrl, urlBinary, urlData, type UrlData, type UrlTarget } from './url-data.ts';

export const URLAUTH_MECHANISM = 'INTERNAL';

/** The INTERNAL token of a rump under a key: lower-case hex of HMAC-SHA256. */
export function urlauthToken(key: Uint8Array, rump: string): string {
  return createHmac('sha256', key).update(rump, 'utf8').digest('hex');
}

export async function genurlauth(ctx: ImapContext, cmd: CommandOf<'genurlauth'>): Promise<Completion> {
  const out: string[] = [];
  for (const { rump, mechanism } of cmd.urls) {
    if (mechanism !== URLAUTH_MECHANISM) return no(`Unknown URLAUTH mechanism ${mechanism}`);
    const url = parseImapUrl(rump);
    if (url === null || url.access === null || url.verifier !== null || url.rump === null) {
      return bad('Not a URLAUTH rump (imap://user@host/mailbox/;uid=n;urlauth=access)');
    }
    const owner = urlOwner(url);
    if (owner === null || normalizeUser(owner) !== normalizeUser(ctx.user)) {
      return no("A URL may only be made for the user's own mail");
    }
    let key: Uint8Array | null;
    try {
      key = await ctx.store.accessKey(ctx.user, url.mailbox, true);
    } catch (err) {
      if (err instanceof MailboxError) return completionOf(err);
      throw err;
    }
    if (key === null) return no('No access key');
    out.push(`${url.rump}:${URLAUTH_MECHANISM.toLowerCase()}:${urlauthToken(key, url.rump)}`);
  }
  ctx.write(`* GENURLAUTH ${out.map((u) => formatString(u, wire(ctx))).join(' ')}\r\n`);
  return ok('GENURLAUTH completed');
}

export async function resetkey(ctx: ImapContext, cmd: CommandOf<'resetkey'>): Promise<Completion> {
  const unknown = cmd.mechanisms.find((m) => m !== URLAUTH_MECHANISM);
  if (unknown !== undefined) return no(`Unknown URLAUTH mechanism ${unknown}`);
  let folder: string | null = null;
  if (cmd.mailbox !== null) {
    folder = mailboxArg(ctx, cmd.mailbox);
    if (folder === null) return Refusals.badName;
  }
  try {
    await ctx.store.resetAccessKeys(ctx.user, folder);
  } catch (err) {
    if (err instanceof MailboxError) return completionOf(err);
    throw err;
  }
  ctx.log.event('imap.resetkey', { folder });
  return ok('RESETKEY completed');
}

/**
 * BURL (RFC 4468 §4) on submission: the octets a "submit+user" URLAUTH URL names, for that user, held
 * in memory (a chunk is at most the message size limit); null when it names nothing or is too large.
 */
export async function burlContent(
  ctx: Pick<ImapContext, 'store' | 'user' | 'nowMs'>,
  text: string,
  maxBytes: number,
): Promise<Uint8Array | null> {
  const target = await authorizedTarget(ctx, text, 'submit');
  if (target === null) return null;
  const data = await urlData(ctx.store, target);
  if (data === null || data.sizeBytes > maxBytes) return null;
  const chunks: Uint8Array[] = [];
  for await (const chunk of data.content()) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/**
 * The message a URLAUTH URL names, when its token and access let this user read it; else null. `as`:
 * the IMAP server reads "user+", "authuser" and "anonymous" URLs, the submission server (BURL) only
 * "submit+" ones of its authenticated user.
 */
export async function authorizedTarget(
  ctx: Pick<ImapContext, 'store' | 'user' | 'nowMs'>,
  text: string,
  as: 'imap' | 'submit' = 'imap',
): Promise<UrlTarget | null> {
  const url = parseImapUrl(text);
  if (url === null || url.rump === null || url.verifier === null || url.access === null) return null;
  if (url.verifier.mechanism !== URLAUTH_MECHANISM) return null;
  if (url.expireMs !== null && url.expireMs <= ctx.nowMs()) return null;
  if (!admits(url, ctx.user, as)) return null;
  const owner = urlOwner(url);
  if (owner === null) return null;
  let key: Uint8Array | null;
  try {
    key = await ctx.store.accessKey(owner, url.mailbox, false);
  } catch (err) {
    if (err instanceof MailboxError) return null;
    throw err;
  }
  if (key === null) return null;
  const want = Buffer.from(urlauthToken(key, url.rump), 'utf8');
  const got = Buffer.from(url.verifier.token.toLowerCase(), 'utf8');
  if (want.length !== got.length || !timingSafeEqual(want, got)) return null;
  return locateUrl(ctx.store, owner, url);
}

function admits(url: ImapUrl, user: string, as: 'imap' | 'submit'): boolean {
  const access = url.access;
  if (access === null) return false;
  switch (access.kind) {
    case 'user':
      return as === 'imap' && accessNames(access.user, user, url.host);
    case 'authuser':
    case 'anonymous':
      return as === 'imap';
    case 'submit':
      return as === 'submit' && accessNames(access.user, user, url.host);
    default:
      return assertNever(access);
  }
}

export async function urlfetch(ctx: ImapContext, cmd: CommandOf<'urlfetch'>): Promise<Completion> {
  const opts = wire(ctx);
  await ctx.send('* URLFETCH');
  for (const req of cmd.urls) {
    await ctx.send(` ${formatAstring(req.url, opts)} `);
    const target = await authorizedTarget(ctx, req.url);
    if (target === null) {
      await ctx.send('NIL');
      continue;
    }
    if (req.params === null || req.params.length === 0) {
      const data = await urlData(ctx.store, target);
      await (data === null ? ctx.send('NIL') : sendLiteral(ctx, data, false));
      continue;
    }
    const binary = req.params.includes('BINARY') ? await urlBinary(ctx.store, target) : null;
    const items: (() => Promise<void>)[] = [];
    if (req.params.includes('BODYPARTSTRUCTURE')) {
      let part = target.part;
      if (binary !== null && binary !== 'unknown-cte' && binary.decoded !== null) {
        const d = binary.decoded;
        const encoding = d.includes(0) ? 'binary' : d.some((b) => b > 0x7f) ? '8bit' : '7bit';
        part = { ...part, encoding, bodyStart: 0, bodyEnd: d.length, lines: 0 };
      }
      const structure = renderBodyStructure(part, true, opts);
      items.push(() => ctx.send(`(BODYPARTSTRUCTURE ${structure})`));
    }
    if (req.params.includes('BODY')) {
      const data = await urlData(ctx.store, target);
      items.push(async () => {
        await ctx.send('(BODY ');
        await (data === null ? ctx.send('NIL') : sendLiteral(ctx, data, false));
        await ctx.send(')');
      });
    }
    if (req.params.includes('BINARY')) {
      items.push(async () => {
        await ctx.send('(BINARY ');
        if (binary === null || binary === 'unknown-cte') await ctx.send('NIL');
        else await sendLiteral(ctx, binary.data, binary.decoded?.includes(0) ?? false);
        await ctx.send(')');
      });
    }
    for (let i = 0; i < items.length; i++) {
      if (i > 0) await ctx.send(' ');
      await items[i]!();
    }
  }
  await ctx.send('\r\n');
  return ok('URLFETCH completed');
}

/** `{n}` (or literal8 `~{n}`) and the octets, streamed; a short read cannot be answered but by closing. */
async function sendLiteral(ctx: ImapContext, data: UrlData, literal8: boolean): Promise<void> {
  await ctx.send(`${literal8 ? '~' : ''}{${data.sizeBytes}}\r\n`);
  let sent = 0;
  for await (const chunk of data.content()) {
    sent += chunk.length;
    await ctx.send(chunk);
  }
  if (sent !== data.sizeBytes) throw new Error(`URLFETCH: read ${sent} of ${data.sizeBytes} octets`);
}
