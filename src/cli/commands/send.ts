// `tern send`: a small SMTP client for people testing a setup (in the spirit of swaks), built on the
// same client code the delivery worker uses (src/delivery/smtp-client.ts). It writes a short text
// message (From, To, Subject, Date, Message-ID, MIME headers, then the body file or a default line),
// sends it to one server and prints what happened: the banner, TLS, each recipient's reply.
// Deliberately NOT here: MX lookup (name the server with --server; without it, this Tern's own smtp
// listener is used), attachments, or raw message files.

import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import type { OutboundTlsPolicy } from '../../config/config.ts';
import { parseMailbox } from '../../core/address.ts';
import { formatRfc5322Date } from '../../core/date.ts';
import type { EnvelopeRecipient } from '../../core/envelope.ts';
import type {
  ConnectOptions,
  OutgoingMessage,
  RecipientResult,
  SmtpClientSession,
} from '../../delivery/smtp-client.ts';
import { connectSmtp, formatRemoteReply, timeoutsFromConfig } from '../../delivery/smtp-client.ts';
import type { Command, CommandContext } from '../command.ts';
import { usageLine } from '../command.ts';
import { CliError, readHiddenLine, readPasswordFromStdin, UsageError, writeLine } from '../io.ts';

type TlsChoice = OutboundTlsPolicy | 'implicit';
const TLS_CHOICES: readonly TlsChoice[] = ['none', 'may', 'encrypt', 'verify', 'implicit'];

/** "host:port", "[v6]:port", "host" (port 25), or a bare IPv6 address (port 25). */
export function parseServer(text: string): { host: string; port: number } | null {
  let host: string;
  let portText: string | undefined;
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (bracket) {
    host = bracket[1]!;
    portText = bracket[2];
  } else if (isIP(text) === 6) {
    host = text;
  } else {
    const m = /^([^:\s]+)(?::(\d+))?$/.exec(text);
    if (!m) return null;
    host = m[1]!;
    portText = m[2];
  }
  const port = portText === undefined ? 25 : Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) return null;
  return { host, port };
}

/** RFC 2047 encoded-word for a non-ASCII Subject; ASCII stays as it is. */
function encodeSubject(subject: string): string {
  if (!/[^\x20-\x7e]/.test(subject)) return subject;
  return `=?UTF-8?B?${Buffer.from(subject, 'utf8').toString('base64')}?=`;
}

/** True when the file holds any byte above 0x7f (then the body is 8-bit, RFC 6152). */
async function fileIs8bit(path: string): Promise<boolean> {
  for await (const chunk of createReadStream(path)) {
    if ((chunk as Buffer).some((b) => b > 0x7f)) return true;
  }
  return false;
}

function checkAddress(value: string, option: string, allowNull: boolean): string {
  if (allowNull && value === '') return '';
  if (parseMailbox(value, true) === null) throw new UsageError(`--${option}: not an address: ${value}`);
  return value;
}

async function password(ctx: CommandContext, fromStdin: boolean): Promise<string> {
  if (fromStdin) return readPasswordFromStdin(ctx.io.stdin);
  if (ctx.io.stdin.isTTY === true) return readHiddenLine(ctx.io, 'Password: ');
  throw new UsageError('--auth needs a password: give it on standard input with --password-stdin');
}

function describeResult(r: RecipientResult): string {
  const reply = r.reply ? formatRemoteReply(r.reply) : `${r.status} ${r.reason}`;
  const what = r.verdict === 'delivered' ? 'accepted' : `refused (${r.verdict})`;
  return `${r.address}: ${what}: ${reply}`;
}

/**
 * `send --json`: one object on stdout for scripts, whatever the server answered once connected (a
 * connection that fails is one line on stderr, like every other failure): exit 0 only when sent to all.
 */
