// `tern doctor`: what the rest of the Internet sees of this server, checked one item at a time. Per
// domain: MX (RFC 5321 §5.1, RFC 7505), SPF (RFC 7208: one record, our addresses pass check_host()), one
// DKIM key record per selector we sign with (RFC 6376 §3.6.1: the published p= is our public key), DMARC
// (RFC 7489 §6.6.3), MTA-STS (RFC 8461 §3.1) and TLS-RPT (RFC 8460 §3). For this host: the A/AAAA of our
// hostname, the PTR of each address and its forward confirmation (FCrDNS), the [tls] certificate (names,
// expiry, chain), every configured listener answering a TCP connect, and an open-relay self test over
// our own smtp listener. What the domain SHOULD publish comes from ops/dns.ts (dnsRecordsFor), so the
// fixes printed here are the lines `tern dns records` prints.
// Each check returns { id, status, summary, fix?, detail? }: `fail` is what loses mail or lets others
// abuse the server, `warn` what weakens it or could not be checked; a DNS error is a `warn` (the
// resolver may be at fault, not the zone).
// Deliberately NOT here: fixing anything (Tern does not talk to DNS providers), fetching the MTA-STS
// policy over HTTPS, DNSSEC/DANE, blocklist lookups of our addresses, and a relay test from outside this
// host (the self test can only say what a loopback client sees).

