// The SMTP state machine stepped without sockets: every command, bad sequences, limits, DATA/BDAT framing.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { formatMailbox } from '../../core/address.ts';
import { Replies, type Reply } from '../../core/reply.ts';
import { SmtpSession, type Effect, type SessionOptions } from './session.ts';

const baseOptions: SessionOptions = {
  hostname: 'mx.example.test',
  maxMessageBytes: 10_000,
  maxRecipients: 3,
  maxTransactions: 5,
  maxCommandLineBytes: 512,
  maxTextLineBytes: 1000,
  longLines: 'reject',
  maxErrors: 10,
  maxJunkCommands: 100,
  bareLineEndings: 'reject',
  vrfy: false,
  starttls: true,
  tlsActive: false,
  authMechanisms: [],
  plaintextAuth: false,
  requireAuth: false,
};

/** Drives a session like the server would: resolves every decision with acceptance, collects output. */
class Harness {
  session: SmtpSession;
  effects: Effect[] = [];
  messages: Uint8Array[] = [];
  private current: Uint8Array[] | null = null;
  rejectRcpt = new Set<string>();
  /** BURL: what each URL names (absent: nothing, so the fetch fails). */
  urls = new Map<string, Uint8Array>();
  burlUsers: string[] = [];
  /** LMTP: the per-recipient replies the driver gives at commit (null: none). */
  recipientReplies: Reply[] | null = null;

  constructor(options: Partial<SessionOptions> = {}) {
    this.session = new SmtpSession({ ...baseOptions, ...options });
    this.handle(this.session.greet());
  }

  send(text: string | Uint8Array): this {
    const bytes = typeof text === 'string' ? new TextEncoder().encode(text) : text;
    this.handle(this.session.feed(bytes));
    return this;
  }

  handleAll(effects: Effect[]): void {
    this.handle(effects);
  }

  private handle(effects: Effect[]): void {
    for (const e of effects) {
      this.effects.push(e);
      switch (e.kind) {
        case 'check-mail':
          this.handle(this.session.resolve({ kind: 'mail', reply: null }));
          break;
        case 'check-rcpt': {
          const address = formatMailbox(e.rcpt.recipient);
          if (this.rejectRcpt.has(address)) {
            this.handle(this.session.resolve({ kind: 'rcpt', recipient: null, reply: Replies.noSuchUser }));
          } else {
            this.handle(
              this.session.resolve({
                kind: 'rcpt',
                recipient: { address, notify: e.rcpt.notify, orcpt: e.rcpt.orcpt },
                reply: Replies.recipientOk,
              }),
            );
          }
          break;
        }
        case 'begin-message':
          this.current = [];
          break;
        case 'data':
          this.current!.push(e.chunk);
          break;
        case 'abort-message':
          this.current = null;
          break;
        case 'burl':
          this.burlUsers.push(e.user);
          this.handle(
            this.session.resolve({ kind: 'burl', content: this.urls.get(e.url) ?? null, reply: null }),
          );
          break;
        case 'commit':
          this.messages.push(Buffer.concat(this.current!));
          this.current = null;
          this.handle(
            this.session.resolve({
              kind: 'commit',
              reply: Replies.queued,
              ...(this.recipientReplies === null ? {} : { recipientReplies: this.recipientReplies }),
            }),
          );
          break;
        default:
          break;
      }
    }
  }

  /** Reply codes in order ("250", "354", ...), with enhanced code when present. */
  get replies(): string[] {
    return this.effects
      .filter((e): e is Extract<Effect, { kind: 'reply' }> => e.kind === 'reply')
      .map((e) => `${e.reply.code}${e.reply.enhanced ? ' ' + e.reply.enhanced : ''}`);
  }

  get closed(): boolean {
    return this.effects.some((e) => e.kind === 'close');
  }

  text(i: number): string {
    return new TextDecoder().decode(this.messages[i]);
  }
}

const ENVELOPE = 'EHLO client.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\n';