async function sendReportingJson(
  ctx: CommandContext,
  session: SmtpClientSession,
  where: string,
  authUser: string | null,
  message: OutgoingMessage,
): Promise<number> {
  const result = await session.send(message);
  const sent = result.kind === 'sent' && result.recipients.every((r) => r.verdict === 'delivered');
  const report = {
    server: where,
    banner: session.remoteBanner,
    tls:
      session.tls === null
        ? null
        : {
            version: session.tls.version,
            cipher: session.tls.cipher,
            verified: session.tls.verified,
            verifyError: session.tls.verifyError ?? null,
          },
    authenticated: session.authenticated ? authUser : null,
    mechanism: session.authMechanism,
    recipients: result.recipients.map((r) => ({
      address: r.address,
      accepted: r.verdict === 'delivered',
      reply: r.reply ? formatRemoteReply(r.reply) : `${r.status} ${r.reason}`,
    })),
    sent,
    reply: result.kind === 'sent' ? formatRemoteReply(result.dataReply) : null,
    error:
      result.kind === 'sent'
        ? null
        : `${result.reason}${result.reply ? ` (${formatRemoteReply(result.reply)})` : ''} [${result.status}]`,
  };
  await writeLine(ctx.io.stdout, JSON.stringify(report, null, 2));
  return sent ? 0 : 1;
}

