import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Effect, ImapSessionOptions, ImapState } from './session.ts';
import { ImapSession } from './session.ts';

const enc = new TextEncoder();

function session(o: Partial<ImapSessionOptions> = {}): ImapSession {
  return new ImapSession({ starttls: true, tlsActive: false, plaintextAuth: false, maxErrors: 5, ...o });
}

/** A tiny driver: every command completes OK in the state a table says; APPEND literals accepted. */
function drive(s: ImapSession, input: Uint8Array[], next: Record<string, ImapState> = {}): string {
  let out = '';
  const run = (effects: Effect[]): void => {
    for (const e of effects) {
      switch (e.kind) {
        case 'write':
          out += e.text;
          break;
        case 'execute':
          out += `<exec ${e.tag} ${e.command.kind}>`;
          run(s.resume(next[e.command.kind]));
          break;
        case 'append-literal':
          out += `<literal ${e.mailbox} ${e.sizeBytes}>`;
          run(s.acceptLiteral(e.sync));
          break;
        case 'append-data':
          out += `<data ${e.chunk.length}${e.last ? ' last' : ''}>`;
          break;
        case 'line':
          out += `<line ${new TextDecoder().decode(e.line)}>`;
          run(s.resume());
          break;
        case 'violation':
        case 'close':
          out += `<${e.kind}>`;
          break;
      }
    }
  };
  for (const chunk of input) run(s.feed(chunk));
  return out;
}

describe('ImapSession: states (RFC 9051 §3, §6)', () => {
  test('before login only the not-authenticated and any-state commands run', () => {
    const out = drive(session({ plaintextAuth: true }), [
      enc.encode('a CAPABILITY\r\nb SELECT INBOX\r\nc NOOP\r\n'),
    ]);
    assert.equal(out, '<exec a capability>b BAD Authenticate first\r\n<exec c noop>');
  });

  test('a pipelined LOGIN then SELECT is judged in the state LOGIN leaves', () => {
    const out = drive(
      session({ plaintextAuth: true }),
      [enc.encode('a LOGIN jürgen pw\r\nb SELECT INBOX\r\nc FETCH 1 FLAGS\r\n')],
      { login: 'authenticated', select: 'selected' },
    );
    assert.equal(out, '<exec a login><exec b select><exec c fetch>');
  });

  test('NOTIFY runs once logged in, selected or not (RFC 5465 §3.1)', () => {
    const s = session({ tlsActive: true });
    assert.equal(drive(s, [enc.encode('a NOTIFY NONE\r\n')]), 'a BAD Authenticate first\r\n');
    drive(s, [enc.encode('b LOGIN jürgen p\r\n')], { login: 'authenticated' });
    assert.equal(drive(s, [enc.encode('c NOTIFY SET (personal (MailboxName))\r\n')]), '<exec c notify>');
    drive(s, [enc.encode('d SELECT 日本\r\n')], { select: 'selected' });
    assert.equal(drive(s, [enc.encode('e NOTIFY NONE\r\n')]), '<exec e notify>');
  });

  test('selected-state commands are refused when nothing is selected', () => {
    const s = session({ tlsActive: true });
    drive(s, [enc.encode('a LOGIN u p\r\n')], { login: 'authenticated' });
    assert.equal(drive(s, [enc.encode('b FETCH 1 FLAGS\r\n')]), 'b BAD No mailbox selected\r\n');
  });

  test('LOGIN before TLS: NO [PRIVACYREQUIRED] (LOGINDISABLED); after TLS it runs', () => {
    const s = session();
    assert.equal(s.loginDisabled, true);
    assert.equal(
      drive(s, [enc.encode('a LOGIN u p\r\n')]),
      'a NO [PRIVACYREQUIRED] LOGIN needs TLS first (STARTTLS)\r\n',
    );
    assert.equal(drive(s, [enc.encode('b STARTTLS\r\n')]), '<exec b starttls>');
    s.tlsStarted();
    assert.equal(s.loginDisabled, false);
    assert.equal(drive(s, [enc.encode('c LOGIN u p\r\n')]), '<exec c login>');
  });

  test('STARTTLS twice, or where not offered, is BAD', () => {
    assert.match(
      drive(session({ tlsActive: true }), [enc.encode('a STARTTLS\r\n')]),
      /^a BAD TLS is already active/,
    );
    assert.match(
      drive(session({ starttls: false }), [enc.encode('a STARTTLS\r\n')]),
      /^a BAD STARTTLS is not offered/,
    );
  });

  test('bytes pipelined after STARTTLS are dropped at the handshake, never run', () => {
    const s = session();
    let out = '';
    for (const e of s.feed(enc.encode('a STARTTLS\r\nb LOGIN evil pw\r\n'))) {
      if (e.kind === 'execute') out += `<exec ${e.tag}>`;
    }
    assert.equal(out, '<exec a>');
    assert.equal(s.tlsStarted() > 0, true);
    assert.deepEqual(s.resume(), []);
  });

  test('ENABLE only in the authenticated state (RFC 5161 §3.1)', () => {
    const s = session({ tlsActive: true });
    drive(s, [enc.encode('a LOGIN u p\r\nb SELECT INBOX\r\n')], {
      login: 'authenticated',
      select: 'selected',
    });
    assert.equal(
      drive(s, [enc.encode('c ENABLE CONDSTORE\r\n')]),
      'c BAD ENABLE is valid only before SELECT\r\n',
    );
  });

  test('a flood of bad commands ends with BYE and a close', () => {
    const out = drive(session({ maxErrors: 3 }), [enc.encode('x\r\ny\r\nz\r\nw NOOP\r\n')]);
    assert.match(out, /\* BYE Too many invalid commands\r\n<close>$/);
    assert.equal(out.includes('<exec w'), false);
  });
});