describe('SMTP session: commands and sequence', () => {
  it('greets with 220 and the hostname', () => {
    const h = new Harness();
    const first = h.effects[0];
    assert.equal(first?.kind, 'reply');
    if (first?.kind === 'reply') {
      assert.equal(first.reply.code, 220);
      assert.match(first.reply.text, /^mx\.example\.test ESMTP/);
    }
  });

  it('EHLO advertises the extensions, STARTTLS only before TLS', () => {
    const h = new Harness().send('EHLO client.test\r\n');
    const ehlo = h.effects.find((e) => e.kind === 'reply' && e.reply.code === 250);
    assert.ok(ehlo && ehlo.kind === 'reply');
    const ext = ehlo.extraLines ?? [];
    for (const x of [
      'PIPELINING',
      'SIZE 10000',
      '8BITMIME',
      'SMTPUTF8',
      'ENHANCEDSTATUSCODES',
      'CHUNKING',
      'BINARYMIME',
      'DSN',
      'STARTTLS',
    ]) {
      assert.ok(ext.includes(x), `missing ${x}`);
    }
    // RFC 9422 LIMITS with the session's real limits.
    const limits = ext.find((l) => l.startsWith('LIMITS '));
    assert.match(limits ?? '', /^LIMITS MAILMAX=[1-9]\d* RCPTMAX=[1-9]\d*$/);
    const tls = new Harness({ tlsActive: true }).send('EHLO client.test\r\n');
    const e2 = tls.effects.find((e) => e.kind === 'reply' && e.reply.code === 250);
    assert.ok(e2 && e2.kind === 'reply' && !(e2.extraLines ?? []).includes('STARTTLS'));
  });

  it('HELO has no extensions and refuses ESMTP parameters', () => {
    const h = new Harness().send('HELO client.test\r\nMAIL FROM:<a@example.org> SIZE=10\r\n');
    assert.deepEqual(h.replies.slice(1), ['250', '555 5.5.4']);
  });

  it('MAIL before EHLO, RCPT before MAIL, DATA before RCPT are 503 5.5.1', () => {
    const h = new Harness().send('MAIL FROM:<a@example.org>\r\n');
    assert.deepEqual(h.replies.slice(1), ['503 5.5.1']);
    const h2 = new Harness().send('EHLO c.test\r\nRCPT TO:<b@example.test>\r\nDATA\r\n');
    assert.deepEqual(h2.replies.slice(2), ['503 5.5.1', '503 5.5.1']);
    const h3 = new Harness().send('EHLO c.test\r\nMAIL FROM:<a@example.org>\r\nDATA\r\n');
    assert.deepEqual(h3.replies.slice(2), ['250 2.1.0', '554 5.5.1']);
  });

  it('nested MAIL is refused', () => {
    const h = new Harness().send('EHLO c.test\r\nMAIL FROM:<a@example.org>\r\nMAIL FROM:<a@example.org>\r\n');
    assert.deepEqual(h.replies.slice(2), ['250 2.1.0', '503 5.5.1']);
  });

  it('a whole transaction: 250, 354, message with dot-unstuffing, 250', () => {
    const h = new Harness().send(
      ENVELOPE + 'DATA\r\nSubject: hi\r\n\r\n..leading dot\r\nbody\r\n.\r\nQUIT\r\n',
    );
    assert.deepEqual(h.replies.slice(1), ['250', '250 2.1.0', '250 2.1.5', '354', '250 2.0.0', '221 2.0.0']);
    assert.equal(h.text(0), 'Subject: hi\r\n\r\n.leading dot\r\nbody\r\n');
    assert.ok(h.closed);
  });

  it('RSET clears the transaction; NOOP, HELP and VRFY answer', () => {
    const h = new Harness().send(ENVELOPE + 'RSET\r\nDATA\r\nNOOP\r\nHELP\r\nVRFY bob\r\n');
    assert.deepEqual(h.replies.slice(4), ['250 2.0.0', '503 5.5.1', '250 2.0.0', '214 2.0.0', '252 2.1.5']);
  });

  it('unknown commands are 500 5.5.1, EXPN 502, AUTH where not enabled 503', () => {
    const h = new Harness().send('FOO\r\nEXPN x\r\nAUTH PLAIN\r\n');
    assert.deepEqual(h.replies.slice(1), ['500 5.5.1', '502 5.5.1', '503 5.5.1']);
  });

  it('bad EHLO argument is 501', () => {
    const h = new Harness().send('EHLO\r\nEHLO a b\r\n');
    assert.deepEqual(h.replies.slice(1), ['501 5.5.4', '501 5.5.4']);
  });

  it('too many errors ends with 421 and close', () => {
    const h = new Harness({ maxErrors: 3 }).send('X\r\nY\r\nZ\r\nNOOP\r\n');
    assert.deepEqual(h.replies.slice(1), ['500 5.5.1', '500 5.5.1', '500 5.5.1', '421 4.7.0']);
    assert.ok(h.closed);
  });

  it('command lines over the limit get 500 5.5.6 and are never buffered whole', () => {
    const h = new Harness({ maxCommandLineBytes: 512 });
    h.send('NOOP ' + 'x'.repeat(600));
    assert.ok(h.session.bufferedBytes <= 512);
    h.send('x'.repeat(10_000) + '\r\nNOOP\r\n');
    assert.deepEqual(h.replies.slice(1), ['500 5.5.6', '250 2.0.0']);
  });

  it('bare LF in a command is refused by default, accepted with normalize', () => {
    const h = new Harness().send('NOOP\n');
    assert.deepEqual(h.replies.slice(1), ['500 5.5.2']);
    const n = new Harness({ bareLineEndings: 'normalize' }).send('NOOP\n');
    assert.deepEqual(n.replies.slice(1), ['250 2.0.0']);
  });
});

