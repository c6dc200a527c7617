// The SASL drive without a socket: a fake shell, a stub authenticator, the real AuthGuard. What is offered
// before and after TLS, success and failure through the POP3 and IMAP framings, the per-connection failure
// cap, lockouts (per address, then per account even with the right password), EXTERNAL's certificate.
import assert from 'node:assert/strict';
import type { X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import { defaultConfig } from '../config/config.ts';
import type { LogFields, Logger } from '../core/ports.ts';
import { AuthGuard } from '../policy/auth-guard.ts';
import { imapAuthFraming } from '../protocol/imap/auth-framing.ts';
import { formatPop3AuthStep, pop3AuthFraming } from '../protocol/pop3/auth-framing.ts';
import type { SaslFraming } from '../protocol/sasl/framing.ts';
import type { VerifyContext } from './authenticator.ts';
import { SaslDrive, type SaslStep } from './sasl-drive.ts';

const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');

function logger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const log = (name: string, _fields?: LogFields): void => void lines.push(name);
  const l = { lines, event: log, warn: log, error: log, debug: log, child: () => l };
  return l;
}

interface Setup<Out> {
  framing: SaslFraming<Out>;
  tls?: boolean;
  plaintextAllowed?: boolean;
  mechanisms?: string[];
  guard?: AuthGuard;
  peer?: { x509: X509Certificate; authorized: boolean } | null;
  seen?: VerifyContext[];
  ip?: string;
}

const config = {
  hostname: 'mx.example.test',
  auth: { ...defaultConfig().auth, failureDelayMs: 0, maxFailuresPerConnection: 3 },
};
const clock = { nowMs: () => 1_700_000_000_000 };

function drive<Out>(s: Setup<Out>): SaslDrive<Out> {
  return new SaslDrive({
    deps: {
      config,
      clock,
      clientCas: [],
      authGuard:
        s.guard ??
        new AuthGuard({ lockoutThreshold: 100, lockoutWindowMs: 60_000, lockoutMs: 60_000 }, clock),
      // pencil is the password of every account; the account is the user name as sent.
      authenticator: {
        verify: async (request, ctx) => {
          await Promise.resolve();
          s.seen?.push(ctx);
          if (request.kind === 'password') {
            const ok = request.password === 'pencil';
            return {
              answer: ok ? { kind: 'accept', identity: request.username } : { kind: 'reject' },
              account: request.username,
              detail: '',
            };
          }
          if (request.kind === 'certificate' && ctx.peer !== null)
            return {
              answer: { kind: 'accept', identity: 'cert-user@example.test' },
              account: null,
              detail: '',
            };
          return { answer: { kind: 'reject' }, account: null, detail: '' };
        },
      },
    },
    shell: {
      remoteIp: s.ip ?? '192.0.2.7',
      tls: s.tls === false ? null : { version: 'TLSv1.3', cipher: 'TLS_AES_128_GCM_SHA256' },
      closed: false,
      channelBinding: () => undefined,
      clientCertificate: () => s.peer ?? null,
    },
    log: logger(),
    framing: s.framing,
    mechanisms: s.mechanisms ?? ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256', 'PLAIN', 'LOGIN', 'EXTERNAL'],
    plaintextAllowed: s.plaintextAllowed ?? false,
    events: { verify: 'test.auth.verify', succeeded: 'test.auth.succeeded' },
  });
}

/** POP3's framing as the wire lines it produces, so assertions read as what a client sees. */
const pop3Wire: SaslFraming<string> = {
  challenge: (data) => formatPop3AuthStep(pop3AuthFraming.challenge(data)),
  success: () => formatPop3AuthStep(pop3AuthFraming.success()),
  failure: (reason) => formatPop3AuthStep(pop3AuthFraming.failure(reason)),
};

const out = <Out>(step: SaslStep<Out> | null): Out => {
  assert.ok(step !== null);
  return step.out;
};