describe('ImapSession: literals', () => {
  test('a synchronizing string literal gets "+ Ready"; a non-synchronizing one does not', () => {
    const s = session({ plaintextAuth: true });
    assert.equal(drive(s, [enc.encode('a LOGIN {7}\r\n')]), '+ Ready\r\n');
    assert.equal(drive(s, [enc.encode('jürgen pw\r\n')]), '<exec a login>');
    assert.equal(
      drive(session({ plaintextAuth: true }), [enc.encode('a LOGIN {1+}\r\nu pw\r\n')]),
      '<exec a login>',
    );
  });

  test('APPEND: the literal is offered to the driver first, then its bytes stream', () => {
    const s = session({ tlsActive: true });
    drive(s, [enc.encode('a LOGIN u p\r\n')], { login: 'authenticated' });
    const out = drive(s, [
      enc.encode('b APPEND Entwürfe (\\Seen) {5}\r\n'),
      enc.encode('hel'),
      enc.encode('lo\r\n'),
    ]);
    assert.equal(out, '<literal Entwürfe 5>+ Ready\r\n<data 3><data 2 last><exec b append>');
  });

  test('a refused APPEND literal: the NO, and the rest of that command is dropped', () => {
    const s = session({ tlsActive: true });
    drive(s, [enc.encode('a LOGIN u p\r\n')], { login: 'authenticated' });
    let out = '';
    for (const e of s.feed(enc.encode('b APPEND nowhere {5+}\r\nhello\r\nc NOOP\r\n'))) {
      if (e.kind === 'append-literal') {
        for (const f of s.refuseLiteral('b', 'b NO [TRYCREATE] Mailbox does not exist\r\n')) {
          if (f.kind === 'write') out += f.text;
          if (f.kind === 'execute') out += `<exec ${f.tag}>`;
          if (f.kind === 'append-data') out += '<data>';
        }
      }
    }
    assert.equal(out, 'b NO [TRYCREATE] Mailbox does not exist\r\n<exec c>');
  });

  test('APPEND before login: its literal is refused, never read as commands', () => {
    const out = drive(session(), [enc.encode('a APPEND INBOX {11+}\r\nb LOGOUT\r\n\r\n')]);
    assert.match(out, /^a BAD Authenticate first\r\n/);
    assert.equal(out.includes('<exec b'), false);
  });
});

describe('ImapSession: raw lines (IDLE, AUTHENTICATE)', () => {
  test('after expectLine the next line is handed over raw', () => {
    const s = session({ tlsActive: true });
    drive(s, [enc.encode('a LOGIN u p\r\n')], { login: 'authenticated' });
    const effects = s.feed(enc.encode('b IDLE\r\nDONE\r\n'));
    assert.deepEqual(
      effects.map((e) => e.kind),
      ['execute'],
    );
    const raw = s.expectLine();
    assert.equal(raw.length, 1);
    assert.equal(raw[0]!.kind, 'line');
    assert.equal(new TextDecoder().decode((raw[0] as { line: Uint8Array }).line), 'DONE');
  });
});

describe('ImapSession: any fragmentation gives the same responses', () => {
  const stream = enc.encode(
    [
      'a1 CAPABILITY',
      'a2 LOGIN "jürgen@example.test" {8}',
      'pass wor',
      'a3 SELECT "Entwürfe"',
      'bad command here',
      'a4 FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (FROM)])',
      'a5 APPEND INBOX {10+}',
      '0123456789',
      'a6 APPEND INBOX (\\Seen) {4}',
      'abcd',
      'a7 UID STORE 1:3 +FLAGS.SILENT (\\Deleted)',
      'a8 LOGOUT',
      '',
    ].join('\r\n'),
  );
  const states = { login: 'authenticated', select: 'selected' } as const;
  const whole = drive(session({ tlsActive: true }), [stream], states);

  test('the reference run executes every command', () => {
    for (const tag of ['a1', 'a2', 'a3', 'a4', 'a5', 'a6', 'a7', 'a8'])
      assert.match(whole, new RegExp(`<exec ${tag} `));
  });

  test('byte by byte, and 300 random splits, answer identically (data events merged)', () => {
    const norm = (s: string): string => {
      // Data chunk sizes depend on the split; their total does not.
      return s.replace(/(?:<data \d+(?: last)?>)+/g, (m) => {
        const total = [...m.matchAll(/<data (\d+)/g)].reduce((n, x) => n + Number(x[1]), 0);
        return `<data ${total}>`;
      });
    };
    const expected = norm(whole);
    const bytes = [...stream].map((b) => Uint8Array.of(b));
    assert.equal(norm(drive(session({ tlsActive: true }), bytes, states)), expected);
    let seed = 42;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (let run = 0; run < 300; run++) {
      const parts: Uint8Array[] = [];
      for (let i = 0; i < stream.length;) {
        const n = 1 + rnd(40);
        parts.push(stream.subarray(i, i + n));
        i += n;
      }
      assert.equal(norm(drive(session({ tlsActive: true }), parts, states)), expected);
    }
  });
});