describe('SMTP session: commands without mail (max_junk_commands)', () => {
  const junkReplies = (n: number, reply: string): string[] => Array<string>(n).fill(reply);

  for (const [line, reply] of [
    ['NOOP', '250 2.0.0'],
    ['RSET', '250 2.0.0'],
    ['HELP', '214 2.0.0'],
    ['VRFY postmaster', '252 2.1.5'],
    ['EHLO c.test', '250'],
  ] as const) {
    it(`${line} repeated: answered up to the limit, then 421 4.7.0 and a close`, () => {
      const h = new Harness({ maxJunkCommands: 5 });
      h.send(`${line}\r\n`.repeat(7));
      assert.deepEqual(h.replies.slice(1), [...junkReplies(5, reply), '421 4.7.0']);
      assert.ok(h.closed);
    });
  }

  it('refused commands (unknown verbs, EXPN, syntax errors) count too, below max_errors', () => {
    const h = new Harness({ maxJunkCommands: 3, maxErrors: 100 });
    h.send('FOO\r\nEXPN x\r\nEHLO\r\nNOOP\r\nNOOP\r\n');
    assert.deepEqual(h.replies.slice(1), ['500 5.5.1', '502 5.5.1', '501 5.5.4', '421 4.7.0']);
    assert.ok(h.closed);
  });

  it('accepted MAIL, RCPT and DATA do not count, and an accepted message starts the count again', () => {
    const h = new Harness({ maxJunkCommands: 3, maxTransactions: 100 });
    const message = 'MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\nDATA\r\nHi\r\n.\r\n';
    h.send(`EHLO c.test\r\nNOOP\r\nNOOP\r\n${message}RSET\r\nNOOP\r\nNOOP\r\n${message}`);
    assert.equal(h.messages.length, 2);
    assert.equal(h.closed, false);
    h.send('NOOP\r\nNOOP\r\nNOOP\r\nNOOP\r\n');
    assert.deepEqual(h.replies.slice(-4), ['250 2.0.0', '250 2.0.0', '250 2.0.0', '421 4.7.0']);
  });

  it('RCPT refused past max_recipients counts, so a client cannot loop on 452 forever', () => {
    // EHLO is the first of the four; a refused line gets its refusal before the 421.
    const h = new Harness({ maxJunkCommands: 4, maxRecipients: 1 });
    h.send('EHLO c.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\n');
    h.send('RCPT TO:<c@example.test>\r\n'.repeat(5));
    assert.deepEqual(h.replies.slice(4), [...junkReplies(4, '452 4.5.3'), '421 4.7.0']);
    assert.ok(h.closed);
  });

  it('0 means no limit', () => {
    const h = new Harness({ maxJunkCommands: 0 });
    h.send('NOOP\r\n'.repeat(1000));
    assert.equal(h.replies.length, 1001);
    assert.equal(h.closed, false);
  });
});

describe('SMTP session: ESMTP parameters', () => {
  it('SIZE over the limit is refused at MAIL with 552 5.3.4', () => {
    const h = new Harness().send('EHLO c.test\r\nMAIL FROM:<a@example.org> SIZE=20000\r\n');
    assert.deepEqual(h.replies.slice(2), ['552 5.3.4']);
  });

  it('content over the size limit is consumed to the end, then 552', () => {
    const body = ('x'.repeat(99) + '\r\n').repeat(200);
    const h = new Harness().send(ENVELOPE + 'DATA\r\n' + body + '.\r\nNOOP\r\n');
    assert.deepEqual(h.replies.slice(4), ['354', '552 5.3.4', '250 2.0.0']);
    assert.equal(h.messages.length, 0);
  });

  it('unknown MAIL parameter gets 555 5.5.4, bad syntax 501', () => {
    const h = new Harness().send(
      'EHLO c.test\r\nMAIL FROM:<a@example.org> FOO=1\r\nMAIL FROM:a@example.org\r\n',
    );
    assert.deepEqual(h.replies.slice(2), ['555 5.5.4', '501 5.1.7']);
  });

  it('DSN parameters are parsed and carried with the recipient', () => {
    const h = new Harness().send(
      'EHLO c.test\r\nMAIL FROM:<a@example.org> RET=HDRS ENVID=QQ+2B1\r\n' +
        'RCPT TO:<b@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b+40example.test\r\nDATA\r\nx\r\n.\r\n',
    );
    const commit = h.effects.find((e) => e.kind === 'commit');
    assert.ok(commit && commit.kind === 'commit');
    assert.equal(commit.transaction.params.ret, 'HDRS');
    assert.equal(commit.transaction.params.envid, 'QQ+1');
    assert.deepEqual(commit.transaction.recipients[0], {
      address: 'b@example.test',
      notify: ['SUCCESS', 'FAILURE'],
      orcpt: { addrType: 'rfc822', address: 'b@example.test' },
    });
  });

  it('NOTIFY=NEVER mixed with others is a syntax error', () => {
    const h = new Harness().send(
      'EHLO c.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test> NOTIFY=NEVER,SUCCESS\r\n',
    );
    assert.deepEqual(h.replies.slice(2), ['250 2.1.0', '501 5.5.4']);
  });

  it('UTF-8 addresses need SMTPUTF8 (553 5.6.7), and work with it', () => {
    const h = new Harness().send('EHLO c.test\r\nMAIL FROM:<jöran@example.org>\r\n');
    assert.deepEqual(h.replies.slice(2), ['553 5.6.7']);
    const u = new Harness().send(
      'EHLO c.test\r\nMAIL FROM:<jöran@example.org> SMTPUTF8\r\nRCPT TO:<用户@example.test>\r\nDATA\r\nx\r\n.\r\n',
    );
    assert.deepEqual(u.replies.slice(2), ['250 2.1.0', '250 2.1.5', '354', '250 2.0.0']);
    const commit = u.effects.find((e) => e.kind === 'commit');
    assert.ok(commit?.kind === 'commit' && commit.transaction.recipients[0]?.address === '用户@example.test');
  });

  it('recipient limit gives 452 4.5.3 but keeps the accepted ones', () => {
    const h = new Harness().send(
      'EHLO c.test\r\nMAIL FROM:<a@example.org>\r\n' +
        [1, 2, 3, 4].map((i) => `RCPT TO:<u${i}@example.test>\r\n`).join('') +
        'DATA\r\nx\r\n.\r\n',
    );
    assert.deepEqual(h.replies.slice(2), [
      '250 2.1.0',
      '250 2.1.5',
      '250 2.1.5',
      '250 2.1.5',
      '452 4.5.3',
      '354',
      '250 2.0.0',
    ]);
  });

  it('the null sender is accepted', () => {
    const h = new Harness().send('EHLO c.test\r\nMAIL FROM:<>\r\n');
    assert.deepEqual(h.replies.slice(2), ['250 2.1.0']);
  });

  it('<Postmaster> without domain is accepted as a recipient', () => {
    const h = new Harness().send('EHLO c.test\r\nMAIL FROM:<>\r\nRCPT TO:<Postmaster>\r\n');
    assert.deepEqual(h.replies.slice(2), ['250 2.1.0', '250 2.1.5']);
  });

  it('transactions per connection are limited', () => {
    const one = 'MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\nDATA\r\nx\r\n.\r\n';
    const h = new Harness({ maxTransactions: 2 }).send('EHLO c.test\r\n' + one + one + one);
    assert.equal(h.messages.length, 2);
    assert.equal(h.replies.at(-1), '421 4.7.0');
    assert.ok(h.closed);
  });
});