export const send: Command = {
  name: 'send',
  args:
    '--from A --to B[,C...] [--server HOST:PORT] [--tls none|may|encrypt|verify|implicit] [--ca FILE] ' +
    '[--auth USER [--password-stdin]] [--body FILE] [--subject S] [--helo NAME] [--json]',
  summary:
    'send a test message to one SMTP server (default: this Tern) and show each reply; ' +
    'exit 0 when every recipient was accepted',
  flags: ['password-stdin', 'json'],
  options: ['from', 'to', 'server', 'tls', 'ca', 'auth', 'body', 'subject', 'helo'],
  minPositionals: 0,
  maxPositionals: 0,
  async run(ctx, args) {
    const usage = usageLine(send);
    const opt = (name: string): string | undefined => args.options.get(name);
    const fromText = opt('from');
    const toText = opt('to');
    if (fromText === undefined) throw new UsageError('missing --from', usage);
    if (toText === undefined) throw new UsageError('missing --to', usage);
    const from = checkAddress(fromText, 'from', true);
    const to = toText
      .split(',')
      .map((a) => a.trim())
      .filter((a) => a !== '')
      .map((a) => checkAddress(a, 'to', false));
    if (to.length === 0) throw new UsageError('--to: no address', usage);
    const tlsChoice = (opt('tls') ?? 'may') as TlsChoice;
    if (!TLS_CHOICES.includes(tlsChoice)) {
      throw new UsageError(`--tls must be one of ${TLS_CHOICES.join(', ')}`, usage);
    }
    if (args.flags.has('password-stdin') && opt('auth') === undefined) {
      throw new UsageError('--password-stdin needs --auth USER', usage);
    }

    const config = ctx.config();
    let server: { host: string; port: number } | null;
    const serverText = opt('server');
    if (serverText !== undefined) {
      server = parseServer(serverText);
      if (server === null) throw new UsageError(`--server: expected HOST:PORT, got ${serverText}`, usage);
    } else {
      const listener = config.listeners.find((l) => l.service === 'smtp');
      if (!listener) throw new UsageError('no --server given and no smtp listener configured', usage);
      const wildcard = listener.host === '0.0.0.0' ? '127.0.0.1' : listener.host === '::' ? '::1' : null;
      server = { host: wildcard ?? listener.host, port: listener.port };
    }

    const caPath = opt('ca');
    let ca: string | null = null;
    if (caPath !== undefined) {
      const handle = await open(resolve(ctx.io.cwd, caPath)).catch((err: Error) => {
        throw new CliError(`--ca: cannot read ${caPath}: ${err.message}`);
      });
      try {
        ca = await handle.readFile('utf8');
      } finally {
        await handle.close();
      }
    }
    const authUser = opt('auth');
    const auth =
      authUser === undefined
        ? null
        : { username: authUser, password: await password(ctx, args.flags.has('password-stdin')) };

    const bodyPath = opt('body') === undefined ? null : resolve(ctx.io.cwd, opt('body')!);
    let bodyBytes = 0;
    let eightBit = false;
    if (bodyPath !== null) {
      try {
        bodyBytes = (await stat(bodyPath)).size;
      } catch (err) {
        throw new CliError(`--body: cannot read ${opt('body')!}: ${(err as Error).message}`);
      }
      eightBit = await fileIs8bit(bodyPath);
    }
    const helo = opt('helo') ?? config.hostname;
    const subject = opt('subject') ?? 'Test message from tern send';
    eightBit ||= /[^\x00-\x7f]/.test(from + to.join(''));
    const headers = [
      `From: <${from}>`,
      `To: ${to.map((a) => `<${a}>`).join(', ')}`,
      `Subject: ${encodeSubject(subject)}`,
      `Date: ${formatRfc5322Date(ctx.clock.nowMs())}`,
      `Message-ID: <${randomBytes(12).toString('hex')}@${helo}>`,
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      `Content-Transfer-Encoding: ${eightBit ? '8bit' : '7bit'}`,
      'X-Mailer: tern send',
      '',
      '',
    ].join('\r\n');
    const head = Buffer.from(headers, 'utf8');
    const defaultBody = Buffer.from('This is a test message sent by tern send.\r\n');

    const recipients: EnvelopeRecipient[] = to.map((address) => ({ address, notify: null, orcpt: null }));
    const connectOptions: ConnectOptions = {
      host: server.host,
      address: server.host,
      port: server.port,
      helo,
      tls: tlsChoice === 'implicit' ? 'encrypt' : tlsChoice,
      implicitTls: tlsChoice === 'implicit',
      ca,
      timeouts: timeoutsFromConfig(config.outbound),
      auth,
      log: ctx.logger(),
    };
    const { stdout, stderr } = ctx.io;
    const where = `${server.host.includes(':') ? `[${server.host}]` : server.host}:${server.port}`;
    const outgoing = (): OutgoingMessage => ({
      envelope: {
        sender: from,
        body: eightBit ? '8BITMIME' : '7BIT',
        smtputf8: /[^\x00-\x7f]/.test(from + to.join('')),
        ret: null,
        envid: null,
        recipients,
      },
      recipients: to,
      sizeBytes: head.length + (bodyPath === null ? defaultBody.length : bodyBytes),
      body: async function* () {
        yield head;
        if (bodyPath === null) yield defaultBody;
        else for await (const chunk of createReadStream(bodyPath)) yield chunk as Buffer;
      },
    });
    const connected = await connectSmtp(connectOptions);
    if (connected.kind === 'failed') {
      const f = connected.failure;
      if (f.banner !== null) await writeLine(stdout, `connected to ${where}: ${f.banner}`);
      const reply = f.reply ? ` (${formatRemoteReply(f.reply)})` : '';
      const hint = f.retryWithoutTls ? '; try --tls none' : '';
      throw new CliError(`${where}: ${f.reason}${reply} [${f.status}]${hint}`);
    }
    const session = connected.session;
    try {
      if (ctx.verbose && session.authMechanism !== null) {
        await writeLine(stderr, `tern: authenticated as ${authUser ?? ''} with ${session.authMechanism}`);
      }
      if (args.flags.has('json'))
        return await sendReportingJson(ctx, session, where, authUser ?? null, outgoing());
      await writeLine(stdout, `connected to ${where}: ${session.remoteBanner}`);
      if (session.tls) {
        const verified = session.tls.verified
          ? 'certificate verified'
          : `certificate not verified: ${session.tls.verifyError ?? 'unknown'}`;
        await writeLine(stdout, `TLS: ${session.tls.version} ${session.tls.cipher} (${verified})`);
      } else {
        await writeLine(stdout, 'TLS: none');
      }
      if (session.authenticated) await writeLine(stdout, `authenticated as ${authUser ?? ''}`);
      const result = await session.send(outgoing());
      for (const r of result.recipients) await writeLine(stdout, describeResult(r));
      if (result.kind === 'sent') {
        await writeLine(stdout, `message: ${formatRemoteReply(result.dataReply)}`);
      } else {
        const reply = result.reply ? ` (${formatRemoteReply(result.reply)})` : '';
        await writeLine(stderr, `tern: not sent: ${result.reason}${reply} [${result.status}]`);
      }
      return result.kind === 'sent' && result.recipients.every((r) => r.verdict === 'delivered') ? 0 : 1;
    } finally {
      await session.quit();
    }
  },
};
