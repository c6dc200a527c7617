// What the mail-authentication end-to-end tests (test/e2e/authchecks-*.test.ts) share: a Tern child
// process whose only resolver is the test DNS server and whose inbound checks also run for loopback
// clients; one SMTP transaction over a real socket from a chosen local address (127.0.0.1 or 127.0.0.2,
// so that skip_networks can be exercised), replies read per RFC 5321 §4.2.1; the Authentication-Results
// fields of a stored message, parsed (RFC 8601 §2.2) by code that is not Tern's; the Junk mailbox read
// through the store API; and python3-dkim (dkimpy) found the way test/conformance/dkim-interop.test.ts
// finds it, to sign and verify messages with an implementation that is not Tern's.
// Deliberately NOT here: assertions about Tern's behaviour (the authchecks-*.test.ts files make those).

import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import type { Socket } from 'node:net';
import { createTransport } from 'nodemailer';
import { loadConfig } from '../../src/config/load.ts';
import { systemClock } from '../../src/core/ports.ts';
import { openStore } from '../../src/main.ts';
import type { MailboxStore, MessageSummary } from '../../src/store/mailbox-store.ts';
import type { DnsServer, Zones } from '../support/dns-server.ts';
import { startDnsServer } from '../support/dns-server.ts';
import type { Tern, TernOptions } from './harness.ts';
import { startTern, waitFor } from './harness.ts';

/** Our authserv-id when [checks] authserv_id is not set: the harness's hostname. */
export const HOSTNAME = 'mx.example.test';

// ---------------------------------------------------------------------------------------------------
// Tern with the test DNS and inbound checks for loopback clients

type TomlValue = string | number | boolean | readonly string[];

export interface AuthTernOptions {
  /** [checks] keys over { skip_networks: [] } (the default skips loopback, i.e. every test client). */
  readonly checks?: Readonly<Record<string, TomlValue>>;
  /** Leave [checks] out entirely: Tern's defaults (loopback skipped). */
  readonly defaultChecks?: boolean;
  /** Other tables (e.g. outbound, submission) merged with the ones made here. */
  readonly tables?: Readonly<Record<string, Readonly<Record<string, TomlValue>>>>;
  readonly users?: TernOptions['users'];
  /** Other harness options (extraToml, listenerFilters, logLevel...). */
  readonly tern?: Omit<TernOptions, 'tables' | 'users'>;
}

export interface AuthTern extends Tern {
  /** Messages in `mailbox` ('INBOX', 'Junk') of `address`, through the store API. */
  messagesIn(address: string, mailbox: string): Promise<MessageSummary[]>;
}

/**
 * Tern on loopback whose DNS is `dns` only (short timeout, one attempt, no cache so that each test sees
 * the zone as it is now), with no AUTH failure delay.
 */
export async function startAuthTern(dns: DnsServer, opts: AuthTernOptions = {}): Promise<AuthTern> {
  const tables: Record<string, Readonly<Record<string, TomlValue>>> = {
    dns: { servers: [dns.endpoint], timeout_seconds: 0.5, attempts: 1, max_cache_ttl_seconds: 0 },
    auth: { failure_delay_seconds: 0 },
    ...(opts.defaultChecks === true ? {} : { checks: { skip_networks: [], ...opts.checks } }),
    ...opts.tables,
  };
  const tern = await startTern({
    ...opts.tern,
    tables,
    ...(opts.users === undefined ? {} : { users: opts.users }),
  });
  let store: MailboxStore | null = null;
  const stop = tern.stop.bind(tern);
  return Object.assign(tern, {
    async messagesIn(address: string, mailbox: string): Promise<MessageSummary[]> {
      store ??= await openStore(loadConfig({ path: tern.configPath, cwd: tern.dir }), systemClock);
      return store.list(address, mailbox);
    },
    async stop(): Promise<void> {
      await store?.close();
      store = null;
      await stop();
    },
  });
}

export async function startZones(zones: Zones): Promise<DnsServer> {
  return startDnsServer({ zones });
}