describe('SMTP session: DATA framing and smuggling', () => {
  const variants: Array<[string, string]> = [
    ['\\n.\\n', '\n.\n'],
    ['\\r.\\r', '\r.\r'],
    ['\\r.\\n', '\r.\n'],
    ['\\n.\\r\\n', '\n.\r\n'],
    ['\\r\\n.\\n', '\r\n.\n'],
    ['\\r\\n.\\r', '\r\n.\r'],
    ['\\n.\\r', '\n.\r'],
    ['\\r.\\r\\n', '\r.\r\n'],
  ];
  for (const [name, seq] of variants) {
    it(`"${name}" never ends DATA and never yields a second message`, () => {
      const smuggled = `MAIL FROM:<evil@example.org>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\nsmuggled\r\n`;
      const h = new Harness().send(
        ENVELOPE + 'DATA\r\nSubject: x\r\n\r\nbody' + seq + smuggled + '\r\n.\r\n',
      );
      // Exactly one end of data: the real one. With reject policy the message is refused.
      assert.deepEqual(h.replies.slice(4), ['354', '550 5.6.11']);
      assert.equal(h.messages.length, 0);
      const n = new Harness({ bareLineEndings: 'normalize' }).send(
        ENVELOPE + 'DATA\r\nSubject: x\r\n\r\nbody' + seq + smuggled + '\r\n.\r\n',
      );
      assert.deepEqual(n.replies.slice(4), ['354', '250 2.0.0']);
      assert.equal(n.messages.length, 1);
      assert.ok(n.text(0).includes('MAIL FROM:<evil@example.org>'));
      assert.ok(!/[^\r]\n|\r[^\n]/.test(n.text(0)), 'normalized content is CRLF-clean');
    });
  }

  it('a long text line is refused with 550 5.6.0 by default', () => {
    const h = new Harness().send(ENVELOPE + 'DATA\r\n' + 'x'.repeat(1200) + '\r\n.\r\n');
    assert.deepEqual(h.replies.slice(4), ['354', '550 5.6.0']);
    const a = new Harness({ longLines: 'accept' }).send(
      ENVELOPE + 'DATA\r\n' + 'x'.repeat(1200) + '\r\n.\r\n',
    );
    assert.deepEqual(a.replies.slice(4), ['354', '250 2.0.0']);
  });

  it('a message with a line over 998 octets is committed marked longLines, whatever max_text_line_bytes allows', () => {
    const commits = (h: Harness): (true | undefined)[] =>
      h.effects.flatMap((e) => (e.kind === 'commit' ? [e.longLines] : []));
    for (const options of [{ longLines: 'accept' as const }, { maxTextLineBytes: 2000 }]) {
      const long = new Harness(options).send(ENVELOPE + 'DATA\r\n' + 'x'.repeat(999) + '\r\n.\r\n');
      assert.deepEqual(commits(long), [true], JSON.stringify(options));
      const bdat = new Harness(options).send(ENVELOPE + `BDAT 1001 LAST\r\n${'x'.repeat(999)}\r\n`);
      assert.deepEqual(commits(bdat), [true], `BDAT ${JSON.stringify(options)}`);
      const fits = new Harness(options).send(ENVELOPE + 'DATA\r\n' + 'x'.repeat(998) + '\r\n.\r\n');
      assert.deepEqual(commits(fits), [undefined]);
    }
  });

  it('an empty message is fine', () => {
    const h = new Harness().send(ENVELOPE + 'DATA\r\n.\r\n');
    assert.deepEqual(h.replies.slice(4), ['354', '250 2.0.0']);
    assert.equal(h.messages[0]!.length, 0);
  });

  it('any fragmentation of the same stream gives the same messages and replies', () => {
    const stream = new TextEncoder().encode(
      ENVELOPE +
        'DATA\r\nA: b\r\n\r\n..x\r\n.\r\n.y\r\n\r\n.\r\n' +
        'MAIL FROM:<a@example.org>\r\nRCPT TO:<c@example.test>\r\nBDAT 8\r\nab\r\ncd\r\nBDAT 3 LAST\r\nxyzQUIT\r\n',
    );
    const whole = new Harness().send(stream);
    assert.equal(whole.messages.length, 2);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: stream.length }), { maxLength: 20 }), (cuts) => {
        const points = [...new Set(cuts)].sort((a, b) => a - b);
        const h = new Harness();
        let prev = 0;
        for (const p of [...points, stream.length]) {
          h.send(stream.subarray(prev, p));
          prev = p;
        }
        assert.deepEqual(h.replies, whole.replies);
        assert.deepEqual(
          h.messages.map((m) => Buffer.from(m).toString()),
          whole.messages.map((m) => Buffer.from(m).toString()),
        );
      }),
      { numRuns: 300 },
    );
  });
});