describe('SASL drive', () => {
  it('offers nothing before TLS, the SCRAM/password ones with plaintext allowed, all of them after TLS', () => {
    assert.deepEqual(drive({ framing: pop3Wire, tls: false }).offered(), []);
    assert.deepEqual(drive({ framing: pop3Wire, tls: false, plaintextAllowed: true }).offered(), [
      'SCRAM-SHA-256',
      'PLAIN',
      'LOGIN',
    ]);
    assert.equal(drive({ framing: pop3Wire }).offered().length, 5);
  });

  it('POP3: PLAIN with an initial response (RFC 5034), UTF-8 user, +OK', async () => {
    const d = drive({ framing: pop3Wire });
    const step = await d.start('PLAIN', b64('\0jürgen@example.test\0pencil'));
    assert.equal(out(step), '+OK Logged in\r\n');
    assert.equal(step?.kind === 'success' && step.identity, 'jürgen@example.test');
  });

  it('POP3: LOGIN challenges are "+ base64", "*" cancels, wrong password is -ERR [AUTH]', async () => {
    const d = drive({ framing: pop3Wire });
    assert.equal(out(await d.start('LOGIN', null)), `+ ${b64('Username:')}\r\n`);
    assert.equal(out(await d.line('*')), '-ERR Authentication cancelled\r\n');
    await d.start('LOGIN', null);
    await d.line(b64('日本@example.test'));
    assert.equal(out(await d.line(b64('wrong'))), '-ERR [AUTH] Authentication failed\r\n');
    assert.equal(out(await d.line(b64('x'))), '-ERR Command not valid in this state\r\n');
  });

  it('IMAP: tagged completions; PLAIN before TLS is NO [PRIVACYREQUIRED]; bad base64 is BAD', async () => {
    const clear = drive({ framing: imapAuthFraming('A1'), tls: false });
    assert.equal(
      out(await clear.start('PLAIN', null)),
      'A1 NO [PRIVACYREQUIRED] Encryption required for requested authentication mechanism\r\n',
    );
    const d = drive({ framing: imapAuthFraming('A2') });
    assert.equal(out(await d.start('PLAIN', null)), '+ \r\n');
    assert.equal(out(await d.line('not base64!')), 'A2 BAD Malformed authentication response\r\n');
    assert.equal(out(await d.start('GSSAPI', null)), 'A2 NO [CANNOT] Unrecognized authentication type\r\n');
    assert.equal(
      out(await d.start('PLAIN', b64('\0a@example.test\0pencil'))),
      'A2 OK Authentication successful\r\n',
    );
  });

  it('the third failure on a connection says close', async () => {
    const d = drive({ framing: pop3Wire });
    const fail = async (): Promise<SaslStep<string> | null> =>
      d.start('PLAIN', b64('\0a@example.test\0nope'));
    assert.deepEqual([(await fail())?.kind, (await fail())?.kind], ['failure', 'failure']);
    const third = await fail();
    assert.equal(third?.kind === 'failure' && third.close, true);
    assert.equal(d.failures, 3);
  });

  it('lockouts are shared: a locked address is refused at once; a locked account fails even with its password', async () => {
    const guard = new AuthGuard({ lockoutThreshold: 2, lockoutWindowMs: 60_000, lockoutMs: 60_000 }, clock);
    const first = drive({ framing: pop3Wire, guard });
    await first.start('PLAIN', b64('\0victim@example.test\0guess1'));
    await first.start('PLAIN', b64('\0victim@example.test\0guess2'));
    // Another connection (an IMAP one) from the same address: the address is locked.
    const second = drive({ framing: imapAuthFraming('B1'), guard });
    assert.equal(
      out(await second.start('PLAIN', b64('\0victim@example.test\0pencil'))),
      'B1 NO [UNAVAILABLE] Too many failed authentications, try again later\r\n',
    );
    // From elsewhere the address is not locked, the account is: the right password still fails.
    const elsewhere = drive({ framing: pop3Wire, guard, ip: '198.51.100.9' });
    assert.equal(
      out(await elsewhere.start('PLAIN', b64('\0victim@example.test\0pencil'))),
      '-ERR [SYS/TEMP] Temporary authentication failure, try again later\r\n',
    );
  });

  it('EXTERNAL hands the client certificate to the authenticator; without one it is not offered', async () => {
    const seen: VerifyContext[] = [];
    const withCert = drive({
      framing: pop3Wire,
      peer: { x509: {} as X509Certificate, authorized: true },
      seen,
    });
    assert.equal(out(await withCert.start('EXTERNAL', '=')), '+OK Logged in\r\n');
    assert.equal(seen[0]?.peer?.authorized, true);
    const noExternal = drive({ framing: pop3Wire, mechanisms: ['PLAIN'] });
    assert.equal(
      out(await noExternal.start('EXTERNAL', '=')),
      '-ERR Unrecognized authentication mechanism\r\n',
    );
  });
});