import { X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { rootCertificates } from 'node:tls';
import { connect as tcpConnect } from 'node:net';
import type { Socket } from 'node:net';
import { domainToASCII } from 'node:url';
import type { Config } from '../config/config.ts';
import type { DnsAnswer, Resolver } from '../core/dns.ts';
import { dkimPublicKey } from '../delivery/dkim-sign.ts';
import type { DkimKey } from '../delivery/dkim-sign.ts';
import { selfSignedPaths } from '../net/tls.ts';
import { parseKeyRecord } from '../policy/dkim/key-record.ts';
import { isDmarcRecord, parseDmarcRecord } from '../policy/dmarc.ts';
import { inNetworks, parseCidr } from '../policy/networks.ts';
import type { Network } from '../policy/networks.ts';
import { organizationalDomain } from '../policy/psl.ts';
import { checkHost as spfCheckHost } from '../policy/spf.ts';
import { isSpfRecord, parseRecord } from '../policy/spf-record.ts';
import { ReplyParser } from '../protocol/smtp/client/reply-parser.ts';
import type { ParsedReply } from '../protocol/smtp/client/reply-parser.ts';
import type { DnsRecord } from './dns.ts';
import { dnsRecordsFor, mtaStsPolicyId, mtaStsPolicyText } from './dns.ts';

export type CheckStatus = 'pass' | 'warn' | 'fail';

export type CheckId =
  | 'mx'
  | 'spf'
  | 'dkim'
  | 'dmarc'
  | 'mta-sts'
  | 'tls-rpt'
  | 'host-address'
  | 'ptr'
  | 'tls-names'
  | 'tls-expiry'
  | 'tls-chain'
  | 'port'
  | 'open-relay';

/** One line of the report; the JSON of `tern doctor --json` is made of these (a stable contract). */
export interface DoctorCheck {
  readonly id: CheckId;
  readonly status: CheckStatus;
  /** The domain a per-domain check is about (A-label); absent for checks of this host. */
  readonly domain?: string;
  readonly summary: string;
  /** What to do about it: a zone-file line to publish, a config key, a command. Absent on pass. */
  readonly fix?: string;
  readonly detail?: Readonly<Record<string, unknown>>;
}

export interface DoctorReport {
  readonly hostname: string;
  /** The domains checked, A-labels. */
  readonly domains: readonly string[];
  /** No check failed. */
  readonly ok: boolean;
  readonly counts: Readonly<Record<CheckStatus, number>>;
  readonly checks: readonly DoctorCheck[];
}

export type DoctorConfig = Pick<
  Config,
  | 'hostname'
  | 'dataDir'
  | 'mtaStsPublish'
  | 'localDomains'
  | 'listeners'
  | 'admin'
  | 'tls'
  | 'smtp'
  | 'outbound'
>;

export interface DoctorDeps {
  readonly config: DoctorConfig;
  readonly resolver: Resolver;
  readonly nowMs: number;
  /** Bound on each TCP connect and each SMTP reply of the self tests. Default 5 s. */
  readonly networkTimeoutMs?: number;
}

/** A certificate this close to expiry gets a warning: ACME clients renew at 30 days, so 14 means stuck. */
export const EXPIRY_WARN_MS = 14 * 86_400_000;
const DEFAULT_NETWORK_TIMEOUT_MS = 5_000;
const PROBE_SENDER = 'doctor@example.invalid';
const PROBE_RECIPIENT = 'relay-test@example.invalid';

/** "bücher.example." → "xn--bcher-kva.example"; null when it cannot be a domain name. */
export function toALabel(domain: string): string | null {
  const trimmed = domain.trim().replace(/\.$/, '');
  const ascii = /[^\p{ASCII}]/u.test(trimmed) ? domainToASCII(trimmed) : trimmed.toLowerCase();
  if (ascii === '' || ascii.length > 253) return null;
  for (const label of ascii.split('.')) if (!/^[a-z0-9_-]{1,63}$/.test(label)) return null;
  return ascii;
}

/** The local domains worth checking: single-label names such as "localhost" have no public DNS. */
export function publicLocalDomains(config: Pick<Config, 'localDomains'>): string[] {
  const out: string[] = [];
  for (const d of config.localDomains) {
    const a = toALabel(d);
    if (a !== null && a.includes('.') && !out.includes(a)) out.push(a);
  }
  return out;
}

function hostOf(config: Pick<Config, 'hostname'>): string {
  return config.hostname.replace(/\.$/, '').toLowerCase();
}

function zoneLine(r: DnsRecord): string {
  const value = r.type === 'TXT' ? `"${r.value}"` : r.value;
  return `${r.name}. IN ${r.type} ${value}`;
}

function dnsTrouble(answer: DnsAnswer<unknown>): string | null {
  return answer.kind === 'error' ? answer.reason : null;
}

function check(
  id: CheckId,
  status: CheckStatus,
  domain: string | null,
  summary: string,
  extra: { fix?: string; detail?: Readonly<Record<string, unknown>> } = {},
): DoctorCheck {
  return {
    id,
    status,
    ...(domain === null ? {} : { domain }),
    summary,
    ...(extra.fix === undefined || status === 'pass' ? {} : { fix: extra.fix }),
    ...(extra.detail === undefined ? {} : { detail: extra.detail }),
  };
}

function lookupWarn(id: CheckId, domain: string | null, name: string, reason: string): DoctorCheck {
  return check(id, 'warn', domain, `${name}: DNS lookup failed (${reason}); not checked`, {
    fix: 'check [dns] servers and that the resolver answers, then run tern doctor again',
  });
}

// ---------------------------------------------------------------------------------------------------
// This host: our hostname's addresses, their PTR, the certificate, the listeners, the relay test

export interface HostAddresses {
  readonly addresses: readonly string[];
  readonly checks: readonly DoctorCheck[];
}

export async function checkHostAddresses(deps: DoctorDeps): Promise<HostAddresses> {
  const host = hostOf(deps.config);
  const [a, aaaa] = await Promise.all([deps.resolver.a(host), deps.resolver.aaaa(host)]);
  const addresses = [...(a.kind === 'ok' ? a.records : []), ...(aaaa.kind === 'ok' ? aaaa.records : [])];
  const trouble = dnsTrouble(a) ?? dnsTrouble(aaaa);
  if (addresses.length === 0) {
    if (trouble !== null) return { addresses, checks: [lookupWarn('host-address', null, host, trouble)] };
    return {
      addresses,
      checks: [
        check('host-address', 'fail', null, `our hostname ${host} has no A or AAAA record`, {
          fix: `publish ${host}. IN A <this server's public IPv4 address> (and AAAA for IPv6), or set hostname to a name that has them`,
        }),
      ],
    };
  }
  return {
    addresses,
    checks: [
      check('host-address', 'pass', null, `${host} A/AAAA ${addresses.join(' ')}`, {
        detail: { addresses },
      }),
    ],
  };
}

/** PTR of each address, and whether a PTR name leads back to it (FCrDNS, RFC 8601 §3 "iprev"). */
export async function checkPtr(deps: DoctorDeps, addresses: readonly string[]): Promise<DoctorCheck[]> {
  const host = hostOf(deps.config);
  return Promise.all(
    addresses.map(async (address): Promise<DoctorCheck> => {
      const ptr = await deps.resolver.ptr(address);
      if (ptr.kind === 'error') return lookupWarn('ptr', null, `PTR of ${address}`, ptr.reason);
      const fix = `ask whoever runs ${address}'s network (your hosting provider) to set its PTR to ${host}`;
      if (ptr.kind !== 'ok')
        return check('ptr', 'fail', null, `${address} has no PTR record`, { fix, detail: { address } });
      const names = [...ptr.records];
      const confirmed: string[] = [];
      for (const name of names.slice(0, 10)) {
        const forward = address.includes(':') ? await deps.resolver.aaaa(name) : await deps.resolver.a(name);
        if (forward.kind === 'ok' && forward.records.includes(address)) confirmed.push(name);
      }
      const detail = { address, ptr: names, forwardConfirmed: confirmed };
      if (confirmed.includes(host))
        return check('ptr', 'pass', null, `${address} PTR ${host}, forward-confirmed`, { detail });
      if (confirmed.length > 0)
        return check(
          'ptr',
          'warn',
          null,
          `${address} PTR ${confirmed[0]!}, forward-confirmed, but it is not our hostname ${host}`,
          { fix: `${fix}, or set hostname = "${confirmed[0]!}"`, detail },
        );
      return check(
        'ptr',
        'fail',
        null,
        `${address} PTR ${names.join(' ')} does not resolve back to ${address} (no FCrDNS)`,
        { fix, detail },
      );
    }),
  );
}

function pemCertificates(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
}

function issues(issuer: X509Certificate, cert: X509Certificate): boolean {
  return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
}

/**
 * Issued by its own key. Not checkIssued(): OpenSSL's issuer check also wants keyCertSign in a key usage,
 * which a self-signed server certificate (ours included, src/net/tls.ts) rightly does not have.
 */
function isSelfSigned(cert: X509Certificate): boolean {
  return cert.subject === cert.issuer && cert.verify(cert.publicKey);
}

let systemRoots: X509Certificate[] | null = null;
function nodeRoots(): X509Certificate[] {
  systemRoots ??= rootCertificates.map((pem) => new X509Certificate(pem));
  return systemRoots;
}

/** Subject alternative DNS names and IP addresses, else the CN (RFC 6125 §6.4.4). */
function certificateNames(cert: X509Certificate): string[] {
  const san = cert.subjectAltName;
  if (san !== undefined) {
    return san
      .split(', ')
      .map((entry) => /^(?:DNS|IP Address):(.*)$/.exec(entry)?.[1])
      .filter((n): n is string => n !== undefined);
  }
  const cn = /(?:^|\n)CN=([^\n]*)/.exec(cert.subject)?.[1];
  return cn === undefined ? [] : [cn];
}

/**
 * The certificate chain as a PEM bundle (leaf first): names cover `hostname`, expiry, chain order and
 * completeness. `extraRootsPem` are CAs trusted beside Node's root store ([outbound] tls_ca).
 */
export function checkCertificatePem(
  pem: string,
  hostname: string,
  nowMs: number,
  extraRootsPem: string | null = null,
  source = 'tls.cert',
): DoctorCheck[] {
  let chain: X509Certificate[];
  try {
    chain = pemCertificates(pem).map((p) => new X509Certificate(p));
  } catch (err) {
    return [
      check(
        'tls-names',
        'fail',
        null,
        `${source}: not a readable PEM certificate (${(err as Error).message})`,
        {
          fix: 'set [tls] cert to the PEM file of the certificate, leaf first, then its intermediates',
        },
      ),
    ];
  }
  const leaf = chain[0];
  if (leaf === undefined) {
    return [
      check('tls-names', 'fail', null, `${source}: holds no PEM certificate`, {
        fix: 'set [tls] cert to the PEM file of the certificate, leaf first, then its intermediates',
      }),
    ];
  }
  const out: DoctorCheck[] = [];
  const host = hostname.replace(/\.$/, '').toLowerCase();
  const names = certificateNames(leaf);
  if (leaf.checkHost(host) !== undefined) {
    out.push(check('tls-names', 'pass', null, `certificate covers ${host}`, { detail: { names } }));
  } else {
    out.push(
      check('tls-names', 'fail', null, `certificate names (${names.join(', ')}) do not cover ${host}`, {
        fix: `get a certificate for ${host} (e.g. certbot certonly -d ${host}) and set [tls] cert/key to it`,
        detail: { names },
      }),
    );
  }

  const notAfter = Date.parse(leaf.validTo);
  const notBefore = Date.parse(leaf.validFrom);
  const expiry = { notBefore: new Date(notBefore).toISOString(), notAfter: new Date(notAfter).toISOString() };
  const renew = 'renew the certificate (e.g. certbot renew), then tern reload';
  if (notAfter < nowMs) {
    out.push(
      check('tls-expiry', 'fail', null, `certificate expired on ${expiry.notAfter}`, {
        fix: renew,
        detail: expiry,
      }),
    );
  } else if (notBefore > nowMs) {
    out.push(
      check('tls-expiry', 'fail', null, `certificate is not valid before ${expiry.notBefore}`, {
        fix: 'check this host’s clock, or the certificate’s dates',
        detail: expiry,
      }),
    );
  } else if (notAfter - nowMs < EXPIRY_WARN_MS) {
    const days = Math.floor((notAfter - nowMs) / 86_400_000);
    out.push(
      check(
        'tls-expiry',
        'warn',
        null,
        `certificate expires in ${days} day${days === 1 ? '' : 's'} (${expiry.notAfter})`,
        {
          fix: renew,
          detail: expiry,
        },
      ),
    );
  } else {
    out.push(
      check('tls-expiry', 'pass', null, `certificate valid until ${expiry.notAfter}`, { detail: expiry }),
    );
  }

  const extraRoots =
    extraRootsPem === null ? [] : pemCertificates(extraRootsPem).map((p) => new X509Certificate(p));
  out.push(checkChain(chain, [...extraRoots, ...nodeRoots()]));
  return out;
}

function checkChain(chain: readonly X509Certificate[], roots: readonly X509Certificate[]): DoctorCheck {
  const leaf = chain[0]!;
  const detail = { certificates: chain.map((c) => c.subject.replace(/\n/g, ', ')) };
  if (isSelfSigned(leaf)) {
    return check(
      'tls-chain',
      'warn',
      null,
      'certificate is self-signed: senders encrypt, but cannot authenticate us',
      {
        fix: 'get a certificate from a public CA (e.g. Let’s Encrypt) and set [tls] cert/key; MTA-STS enforce needs one',
        detail,
      },
    );
  }
  for (let i = 0; i + 1 < chain.length; i++) {
    if (!issues(chain[i + 1]!, chain[i]!)) {
      return check(
        'tls-chain',
        'fail',
        null,
        `certificate ${i + 2} in tls.cert did not issue certificate ${i + 1}`,
        {
          fix: 'put the certificates in order in [tls] cert: leaf first, then each issuer (e.g. certbot’s fullchain.pem)',
          detail,
        },
      );
    }
  }
  const last = chain[chain.length - 1]!;
  if (isSelfSigned(last) || roots.some((root) => issues(root, last))) {
    return check(
      'tls-chain',
      'pass',
      null,
      `chain complete (${chain.length} certificate${chain.length === 1 ? '' : 's'})`,
      {
        detail,
      },
    );
  }
  return check(
    'tls-chain',
    'warn',
    null,
    `chain incomplete: no issuer for "${last.issuer.replace(/\n/g, ', ')}"`,
    {
      fix: 'append the intermediate certificate(s) to [tls] cert (e.g. certbot’s fullchain.pem, not cert.pem)',
      detail,
    },
  );
}

export async function checkCertificate(deps: DoctorDeps): Promise<DoctorCheck[]> {
  const { tls, dataDir, outbound } = deps.config;
  const path = tls.cert ?? selfSignedPaths(dataDir).cert;
  if (tls.cert === null && !existsSync(path)) {
    return [
      check('tls-chain', 'warn', null, 'no [tls] cert: tern serve makes a self-signed certificate at start', {
        fix: 'get a certificate from a public CA (e.g. Let’s Encrypt) and set [tls] cert/key',
      }),
    ];
  }
  let pem: string;
  try {
    pem = await readFile(path, 'utf8');
  } catch (err) {
    return [
      check('tls-names', 'fail', null, `cannot read ${path}: ${(err as Error).message}`, {
        fix: 'make [tls] cert readable by the user tern runs as',
      }),
    ];
  }
  let extra: string | null = null;
  if (outbound.tlsCa !== null) extra = await readFile(outbound.tlsCa, 'utf8').catch(() => null);
  return checkCertificatePem(
    pem,
    deps.config.hostname,
    deps.nowMs,
    extra,
    tls.cert === null ? path : 'tls.cert',
  );
}

/** Where to connect to reach a listener bound to `host`: a wildcard address is reached over loopback. */
function connectHost(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::' || host === '[::]') return '::1';
  return host.replace(/^\[|\]$/g, '');
}

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

async function tcpOpen(host: string, port: number, timeoutMs: number, path?: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket =
      path === undefined
        ? tcpConnect({ host, port, timeout: timeoutMs })
        : tcpConnect({ path, timeout: timeoutMs });
    const fail = (err: Error): void => {
      socket.destroy();
      reject(err);
    };
    socket.once('connect', () => {
      socket.setTimeout(0);
      socket.off('error', fail);
      resolve(socket);
    });
    socket.once('timeout', () => fail(new Error(`no answer within ${timeoutMs} ms`)));
    socket.once('error', fail);
  });
}