describe('SMTP session: BDAT (RFC 3030)', () => {
  it('chunks are concatenated and LAST commits', () => {
    const h = new Harness().send(ENVELOPE + 'BDAT 5\r\nHelloBDAT 9 LAST\r\n, world\r\n');
    assert.deepEqual(h.replies.slice(4), ['250 2.0.0', '250 2.0.0']);
    assert.equal(h.text(0), 'Hello, world\r\n');
  });

  it('BDAT 0 LAST ends the message', () => {
    const h = new Harness().send(ENVELOPE + 'BDAT 3\r\nabcBDAT 0 LAST\r\n');
    assert.deepEqual(h.replies.slice(4), ['250 2.0.0', '250 2.0.0']);
    assert.equal(h.text(0), 'abc');
  });

  it('a refused BDAT still consumes its chunk', () => {
    const h = new Harness().send('EHLO c.test\r\nBDAT 6\r\nNOOP\r\nNOOP\r\n');
    // "NOOP\r\n" was chunk data (refused with 503), the second NOOP is a command.
    assert.deepEqual(h.replies.slice(1), ['250', '503 5.5.1', '250 2.0.0']);
  });

  it('DATA after BDAT in the same transaction is refused', () => {
    const h = new Harness().send(ENVELOPE + 'BDAT 2\r\nabDATA\r\n');
    assert.deepEqual(h.replies.slice(4), ['250 2.0.0', '503 5.5.1']);
  });

  it('BINARYMIME requires BDAT and passes bytes untouched', () => {
    const h = new Harness().send(
      'EHLO c.test\r\nMAIL FROM:<a@example.org> BODY=BINARYMIME\r\nRCPT TO:<b@example.test>\r\nDATA\r\n',
    );
    assert.deepEqual(h.replies.slice(2), ['250 2.1.0', '250 2.1.5', '503 5.5.1']);
    const b = new Harness().send(
      'EHLO c.test\r\nMAIL FROM:<a@example.org> BODY=BINARYMIME\r\nRCPT TO:<b@example.test>\r\nBDAT 4 LAST\r\na\nb\r',
    );
    assert.deepEqual(b.replies.slice(2), ['250 2.1.0', '250 2.1.5', '250 2.0.0']);
    assert.equal(b.text(0), 'a\nb\r');
  });

  it('bare LF inside a 7bit BDAT chunk is refused by default', () => {
    const h = new Harness().send(ENVELOPE + 'BDAT 4 LAST\r\na\nb\n');
    assert.deepEqual(h.replies.slice(4), ['550 5.6.11']);
  });

  it('an oversized BDAT transaction gets 552 and later chunks 503', () => {
    const big = 'x'.repeat(6000);
    const h = new Harness().send(ENVELOPE + `BDAT 6000\r\n${big}BDAT 6000\r\n${big}BDAT 1 LAST\r\nxNOOP\r\n`);
    assert.deepEqual(h.replies.slice(4), ['250 2.0.0', '552 5.3.4', '503 5.5.1', '250 2.0.0']);
    assert.equal(h.messages.length, 0);
  });
});

describe('SMTP session: STARTTLS', () => {
  it('discards commands pipelined after STARTTLS and requires a new EHLO', () => {
    const h = new Harness().send('EHLO c.test\r\nSTARTTLS\r\nMAIL FROM:<evil@example.org>\r\n');
    assert.deepEqual(h.replies.slice(1), ['250', '220 2.0.0']);
    assert.ok(h.effects.some((e) => e.kind === 'starttls'));
    assert.ok(h.effects.some((e) => e.kind === 'violation'));
    assert.equal(h.session.pending?.kind, 'tls');
    const after = h.session.resolve({ kind: 'tls', ok: true });
    assert.ok(
      !after.some((e) => e.kind === 'reply' || e.kind === 'check-mail'),
      'injected MAIL was not executed',
    );
    h.send('MAIL FROM:<a@example.org>\r\n');
    assert.equal(h.replies.at(-1), '503 5.5.1');
    h.send('EHLO c.test\r\n');
    const ehlo = h.effects.filter((e) => e.kind === 'reply' && e.reply.code === 250).at(-1);
    assert.ok(ehlo?.kind === 'reply' && !(ehlo.extraLines ?? []).includes('STARTTLS'));
  });

  it('STARTTLS when unavailable is 502, inside a transaction 503', () => {
    const h = new Harness({ starttls: false }).send('EHLO c.test\r\nSTARTTLS\r\n');
    assert.deepEqual(h.replies.slice(2), ['502 5.5.1']);
    const t = new Harness().send('EHLO c.test\r\nMAIL FROM:<a@example.org>\r\nSTARTTLS\r\n');
    assert.deepEqual(t.replies.slice(2), ['250 2.1.0', '503 5.5.1']);
  });
});