/** Wait until `address` has a message whose Subject is `subject` in INBOX (or `mailbox`); its bytes. */
export async function storedBySubject(
  tern: AuthTern,
  address: string,
  subject: string,
  mailbox = 'INBOX',
  timeoutMs = 10_000,
): Promise<Buffer> {
  const entry = await waitFor(
    `"${subject}" in ${address}'s ${mailbox}`,
    async () => (await tern.messagesIn(address, mailbox)).find((m) => m.subject === subject),
    timeoutMs,
  );
  return tern.storedMessage(address, entry.id);
}

/** Whether a message with this Subject is in any of the mailboxes named. */
export async function subjectIn(
  tern: AuthTern,
  address: string,
  subject: string,
  mailboxes: readonly string[] = ['INBOX', 'Junk'],
): Promise<string[]> {
  const out: string[] = [];
  for (const mailbox of mailboxes) {
    if ((await tern.messagesIn(address, mailbox)).some((m) => m.subject === subject)) out.push(mailbox);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// One SMTP transaction, from a chosen local address

export interface Reply {
  readonly code: number;
  /** Enhanced status code of the last line, or ''. */
  readonly enhanced: string;
  readonly text: string;
}

export interface Transaction {
  readonly mail: Reply;
  /** null when MAIL was refused (RCPT not sent). */
  readonly rcpt: Reply | null;
  /**
   * The reply to DATA when it was not 354, else the reply after the final dot (with BDAT: the reply to the
   * LAST chunk, or to the first chunk refused); null when not reached.
   */
  readonly data: Reply | null;
}

export interface TransactionRequest {
  readonly port: number;
  /** Local address to connect from (default 127.0.0.1). */
  readonly localAddress?: string;
  readonly helo: string;
  /** The MAIL FROM address, '' for the null reverse-path. */
  readonly from: string;
  readonly to: string;
  readonly message: Buffer | string;
  /** How long to wait for each reply (end of data may wait on DNS). */
  readonly timeoutMs?: number;
  /** Send the message with BDAT (RFC 3030) in chunks of this many octets instead of DATA. */
  readonly bdatChunkBytes?: number;
  /** MAIL FROM parameters after the address, e.g. "SMTPUTF8". */
  readonly mailParams?: string;
}

class ReplyReader {
  #buffer = '';
  #closed = false;
  #wake: (() => void) | null = null;

  constructor(socket: Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      this.#buffer += d;
      this.#wake?.();
    });
    const close = (): void => {
      this.#closed = true;
      this.#wake?.();
    };
    socket.on('close', close);
    socket.on('error', close);
  }

  async read(timeoutMs: number): Promise<Reply> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = /^(?:\d{3}-[^\r\n]*\r\n)*(\d{3}) ([^\r\n]*)\r\n/.exec(this.#buffer);
      if (m) {
        this.#buffer = this.#buffer.slice(m[0].length);
        const text = m[2]!;
        return { code: Number(m[1]), enhanced: /^([245]\.\d{1,3}\.\d{1,3})\b/.exec(text)?.[1] ?? '', text };
      }
      if (this.#closed) throw new Error(`connection closed; unread: ${JSON.stringify(this.#buffer)}`);
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`no reply within ${timeoutMs} ms; unread: ${JSON.stringify(this.#buffer)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(timer);
          this.#wake = null;
          resolve();
        };
      });
    }
  }
}

/** RFC 5321 §4.5.2: a line that starts with a dot gets another; the message ends in CRLF. */
function dotStuffed(message: Buffer | string): Buffer {
  let text = Buffer.from(message).toString('latin1');
  if (!text.endsWith('\r\n')) text += '\r\n';
  return Buffer.from(text.replace(/^\./gm, '..') + '.\r\n', 'latin1');
}

/** EHLO, MAIL, RCPT, DATA, message, QUIT over plain TCP; stops at the first refusal. */
export async function transact(req: TransactionRequest): Promise<Transaction> {
  const timeoutMs = req.timeoutMs ?? 10_000;
  const socket = netConnect({
    host: '127.0.0.1',
    port: req.port,
    localAddress: req.localAddress ?? '127.0.0.1',
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const reader = new ReplyReader(socket);
  const command = async (line: string | Buffer): Promise<Reply> => {
    socket.write(typeof line === 'string' ? `${line}\r\n` : line);
    return reader.read(timeoutMs);
  };
  try {
    const greeting = await reader.read(timeoutMs);
    if (greeting.code !== 220) throw new Error(`greeting: ${greeting.code} ${greeting.text}`);
    const ehlo = await command(`EHLO ${req.helo}`);
    if (ehlo.code !== 250) throw new Error(`EHLO: ${ehlo.code} ${ehlo.text}`);
    const mail = await command(
      `MAIL FROM:<${req.from}>${req.mailParams === undefined ? '' : ` ${req.mailParams}`}`,
    );
    if (mail.code !== 250) return { mail, rcpt: null, data: null };
    const rcpt = await command(`RCPT TO:<${req.to}>`);
    if (rcpt.code !== 250) return { mail, rcpt, data: null };
    if (req.bdatChunkBytes !== undefined) {
      const bytes = Buffer.from(req.message);
      for (let at = 0; ; at += req.bdatChunkBytes) {
        const chunk = bytes.subarray(at, at + req.bdatChunkBytes);
        const last = at + req.bdatChunkBytes >= bytes.length;
        const reply = await command(
          Buffer.concat([Buffer.from(`BDAT ${chunk.length}${last ? ' LAST' : ''}\r\n`), chunk]),
        );
        if (last || reply.code !== 250) {
          await command('QUIT').catch(() => undefined);
          return { mail, rcpt, data: reply };
        }
      }
    }
    const go = await command('DATA');
    if (go.code !== 354) return { mail, rcpt, data: go };
    const data = await command(dotStuffed(req.message));
    await command('QUIT').catch(() => undefined);
    return { mail, rcpt, data };
  } finally {
    socket.destroy();
  }
}

/**
 * An authenticated submission (port 587 style, STARTTLS, AUTH PLAIN) with nodemailer, an independent
 * client; the message goes as given (`raw`), the envelope as given. Resolves with the server's reply.
 */
export async function submit(req: {
  port: number;
  user: string;
  password: string;
  from: string;
  to: readonly string[];
  message: Buffer;
}): Promise<string> {
  const transport = createTransport({
    host: '127.0.0.1',
    port: req.port,
    secure: false,
    requireTLS: true,
    name: 'submitter.example',
    tls: { rejectUnauthorized: false },
    auth: { user: req.user, pass: req.password },
    connectionTimeout: 5000,
    greetingTimeout: 5000,
    socketTimeout: 10_000,
  });
  try {
    const info = await transport.sendMail({
      envelope: { from: req.from, to: [...req.to] },
      raw: req.message,
    });
    return info.response;
  } finally {
    transport.close();
  }
}

// ---------------------------------------------------------------------------------------------------
// Messages and their header fields

let counter = 0;

/** A small RFC 5322 message; header lines given as [name, value] come after From/To/Subject/Date. */
export function message(opts: {
  from: string;
  to: string;
  subject: string;
  body?: string;
  extraHeaders?: readonly (readonly [string, string])[];
}): Buffer {
  counter++;
  const extra = (opts.extraHeaders ?? []).map(([n, v]) => `${n}: ${v}\r\n`).join('');
  return Buffer.from(
    `From: <${opts.from}>\r\nTo: <${opts.to}>\r\nSubject: ${opts.subject}\r\n` +
      `Date: Mon, 02 Feb 2026 10:00:00 +0000\r\n` +
      `Message-ID: <authchecks-${process.pid}-${counter}@example.test>\r\n` +
      extra +
      `\r\n${opts.body ?? 'Hello from the authentication tests.\r\n'}`,
    'latin1',
  );
}

/** The unfolded values of every field called `name` in the header section, in order. */
export function headerFields(raw: Buffer, name: string): string[] {
  const text = raw.toString('latin1');
  const end = text.search(/\r?\n\r?\n/);
  const head = end < 0 ? text : text.slice(0, end);
  const out: string[] = [];
  for (const field of head.split(/\r?\n(?![ \t])/)) {
    const colon = field.indexOf(':');
    if (colon < 0) continue;
    if (field.slice(0, colon).trim().toLowerCase() !== name.toLowerCase()) continue;
    out.push(
      field
        .slice(colon + 1)
        .replace(/\r?\n[ \t]/g, ' ')
        .trim(),
    );
  }
  return out;
}

export interface ResInfo {
  readonly method: string;
  readonly result: string;
  /** ptype.property → value, e.g. 'smtp.mailfrom', 'header.d'. */
  readonly props: Readonly<Record<string, string>>;
  /** The comments inside this resinfo, joined by a space (reasons and (p=… dis=…)). */
  readonly comments: string;
}

export interface AuthResults {
  readonly authservId: string;
  readonly results: readonly ResInfo[];
}

/**
 * RFC 8601 §2.2: authserv-id [version] ( ";" resinfo )*; resinfo = method "=" result [reason] props.
 * CFWS comments (nested, with quoted-pairs) are collected per resinfo; quoted values are unquoted.
 */
export function parseAuthResults(value: string): AuthResults {
  // Tokenize: comments out, quoted strings kept whole, ';' as a separator outside both.
  const segments: { text: string; comments: string[] }[] = [{ text: '', comments: [] }];
  let depth = 0;
  let comment = '';
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    const seg = segments.at(-1)!;
    if (depth > 0) {
      if (c === '\\') comment += value[++i] ?? '';
      else if (c === '(') {
        depth++;
        comment += c;
      } else if (c === ')') {
        depth--;
        if (depth === 0) {
          seg.comments.push(comment);
          comment = '';
          seg.text += ' ';
        } else comment += c;
      } else comment += c;
    } else if (quoted) {
      if (c === '\\') seg.text += value[++i] ?? '';
      else if (c === '"') quoted = false;
      else seg.text += c === ' ' ? '\u0000' : c;
    } else if (c === '"') quoted = true;
    else if (c === '(') depth = 1;
    else if (c === ';') segments.push({ text: '', comments: [] });
    else seg.text += c;
  }
  const [head, ...rest] = segments;
  const authservId = (head?.text.trim().split(/\s+/)[0] ?? '').replaceAll('\u0000', ' ');
  const results: ResInfo[] = [];
  for (const seg of rest) {
    const words = seg.text
      .trim()
      .split(/\s+/)
      .filter((w) => w !== '');
    const first = words.shift();
    if (first === undefined) continue;
    const eq = first.indexOf('=');
    const props: Record<string, string> = {};
    for (const w of words) {
      const e = w.indexOf('=');
      if (e > 0) props[w.slice(0, e).toLowerCase()] = w.slice(e + 1).replaceAll('\u0000', ' ');
    }
    results.push({
      method: first.slice(0, eq).toLowerCase(),
      result: first.slice(eq + 1).toLowerCase(),
      props,
      comments: seg.comments.join(' '),
    });
  }
  return { authservId, results };
}

/** Every Authentication-Results field of a message, parsed. */
export function authResultsOf(raw: Buffer): AuthResults[] {
  return headerFields(raw, 'Authentication-Results').map(parseAuthResults);
}

/** The one A-R field carrying `authservId` (fails when there is not exactly one). */
export function ourAuthResults(raw: Buffer, authservId = HOSTNAME): AuthResults {
  const ours = authResultsOf(raw).filter((a) => a.authservId.toLowerCase() === authservId.toLowerCase());
  if (ours.length !== 1) {
    throw new Error(
      `expected one Authentication-Results from ${authservId}, found ${ours.length} in:\n` +
        raw.toString('latin1').split(/\r?\n\r?\n/, 1)[0],
    );
  }
  return ours[0]!;
}

/** The resinfos of one method ('spf', 'dkim', 'dmarc', 'arc'). */
export function resultsFor(ar: AuthResults, method: string): ResInfo[] {
  return ar.results.filter((r) => r.method === method);
}

// ---------------------------------------------------------------------------------------------------
// python3-dkim (dkimpy)

/** A Python that can import dkim and nacl: the one dkimverify runs with first (pyenv may shadow python3). */
export function findDkimPython(): string | null {
  const candidates: string[] = [];
  const which = spawnSync('sh', ['-c', 'command -v dkimverify'], { encoding: 'utf8' });
  const script = which.status === 0 ? which.stdout.trim() : '';
  if (script !== '' && existsSync(script)) {
    const shebang = /^#!\s*(\S+)/.exec(readFileSync(script, 'utf8').split('\n', 1)[0] ?? '');
    if (shebang?.[1] !== undefined) candidates.push(shebang[1]);
  }
  candidates.push('/usr/bin/python3', 'python3');
  for (const python of candidates) {
    if (spawnSync(python, ['-c', 'import dkim, nacl'], { stdio: 'ignore' }).status === 0) return python;
  }
  return null;
}

export const NO_DKIMPY = 'python3-dkim (with nacl) is not installed here: apt-get install python3-dkim';

// One request (JSON on stdin), one answer (JSON on stdout): a list of jobs, each a sign or a verify.
const DKIMPY = String.raw`
import base64, json, sys
import dkim

req = json.load(sys.stdin)
zone = {k.lower(): v.encode() for k, v in req.get("zone", {}).items()}

def dnsfunc(name, timeout=5):
    name = name.decode("ascii") if isinstance(name, bytes) else name
    return zone.get(name.rstrip(".").lower())

out = []
for job in req["jobs"]:
    msg = base64.b64decode(job["message"])
    if job["op"] == "verify":
        d = dkim.DKIM(msg, minkey=1024)
        count = len([1 for k, v in d.headers if k.lower() == b"dkim-signature"])
        results = []
        for i in range(count):
            try:
                results.append(bool(d.verify(idx=i, dnsfunc=dnsfunc)))
            except Exception as e:
                results.append("error: %s" % e)
        out.append(results)
    else:
        sig = dkim.sign(msg, job["selector"].encode(), job["domain"].encode(), job["key"].encode(),
                        canonicalize=(job["c"][0].encode(), job["c"][1].encode()),
                        signature_algorithm=job["algorithm"].encode(),
                        include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
        out.append(base64.b64encode(sig).decode("ascii"))
json.dump(out, sys.stdout)
`;

export interface DkimpySignJob {
  readonly message: Buffer;
  readonly domain: string;
  readonly selector: string;
  /** RSA: PKCS#1 PEM; Ed25519: the base64 32-octet seed (what dkimpy reads). */
  readonly key: string;
  readonly algorithm: 'rsa-sha256' | 'ed25519-sha256';
  readonly c: readonly ['simple' | 'relaxed', 'simple' | 'relaxed'];
}

function runDkimpy(python: string, request: unknown): unknown[] {
  const run = spawnSync(python, ['-c', DKIMPY], {
    input: JSON.stringify(request),
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (run.status !== 0) throw new Error(`dkimpy exited ${run.status}: ${run.stderr}`);
  return JSON.parse(run.stdout) as unknown[];
}

/** dkimpy's DKIM-Signature field for each job (CRLF-terminated, to put on top of the message). */
export function dkimpySign(python: string, jobs: readonly DkimpySignJob[]): Buffer[] {
  const out = runDkimpy(python, {
    jobs: jobs.map((j) => ({ ...j, op: 'sign', message: j.message.toString('base64') })),
  });
  return out.map((s) => Buffer.from(s as string, 'base64'));
}

/** dkimpy's verdict on each DKIM-Signature of each message: true, false or "error: …". */
export function dkimpyVerify(
  python: string,
  zone: Readonly<Record<string, string>>,
  messages: readonly Buffer[],
): (boolean | string)[][] {
  return runDkimpy(python, {
    zone,
    jobs: messages.map((m) => ({ op: 'verify', message: m.toString('base64') })),
  }) as (boolean | string)[][];
}