interface Endpoint {
  readonly service: string;
  readonly host: string;
  readonly port: number;
  /** An LMTP listener's Unix socket. */
  readonly path?: string;
}

function endpoints(config: DoctorConfig): Endpoint[] {
  return [
    ...config.listeners.map((l) => ({
      service: l.service,
      host: l.host,
      port: l.port,
      ...(l.path === undefined ? {} : { path: l.path }),
    })),
    ...config.admin.listeners.map((l) => ({ service: 'admin', host: l.host, port: l.port })),
    ...config.mtaStsPublish.listeners.map((l) => ({ service: 'mta-sts', host: l.host, port: l.port })),
  ];
}

/** Every configured listener answers a TCP connect (the server is up and nothing else took the port). */
export async function checkListeners(deps: DoctorDeps): Promise<DoctorCheck[]> {
  const timeoutMs = deps.networkTimeoutMs ?? DEFAULT_NETWORK_TIMEOUT_MS;
  return Promise.all(
    endpoints(deps.config).map(async (ep): Promise<DoctorCheck> => {
      const where = ep.path === undefined ? hostPort(ep.host, ep.port) : `unix:${ep.path}`;
      const detail = { service: ep.service, address: where };
      if (ep.port === 0 && ep.path === undefined) {
        return check('port', 'warn', null, `${ep.service} ${where}: port chosen at start; not checked`, {
          fix: 'give the listener a fixed port in [[listeners]] address',
          detail,
        });
      }
      try {
        const socket = await tcpOpen(connectHost(ep.host), ep.port, timeoutMs, ep.path);
        socket.destroy();
        return check('port', 'pass', null, `${ep.service} ${where} answers`, { detail });
      } catch (err) {
        return check(
          'port',
          'fail',
          null,
          `${ep.service} ${where} does not answer (${(err as Error).message})`,
          {
            fix: 'start tern serve (or see its log for why it did not bind this address)',
            detail,
          },
        );
      }
    }),
  );
}