describe('SMTP session: REQUIRETLS (RFC 8689)', () => {
  it('is offered only over TLS; MAIL FROM REQUIRETLS without TLS is 530 5.7.10, with TLS it is kept', () => {
    const h = new Harness().send('EHLO c.test\r\nMAIL FROM:<a@example.org> REQUIRETLS\r\n');
    const before = h.effects.find((e) => e.kind === 'reply' && e.reply.code === 250);
    assert.ok(before?.kind === 'reply' && !(before.extraLines ?? []).includes('REQUIRETLS'));
    assert.equal(h.replies.at(-1), '530 5.7.10');
    h.send('STARTTLS\r\n');
    h.session.resolve({ kind: 'tls', ok: true });
    h.send('EHLO c.test\r\n');
    const after = h.effects.filter((e) => e.kind === 'reply' && e.reply.code === 250).at(-1);
    assert.ok(after?.kind === 'reply' && (after.extraLines ?? []).includes('REQUIRETLS'));
    h.send('MAIL FROM:<jürgen@example.org> SMTPUTF8 REQUIRETLS\r\n');
    assert.ok(h.effects.some((e) => e.kind === 'check-mail' && e.params.requireTls === true));
    const bad = new Harness().send('EHLO c.test\r\nMAIL FROM:<a@example.org> REQUIRETLS=YES\r\n');
    assert.equal(bad.replies.at(-1), '501 5.5.4');
  });
});

describe('SMTP session: AUTH (RFC 4954 wire side)', () => {
  const auth: Partial<SessionOptions> = {
    authMechanisms: ['SCRAM-SHA-256-PLUS', 'PLAIN', 'LOGIN', 'EXTERNAL'],
    requireAuth: true,
  };
  const ehloLines = (h: Harness): readonly string[] => {
    const e = h.effects.filter((x) => x.kind === 'reply' && x.reply.code === 250).at(-1);
    return e?.kind === 'reply' ? (e.extraLines ?? []) : [];
  };

  it('AUTH is not advertised before TLS, and MAIL asks for STARTTLS first', () => {
    const h = new Harness(auth).send('EHLO c.test\r\nAUTH PLAIN AGEAYg==\r\nMAIL FROM:<a@example.org>\r\n');
    assert.ok(!ehloLines(h).some((l) => l.startsWith('AUTH')));
    assert.deepEqual(h.replies.slice(2), ['538 5.7.11', '530 5.7.0']);
    assert.ok(!h.effects.some((e) => e.kind === 'auth-start'));
  });

  it('after TLS, AUTH lists the mechanisms including -PLUS and EXTERNAL', () => {
    const h = new Harness({ ...auth, tlsActive: true }).send('EHLO c.test\r\n');
    assert.ok(ehloLines(h).includes('AUTH SCRAM-SHA-256-PLUS PLAIN LOGIN EXTERNAL'));
  });

  it('plaintext AUTH where allowed offers only mechanisms that do not need TLS', () => {
    const h = new Harness({ ...auth, plaintextAuth: true }).send('EHLO c.test\r\n');
    assert.ok(ehloLines(h).includes('AUTH PLAIN LOGIN'));
  });

  it('drives a challenge/response exchange and then allows MAIL', () => {
    const h = new Harness({ ...auth, tlsActive: true });
    const effects = h.session.feed(new TextEncoder().encode('EHLO c.test\r\nAUTH LOGIN\r\n'));
    const start = effects.find((e) => e.kind === 'auth-start');
    assert.deepEqual(start, { kind: 'auth-start', mechanism: 'LOGIN', initialResponse: null });
    assert.equal(h.session.phase, 'auth');
    let out = h.session.resolve({ kind: 'auth', outcome: { kind: 'challenge', challenge: 'VXNlcm5hbWU6' } });
    assert.deepEqual(
      out.filter((e) => e.kind === 'reply').map((e) => e.kind === 'reply' && e.reply.code),
      [334],
    );
    // A response line, even one that looks like a command, goes to the SASL exchange.
    out = h.session.feed(new TextEncoder().encode('MAIL FROM:<x@y>\r\n'));
    assert.deepEqual(
      out.filter((e) => e.kind === 'auth-response'),
      [{ kind: 'auth-response', line: 'MAIL FROM:<x@y>' }],
    );
    out = h.session.resolve({ kind: 'auth', outcome: { kind: 'success', user: 'a@example.test' } });
    assert.equal(h.session.authUser, 'a@example.test');
    assert.equal(h.session.phase, 'ready');
    out = h.session.feed(new TextEncoder().encode('AUTH PLAIN\r\n'));
    assert.ok(out.some((e) => e.kind === 'reply' && e.reply === Replies.authAlreadyDone));
  });

  it('"*" cancels with 501 5.7.0; unknown mechanism 504; AUTH in a transaction 503', () => {
    const h = new Harness({ ...auth, tlsActive: true, requireAuth: false });
    h.session.feed(new TextEncoder().encode('EHLO c.test\r\nAUTH PLAIN\r\n'));
    h.session.resolve({ kind: 'auth', outcome: { kind: 'challenge', challenge: '' } });
    const out = h.session.feed(new TextEncoder().encode('*\r\nAUTH FOO\r\nMAIL FROM:<a@example.org>\r\n'));
    const codes = out
      .filter((e) => e.kind === 'reply')
      .map((e) => (e.kind === 'reply' ? `${e.reply.code} ${e.reply.enhanced}` : ''));
    assert.deepEqual(codes, ['501 5.7.0', '504 5.5.4']);
    const t = new Harness({ ...auth, tlsActive: true, requireAuth: false }).send(
      'EHLO c.test\r\nMAIL FROM:<a@example.org>\r\nAUTH PLAIN AGEAYg==\r\n',
    );
    assert.deepEqual(t.replies.slice(2), ['250 2.1.0', '503 5.5.1']);
  });

  it('the last allowed failure: its own reply, then 421 4.7.0, then the close', () => {
    const h = new Harness({ ...auth, tlsActive: true });
    h.session.feed(new TextEncoder().encode('EHLO c.test\r\nAUTH PLAIN AGEAYg==\r\n'));
    const out = h.session.resolve({
      kind: 'auth',
      outcome: { kind: 'failure', reply: Replies.authBadBase64, close: true },
    });
    const kinds = out
      .filter((e) => e.kind === 'reply' || e.kind === 'close')
      .map((e) => (e.kind === 'reply' ? `${e.reply.code} ${e.reply.enhanced}` : e.kind));
    assert.deepEqual(kinds, ['501 5.5.2', '421 4.7.0', 'close']);
  });

  it('an over-long SASL response is refused with 500 5.5.6 and the exchange ends', () => {
    const h = new Harness({ ...auth, tlsActive: true });
    h.session.feed(new TextEncoder().encode('EHLO c.test\r\nAUTH PLAIN\r\n'));
    h.session.resolve({ kind: 'auth', outcome: { kind: 'challenge', challenge: '' } });
    const out = h.session.feed(new TextEncoder().encode('A'.repeat(13_000) + '\r\nNOOP\r\n'));
    const codes = out.filter((e) => e.kind === 'reply').map((e) => (e.kind === 'reply' ? e.reply.code : 0));
    assert.deepEqual(codes, [500, 250]);
  });
});

describe('SMTP session: BURL (RFC 4468)', () => {
  const submission: Partial<SessionOptions> = {
    authMechanisms: ['PLAIN'],
    tlsActive: true,
    requireAuth: true,
    burl: true,
  };
  const enc = new TextEncoder();

  /** EHLO, AUTH PLAIN as `user`, MAIL and RCPT; then the given commands. */
  function submit(h: Harness, user: string, commands: string): Harness {
    h.send('EHLO c.test\r\nAUTH PLAIN AGEAYg==\r\n');
    h.session.resolve({ kind: 'auth', outcome: { kind: 'success', user } });
    return h.send(`MAIL FROM:<${user}> SMTPUTF8\r\nRCPT TO:<b@example.test>\r\n${commands}`);
  }

  for (const user of ['a@example.org', 'jürgen@exämple.org']) {
    it(`a BURL chunk, a BDAT chunk and a BURL LAST make one message (${user})`, () => {
      const h = new Harness(submission);
      h.urls.set('imap://x/INBOX/;uid=1;urlauth=submit+a:internal:00', enc.encode('Subject: 日本\r\n\r\n'));
      h.urls.set('imap://x/INBOX/;uid=2;urlauth=submit+a:internal:00', enc.encode('Grüße\r\n'));
      submit(
        h,
        user,
        'BURL imap://x/INBOX/;uid=1;urlauth=submit+a:internal:00\r\nBDAT 4\r\nHi, BURL imap://x/INBOX/;uid=2;urlauth=submit+a:internal:00 LAST\r\n',
      );
      assert.deepEqual(h.replies.slice(-3), ['250 2.0.0', '250 2.0.0', '250 2.0.0']);
      assert.equal(h.text(0), 'Subject: 日本\r\n\r\nHi, Grüße\r\n');
      assert.deepEqual(h.burlUsers, [user, user]);
    });
  }

  it('EHLO offers BURL imap only where the listener does', () => {
    const lines = (h: Harness): readonly string[] => {
      const e = h.effects.find((x) => x.kind === 'reply' && x.reply.code === 250);
      return e?.kind === 'reply' ? (e.extraLines ?? []) : [];
    };
    assert.ok(lines(new Harness(submission).send('EHLO c.test\r\n')).includes('BURL imap'));
    assert.ok(
      !lines(new Harness({ ...submission, burl: false }).send('EHLO c.test\r\n')).includes('BURL imap'),
    );
    const mx = new Harness().send(`${ENVELOPE}BURL imap://x/INBOX/;uid=1 LAST\r\n`);
    assert.equal(mx.replies.at(-1), '500 5.5.1');
  });

  it('a URL that names nothing ends the transaction with 554 5.6.6; later chunks get 503', () => {
    const h = submit(
      new Harness(submission),
      'a@example.org',
      'BDAT 3\r\nabcBURL imap://x/nothing LAST\r\nBDAT 1 LAST\r\nz',
    );
    assert.deepEqual(h.replies.slice(-3), ['250 2.0.0', '554 5.6.6', '503 5.5.1']);
    assert.equal(h.messages.length, 0);
    assert.ok(h.effects.some((e) => e.kind === 'abort-message'));
  });

  it('BURL needs AUTH, MAIL and RCPT first, and never follows DATA', () => {
    const anon = new Harness({ ...submission, requireAuth: false }).send(
      `${ENVELOPE}BURL imap://x/a LAST\r\n`,
    );
    assert.equal(anon.replies.at(-1), '530 5.7.0');
    const h = new Harness(submission);
    h.send('EHLO c.test\r\nAUTH PLAIN AGEAYg==\r\n');
    h.session.resolve({ kind: 'auth', outcome: { kind: 'success', user: '日本@例え.jp' } });
    h.send('BURL imap://x/a LAST\r\n');
    assert.equal(h.replies.at(-1), '503 5.5.1');
    const syntax = submit(new Harness(submission), '日本@例え.jp', 'BURL\r\nBURL a b c\r\n');
    assert.deepEqual(syntax.replies.slice(-2), ['501 5.5.4', '501 5.5.4']);
  });
});