/** A small SMTP client for the self test: whole replies, each within the timeout, never more than 4 KiB a line. */
class ProbeWire {
  private readonly parser = new ReplyParser({ maxLineBytes: 4096, maxLines: 64, maxPendingReplies: 16 });
  private readonly replies: ParsedReply[] = [];
  private failure: string | null = null;
  private wake: (() => void) | null = null;
  private readonly socket: Socket;
  private readonly timeoutMs: number;

  constructor(socket: Socket, timeoutMs: number) {
    this.socket = socket;
    this.timeoutMs = timeoutMs;
    socket.on('data', (chunk: Buffer) => {
      const { replies, error } = this.parser.push(chunk);
      this.replies.push(...replies);
      if (error !== null) this.failure = `garbage from the server: ${error}`;
      this.wake?.();
    });
    socket.on('error', (err) => {
      this.failure = err.message;
      this.wake?.();
    });
    socket.on('close', () => {
      this.failure ??= 'connection closed by the server';
      this.wake?.();
    });
  }

  async reply(): Promise<ParsedReply> {
    const deadline = Date.now() + this.timeoutMs;
    for (;;) {
      const next = this.replies.shift();
      if (next !== undefined) {
        this.parser.taken(1);
        return next;
      }
      if (this.failure !== null) throw new Error(this.failure);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no reply within ${this.timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = null;
    }
  }

  async command(line: string): Promise<ParsedReply> {
    this.socket.write(`${line}\r\n`);
    return this.reply();
  }
}

const formatReply = (r: ParsedReply): string =>
  [String(r.code), r.enhanced ?? '', r.text].filter((s) => s !== '').join(' ');

/**
 * Our own smtp listener must refuse a recipient in a domain that is not ours from an unauthenticated
 * client: MAIL FROM:<doctor@example.invalid> RCPT TO:<relay-test@example.invalid>, never DATA. From this
 * host the server may trust the client (trusted_networks); a 2xx is then a warn, not proof.
 */
export async function checkOpenRelay(deps: DoctorDeps): Promise<DoctorCheck> {
  const listener = deps.config.listeners.find((l) => l.service === 'smtp');
  if (listener === undefined)
    return check('open-relay', 'warn', null, 'no smtp listener: relay test not run');
  const where = hostPort(listener.host, listener.port);
  if (listener.port === 0)
    return check('open-relay', 'warn', null, `smtp ${where}: port chosen at start; relay test not run`);
  const timeoutMs = deps.networkTimeoutMs ?? DEFAULT_NETWORK_TIMEOUT_MS;
  let socket: Socket;
  try {
    socket = await tcpOpen(connectHost(listener.host), listener.port, timeoutMs);
  } catch (err) {
    return check(
      'open-relay',
      'warn',
      null,
      `smtp ${where} does not answer (${(err as Error).message}); relay test not run`,
      {
        fix: 'start tern serve, then run tern doctor again',
      },
    );
  }
  const trusted: Network[] = deps.config.smtp.trustedNetworks
    .map((c) => parseCidr(c))
    .filter((n): n is Network => n !== null);
  const from = socket.localAddress ?? '';
  const fromTrusted = inNetworks(from, trusted);
  const wire = new ProbeWire(socket, timeoutMs);
  const transcript: string[] = [];
  const detail = (): Record<string, unknown> => ({ listener: where, clientAddress: from, transcript });
  try {
    const greeting = await wire.reply();
    transcript.push(`S: ${formatReply(greeting)}`);
    if (greeting.code !== 220) {
      return check(
        'open-relay',
        'warn',
        null,
        `smtp ${where} greeted with ${formatReply(greeting)}; relay test not run`,
        {
          detail: detail(),
        },
      );
    }
    const say = async (line: string): Promise<ParsedReply> => {
      transcript.push(`C: ${line}`);
      const r = await wire.command(line);
      transcript.push(`S: ${formatReply(r)}`);
      return r;
    };
    const ehlo = await say('EHLO doctor.example.invalid');
    if (ehlo.code !== 250) await say('HELO doctor.example.invalid');
    const mail = await say(`MAIL FROM:<${PROBE_SENDER}>`);
    if (mail.code >= 300) {
      return check(
        'open-relay',
        'pass',
        null,
        `not an open relay: MAIL FROM refused (${formatReply(mail)})`,
        {
          detail: detail(),
        },
      );
    }
    const rcpt = await say(`RCPT TO:<${PROBE_RECIPIENT}>`);
    await say('RSET').catch(() => undefined);
    if (rcpt.code >= 400) {
      return check(
        'open-relay',
        'pass',
        null,
        `not an open relay: RCPT TO:<${PROBE_RECIPIENT}> got ${formatReply(rcpt)}`,
        {
          detail: detail(),
        },
      );
    }
    if (fromTrusted) {
      return check(
        'open-relay',
        'warn',
        null,
        `relay accepted from ${from}, which is in [smtp] trusted_networks: this test cannot see what outsiders get`,
        {
          fix: `test from a host outside trusted_networks: swaks --server ${hostOf(deps.config)} --from ${PROBE_SENDER} --to ${PROBE_RECIPIENT} --quit-after RCPT`,
          detail: detail(),
        },
      );
    }
    return check(
      'open-relay',
      'fail',
      null,
      `OPEN RELAY: RCPT TO:<${PROBE_RECIPIENT}> got ${formatReply(rcpt)} from an unauthenticated client`,
      {
        fix: 'remove wide networks from [smtp] trusted_networks; only authenticated or trusted clients may relay',
        detail: detail(),
      },
    );
  } catch (err) {
    return check(
      'open-relay',
      'warn',
      null,
      `relay test on smtp ${where} broke off: ${(err as Error).message}`,
      {
        detail: detail(),
      },
    );
  } finally {
    socket.end('QUIT\r\n');
    socket.destroy();
  }
}

// ---------------------------------------------------------------------------------------------------
// Per domain

function expected(records: readonly DnsRecord[], name: string, type: 'MX' | 'TXT', prefix = ''): DnsRecord {
  const r = records.find((x) => x.name === name && x.type === type && x.value.startsWith(prefix));
  if (r === undefined) throw new Error(`dnsRecordsFor gave no ${type} for ${name}`);
  return r;
}

export async function checkMx(
  deps: DoctorDeps,
  domain: string,
  records: readonly DnsRecord[],
): Promise<DoctorCheck> {
  const host = hostOf(deps.config);
  const fix = `publish: ${zoneLine(expected(records, domain, 'MX'))}`;
  const mx = await deps.resolver.mx(domain);
  if (mx.kind === 'error') return lookupWarn('mx', domain, `${domain} MX`, mx.reason);
  if (mx.kind === 'nxdomain') return check('mx', 'fail', domain, `${domain} does not exist in DNS`, { fix });
  if (mx.kind === 'nodata') return check('mx', 'fail', domain, `no MX record for ${domain}`, { fix });
  const sorted = [...mx.records].sort((x, y) => x.preference - y.preference);
  const text = sorted.map((r) => `${r.preference} ${r.exchange === '' ? '.' : r.exchange}`).join(', ');
  if (sorted.some((r) => r.exchange === '')) {
    return check('mx', 'fail', domain, `${domain} has a null MX (RFC 7505): it accepts no mail`, { fix });
  }
  const resolving: string[] = [];
  await Promise.all(
    sorted.map(async (r) => {
      const [a, aaaa] = await Promise.all([deps.resolver.a(r.exchange), deps.resolver.aaaa(r.exchange)]);
      if (a.kind === 'ok' || aaaa.kind === 'ok') resolving.push(r.exchange);
    }),
  );
  const dangling = sorted.map((r) => r.exchange).filter((e) => !resolving.includes(e));
  const detail = { mx: sorted, withoutAddress: dangling };
  if (resolving.length === 0) {
    return check('mx', 'fail', domain, `${domain} MX ${text}: no MX host has an address`, {
      fix: `publish A/AAAA records for ${sorted.map((r) => r.exchange).join(', ')}, or ${fix}`,
      detail,
    });
  }
  if (!sorted.some((r) => r.exchange === host)) {
    return check('mx', 'warn', domain, `${domain} MX ${text}: our hostname ${host} is not among them`, {
      fix: `if this server should receive ${domain}'s mail, ${fix}`,
      detail,
    });
  }
  if (dangling.length > 0) {
    return check('mx', 'warn', domain, `${domain} MX ${text}: ${dangling.join(', ')} has no address`, {
      fix: `publish A/AAAA for ${dangling.join(', ')} or remove those MX records`,
      detail,
    });
  }
  return check('mx', 'pass', domain, `${domain} MX ${text}`, { detail });
}

export async function checkSpf(
  deps: DoctorDeps,
  domain: string,
  records: readonly DnsRecord[],
  ourAddresses: readonly string[],
): Promise<DoctorCheck> {
  const publish = zoneLine(expected(records, domain, 'TXT', 'v=spf1'));
  const txt = await deps.resolver.txt(domain);
  if (txt.kind === 'error') return lookupWarn('spf', domain, `${domain} TXT`, txt.reason);
  const spf = txt.kind === 'ok' ? txt.records.filter(isSpfRecord) : [];
  if (spf.length === 0)
    return check('spf', 'fail', domain, `no SPF record for ${domain}`, { fix: `publish: ${publish}` });
  if (spf.length > 1) {
    return check(
      'spf',
      'fail',
      domain,
      `${spf.length} SPF records for ${domain}: receivers treat that as permerror (RFC 7208 §4.5)`,
      {
        fix: `keep one v=spf1 record, e.g.: ${publish}`,
        detail: { records: spf },
      },
    );
  }
  const record = spf[0]!;
  const parsed = parseRecord(record);
  if (!parsed.ok) {
    return check(
      'spf',
      'fail',
      domain,
      `SPF record of ${domain} has a syntax error (${parsed.error}): permerror`,
      {
        fix: `publish: ${publish}`,
        detail: { record },
      },
    );
  }
  const all = parsed.record.directives.find((d) => d.mechanism.kind === 'all');
  if (all?.qualifier === '+') {
    return check(
      'spf',
      'fail',
      domain,
      `SPF record of ${domain} ends in +all: anyone may send as ${domain}`,
      {
        fix: `publish: ${publish}`,
        detail: { record },
      },
    );
  }
  const relay = deps.config.outbound.relay;
  if (relay !== null) {
    return check(
      'spf',
      'warn',
      domain,
      `${domain} SPF "${record}"; mail leaves through relay ${relay.host}, which SPF must cover`,
      {
        fix: `make sure the SPF record of ${domain} includes ${relay.host}'s addresses (its provider documents an include:)`,
        detail: { record },
      },
    );
  }
  if (ourAddresses.length === 0) {
    return check(
      'spf',
      'warn',
      domain,
      `${domain} SPF "${record}"; our hostname has no address, so coverage was not checked`,
      {
        fix: `publish A/AAAA for ${hostOf(deps.config)}`,
        detail: { record },
      },
    );
  }
  const results = await Promise.all(
    ourAddresses.map(async (ip) => {
      const r = await spfCheckHost({
        ip,
        domain,
        sender: `postmaster@${domain}`,
        helo: hostOf(deps.config),
        receivingHost: 'doctor.invalid',
        resolver: deps.resolver,
        nowMs: deps.nowMs,
        signal: AbortSignal.timeout(20_000),
      });
      return { ip, result: r.result, reason: r.reason };
    }),
  );
  const detail = { record, results };
  const notPassing = results.filter((r) => r.result !== 'pass');
  if (notPassing.length === 0)
    return check('spf', 'pass', domain, `${domain} SPF "${record}" passes ${ourAddresses.join(' ')}`, {
      detail,
    });
  const list = notPassing.map((r) => `${r.ip}: ${r.result}`).join(', ');
  return check(
    'spf',
    notPassing.some((r) => r.result === 'fail' || r.result === 'permerror') ? 'fail' : 'warn',
    domain,
    `${domain} SPF "${record}" does not pass our address (${list})`,
    {
      fix: `add our addresses (the mx mechanism does it when ${hostOf(deps.config)} is an MX): ${publish}`,
      detail,
    },
  );
}

export async function checkDkim(
  deps: DoctorDeps,
  domain: string,
  records: readonly DnsRecord[],
  keys: readonly DkimKey[],
): Promise<DoctorCheck[]> {
  if (keys.length === 0) {
    return [
      check('dkim', 'warn', domain, `no DKIM key for ${domain}: its mail goes out unsigned`, {
        fix: `tern dkim keygen --domain ${domain} --selector s1, then publish the record tern dns records prints`,
      }),
    ];
  }
  return Promise.all(
    keys.map(async (key): Promise<DoctorCheck> => {
      const name = `${key.selector}._domainkey.${domain}`;
      const fix = `publish: ${zoneLine(expected(records, name, 'TXT'))}`;
      const txt = await deps.resolver.txt(name);
      if (txt.kind === 'error') return lookupWarn('dkim', domain, `${name} TXT`, txt.reason);
      const found = txt.kind === 'ok' ? [...txt.records] : [];
      const detail = { selector: key.selector, name, records: found };
      if (found.length === 0)
        return check('dkim', 'fail', domain, `no DKIM key record at ${name}`, { fix, detail });
      const ours = dkimPublicKey(key);
      const parsed = found.map((t) => parseKeyRecord(t));
      if (parsed.some((p) => p.ok && p.value.publicKey === ours))
        return check('dkim', 'pass', domain, `${name} publishes our ${key.algorithm} key`, { detail });
      const revoked = parsed.some((p) => !p.ok && p.revoked);
      const broken = parsed.find((p) => !p.ok && !p.revoked);
      const summary = revoked
        ? `${name} publishes a revoked key (empty p=): mail signed with selector ${key.selector} fails DKIM`
        : broken !== undefined && !broken.ok && !parsed.some((p) => p.ok)
          ? `${name} is not a usable DKIM key record (${broken.reason})`
          : `${name} publishes a different key than ours: mail signed with selector ${key.selector} fails DKIM`;
      return check('dkim', 'fail', domain, summary, { fix, detail });
    }),
  );
}

export async function checkDmarc(
  deps: DoctorDeps,
  domain: string,
  records: readonly DnsRecord[],
): Promise<DoctorCheck> {
  const name = `_dmarc.${domain}`;
  const fix = `publish: ${zoneLine(expected(records, name, 'TXT'))}`;
  let at = name;
  let txt = await deps.resolver.txt(name);
  if (txt.kind === 'error') return lookupWarn('dmarc', domain, `${name} TXT`, txt.reason);
  let found = txt.kind === 'ok' ? txt.records.filter(isDmarcRecord) : [];
  // RFC 7489 §6.6.3: a subdomain without its own record falls back on its organizational domain's.
  const org = organizationalDomain(domain);
  if (found.length === 0 && org !== domain) {
    at = `_dmarc.${org}`;
    txt = await deps.resolver.txt(at);
    if (txt.kind === 'error') return lookupWarn('dmarc', domain, `${at} TXT`, txt.reason);
    found = txt.kind === 'ok' ? txt.records.filter(isDmarcRecord) : [];
  }
  if (found.length === 0) return check('dmarc', 'fail', domain, `no DMARC record at ${name}`, { fix });
  if (found.length > 1) {
    return check(
      'dmarc',
      'fail',
      domain,
      `${found.length} DMARC records at ${at}: receivers ignore them all (RFC 7489 §6.6.3)`,
      {
        fix: `keep one, e.g. ${fix}`,
        detail: { records: found },
      },
    );
  }
  const record = found[0]!;
  const parsed = parseDmarcRecord(record);
  if (!parsed.ok) {
    return check('dmarc', 'fail', domain, `DMARC record at ${at} has no valid policy (p=)`, {
      fix,
      detail: { record },
    });
  }
  const detail = { name: at, record, policy: parsed.record.p, rua: parsed.record.rua.map((u) => u.uri) };
  const where = at === name ? name : `${at} (organizational domain)`;
  if (parsed.record.p === 'none') {
    return check('dmarc', 'warn', domain, `${where} p=none: mail failing DMARC is still delivered`, {
      fix: `once reports are clean, move to quarantine: ${zoneLine(expected(records, name, 'TXT'))}`,
      detail,
    });
  }
  return check('dmarc', 'pass', domain, `${where} p=${parsed.record.p}`, { detail });
}

function tagValue(record: string, tag: string): string | null {
  for (const part of record.split(';')) {
    const m = /^\s*([A-Za-z0-9_]+)\s*=\s*(.*?)\s*$/s.exec(part);
    if (m !== null && m[1]!.toLowerCase() === tag) return m[2]!;
  }
  return null;
}

export async function checkMtaSts(
  deps: DoctorDeps,
  domain: string,
  records: readonly DnsRecord[],
): Promise<DoctorCheck> {
  const name = `_mta-sts.${domain}`;
  const want = expected(records, name, 'TXT');
  const serving = deps.config.mtaStsPublish.listeners.length > 0;
  const txt = await deps.resolver.txt(name);
  if (txt.kind === 'error') return lookupWarn('mta-sts', domain, `${name} TXT`, txt.reason);
  const found = txt.kind === 'ok' ? txt.records.filter((t) => /^v=STSv1\s*(;|$)/.test(t)) : [];
  if (found.length === 0) {
    return check('mta-sts', 'warn', domain, `no MTA-STS record at ${name}: senders may deliver without TLS`, {
      fix: serving
        ? `publish: ${zoneLine(want)}`
        : `add a [[listeners]] service = "mta-sts" for https://mta-sts.${domain}/, then publish: ${zoneLine(want)}`,
    });
  }
  if (found.length > 1) {
    return check(
      'mta-sts',
      'fail',
      domain,
      `${found.length} MTA-STS records at ${name}: senders ignore the policy (RFC 8461 §3.1)`,
      {
        fix: `keep one: ${zoneLine(want)}`,
        detail: { records: found },
      },
    );
  }
  const record = found[0]!;
  const id = tagValue(record, 'id');
  const detail = { record, id };
  if (id === null || !/^[A-Za-z0-9]{1,32}$/.test(id)) {
    return check(
      'mta-sts',
      'fail',
      domain,
      `MTA-STS record at ${name} has no valid id= (1–32 letters and digits)`,
      {
        fix: `publish: ${zoneLine(want)}`,
        detail,
      },
    );
  }
  if (serving) {
    const ours = mtaStsPolicyId(mtaStsPolicyText(deps.config));
    if (id !== ours) {
      return check(
        'mta-sts',
        'warn',
        domain,
        `${name} id=${id}, but the policy served now has id=${ours}: senders keep the old policy`,
        {
          fix: `publish: ${zoneLine(want)}`,
          detail: { ...detail, expectedId: ours },
        },
      );
    }
  }
  return check(
    'mta-sts',
    'pass',
    domain,
    `${name} v=STSv1 id=${id}${serving ? ' (matches the policy served)' : ''}`,
    {
      detail,
    },
  );
}

export async function checkTlsRpt(
  deps: DoctorDeps,
  domain: string,
  records: readonly DnsRecord[],
): Promise<DoctorCheck> {
  const name = `_smtp._tls.${domain}`;
  const fix = `publish: ${zoneLine(expected(records, name, 'TXT'))}`;
  const txt = await deps.resolver.txt(name);
  if (txt.kind === 'error') return lookupWarn('tls-rpt', domain, `${name} TXT`, txt.reason);
  const found = txt.kind === 'ok' ? txt.records.filter((t) => /^v=TLSRPTv1\s*(;|$)/.test(t)) : [];
  if (found.length === 0)
    return check(
      'tls-rpt',
      'warn',
      domain,
      `no TLS-RPT record at ${name}: no one tells you when TLS to you fails`,
      { fix },
    );
  if (found.length > 1) {
    return check(
      'tls-rpt',
      'warn',
      domain,
      `${found.length} TLS-RPT records at ${name}: senders send no reports (RFC 8460 §3)`,
      {
        fix: `keep one, e.g. ${fix}`,
        detail: { records: found },
      },
    );
  }
  const record = found[0]!;
  const rua = tagValue(record, 'rua');
  const uris = (rua ?? '')
    .split(',')
    .map((u) => u.trim())
    .filter((u) => /^(mailto|https):/i.test(u));
  if (uris.length === 0)
    return check('tls-rpt', 'fail', domain, `TLS-RPT record at ${name} has no mailto: or https: rua=`, {
      fix,
      detail: { record },
    });
  return check('tls-rpt', 'pass', domain, `${name} rua=${uris.join(',')}`, { detail: { record, rua: uris } });
}

export async function checkDomain(
  deps: DoctorDeps,
  domainArg: string,
  ourAddresses: readonly string[],
): Promise<DoctorCheck[]> {
  const domain = toALabel(domainArg);
  if (domain === null) throw new Error(`not a domain name: ${JSON.stringify(domainArg)}`);
  const { records, keys } = await dnsRecordsFor(deps.config, domain);
  const [mx, spf, dkim, dmarc, sts, rpt] = await Promise.all([
    checkMx(deps, domain, records),
    checkSpf(deps, domain, records, ourAddresses),
    checkDkim(deps, domain, records, keys),
    checkDmarc(deps, domain, records),
    checkMtaSts(deps, domain, records),
    checkTlsRpt(deps, domain, records),
  ]);
  return [mx, spf, ...dkim, dmarc, sts, rpt];
}

/** The whole report: this host first, then each domain in the order given (A-labels or U-labels). */
export async function runDoctor(deps: DoctorDeps, domains: readonly string[]): Promise<DoctorReport> {
  const aLabels: string[] = [];
  for (const d of domains) {
    const a = toALabel(d);
    if (a === null) throw new Error(`not a domain name: ${JSON.stringify(d)}`);
    if (!aLabels.includes(a)) aLabels.push(a);
  }
  const hostAddresses = await checkHostAddresses(deps);
  const [ptr, cert, ports, relay, perDomain] = await Promise.all([
    checkPtr(deps, hostAddresses.addresses),
    checkCertificate(deps),
    checkListeners(deps),
    checkOpenRelay(deps),
    Promise.all(aLabels.map((d) => checkDomain(deps, d, hostAddresses.addresses))),
  ]);
  const checks = [...hostAddresses.checks, ...ptr, ...cert, ...ports, relay, ...perDomain.flat()];
  const counts = { pass: 0, warn: 0, fail: 0 };
  for (const c of checks) counts[c.status]++;
  return { hostname: hostOf(deps.config), domains: aLabels, ok: counts.fail === 0, counts, checks };
}