describe('LMTP session (RFC 2033)', () => {
  const lmtp = { lmtp: true } as const;

  it('greets as LMTP, takes LHLO and refuses EHLO and HELO with 500 5.5.1', () => {
    const h = new Harness(lmtp);
    const first = h.effects[0];
    assert.ok(first?.kind === 'reply' && / LMTP /.test(first.reply.text));
    h.send('EHLO c.test\r\nHELO c.test\r\nLHLO c.test\r\n');
    assert.deepEqual(h.replies.slice(1), ['500 5.5.1', '500 5.5.1', '250']);
    const lhlo = h.effects.findLast((e) => e.kind === 'reply');
    assert.ok(lhlo?.kind === 'reply' && lhlo.extraLines?.includes('PIPELINING') === true);
  });

  it('LHLO is an unknown command to SMTP', () => {
    const h = new Harness().send('LHLO c.test\r\n');
    assert.equal(h.replies.at(-1), '500 5.5.1');
  });

  it('after DATA: one reply per accepted recipient, in RCPT order, refused ones skipped', () => {
    const h = new Harness({ ...lmtp, maxRecipients: 10 });
    h.rejectRcpt.add('nobody@example.test');
    h.recipientReplies = [Replies.queued, Replies.mailboxFull, Replies.queued];
    h.send(
      'LHLO c.test\r\nMAIL FROM:<a@example.org> SMTPUTF8\r\nRCPT TO:<b@example.test>\r\n' +
        'RCPT TO:<nobody@example.test>\r\nRCPT TO:<jürgen@example.test>\r\nRCPT TO:<日本@example.test>\r\n' +
        'DATA\r\nSubject: x\r\n\r\nhi\r\n.\r\n',
    );
    assert.deepEqual(h.replies.slice(-4), ['354', '250 2.0.0', '552 5.2.2', '250 2.0.0']);
    assert.equal(h.session.phase, 'ready');
  });

  it('BDAT LAST gets the per-recipient replies too; the same reply for each when the driver gives one', () => {
    const h = new Harness(lmtp);
    h.send(
      'LHLO c.test\r\nMAIL FROM:<>\r\nRCPT TO:<b@example.test>\r\nRCPT TO:<c@example.test>\r\n' +
        'BDAT 4\r\nab\r\nBDAT 4 LAST\r\ncd\r\n',
    );
    assert.deepEqual(h.replies.slice(-3), ['250 2.0.0', '250 2.0.0', '250 2.0.0']);
  });
});

describe('XCLIENT in the session', () => {
  it('offered and taken only when the driver says the client may: a new greeting, EHLO again', () => {
    const h = new Harness({ xclient: true }).send('EHLO p.test\r\n');
    const ext = h.effects.findLast((e) => e.kind === 'reply');
    assert.ok(
      ext?.kind === 'reply' && ext.extraLines?.some((l) => l.startsWith('XCLIENT NAME ADDR')) === true,
    );
    h.send('XCLIENT ADDR=192.0.2.1 LOGIN=alice@example.test\r\n');
    const effect = h.effects.findLast((e) => e.kind === 'xclient');
    assert.ok(effect?.kind === 'xclient' && effect.attributes.get('ADDR') === '192.0.2.1');
    h.handleAll(h.session.resolve({ kind: 'xclient', reply: null, login: 'alice@example.test' }));
    assert.equal(h.replies.at(-1), '220');
    assert.equal(h.session.phase, 'connected');
    assert.equal(h.session.authUser, 'alice@example.test');
    const no = new Harness().send('EHLO p.test\r\nXCLIENT ADDR=192.0.2.1\r\n');
    assert.equal(no.replies.at(-1), '550 5.7.0');
  });
});
