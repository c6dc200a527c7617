// Tests of the Received: trace header (RFC 5321 §4.4, RFC 5322 §3.6.7, protocol names RFC 3848 and
// RFC 6531 §3.7.3): byte-exact golden files under testdata/ (plain, TLS, HELO, UTF-8, hostile input), and
// a property that no client-chosen text (EHLO argument, reverse-DNS name, recipient) can end the header,
// start another one, leave a comment or quoted string open, or move the date.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { formatMailbox } from '../../core/address.ts';
import type { ClientInfo } from '../../core/envelope.ts';
import { escapeHeaderText, formatReceived, protocolName, type ReceivedInput } from './received.ts';

const NOW_MS = Date.UTC(2024, 0, 2, 3, 4, 5);
const DATE = 'Tue, 2 Jan 2024 03:04:05 +0000';

const golden = (name: string): Buffer => readFileSync(new URL(`testdata/${name}`, import.meta.url));

function client(over: Partial<ClientInfo> = {}): ClientInfo {
  return {
    ip: '192.0.2.10',
    port: 40000,
    hostname: null,
    helo: 'client.example.org',
    esmtp: true,
    tls: null,
    authUser: null,
    service: 'smtp',
    ...over,
  };
}

function input(over: Partial<ReceivedInput> = {}): ReceivedInput {
  return {
    client: client(),
    hostname: 'mx.example.test',
    queueId: '01HQ3R7G2K',
    forRecipient: 'alice@example.test',
    smtputf8: false,
    nowMs: NOW_MS,
    ...over,
  };
}

/** Byte-exact comparison, with a readable diff when it fails. */
function assertGolden(actual: string, name: string): void {
  const expected = golden(name);
  const got = Buffer.from(actual, 'utf8');
  assert.equal(got.toString('utf8'), expected.toString('utf8'), name);
  assert.ok(got.equals(expected), `${name}: bytes differ`);
}

describe('golden output', () => {
  test('ESMTP, no TLS, one recipient, no reverse DNS name: "unknown" in its place (RFC 5321 §4.4)', () => {
    assertGolden(formatReceived(input()), 'received-plain.txt');
  });

  test('with and without a confirmed reverse DNS name: "(name [ip])" or "(unknown [ip])"', () => {
    const first = (c: ClientInfo): string => formatReceived(input({ client: c })).split('\r\n')[0]!;
    assert.equal(
      first(client({ hostname: 'client.example.org' })),
      'Received: from client.example.org (client.example.org [192.0.2.10])',
    );
    assert.equal(
      first(client({ hostname: null })),
      'Received: from client.example.org (unknown [192.0.2.10])',
    );
    assert.equal(first(client({ hostname: '' })), 'Received: from client.example.org (unknown [192.0.2.10])');
    assert.equal(
      first(client({ ip: '::1', hostname: 'localhost', helo: '[IPv6:::1]' })),
      'Received: from [IPv6:::1] (localhost [IPv6:::1])',
    );
  });

  test('ESMTPS over IPv6 with a reverse DNS name, TLS details, several recipients (no "for")', () => {
    const out = formatReceived(
      input({
        client: client({
          ip: '2001:db8::25',
          hostname: 'client.example.net',
          helo: 'mail.example.net',
          tls: { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' },
        }),
        queueId: '01HQ3R7G2L',
        forRecipient: null,
      }),
    );
    assertGolden(out, 'received-tls.txt');
  });

  test('HELO (plain SMTP) and a quoted recipient', () => {
    const out = formatReceived(
      input({
        client: client({ ip: '198.51.100.7', helo: 'old.example.org', esmtp: false }),
        queueId: '01HQ3R7G2M',
        forRecipient: formatMailbox({ local: 'john doe', domain: 'example.test' }),
      }),
    );
    assertGolden(out, 'received-helo.txt');
  });

  test('SMTPUTF8 over TLS: UTF8SMTPS, UTF-8 kept in HELO name and recipient', () => {
    const out = formatReceived(
      input({
        client: client({
          ip: '192.0.2.11',
          helo: 'bücher.example',
          tls: { version: 'TLSv1.2', cipher: 'ECDHE-RSA-AES128-GCM-SHA256' },
        }),
        queueId: '01HQ3R7G2N',
        forRecipient: 'jöran@bücher.example',
        smtputf8: true,
      }),
    );
    assertGolden(out, 'received-utf8.txt');
  });

  test('hostile EHLO argument, reverse DNS name and recipient stay inside their places', () => {
    const out = formatReceived(
      input({
        client: client({
          ip: '192.0.2.66',
          helo: 'evil\r\nX-Injected: yes (a)b\\c "x";é\u0085\u0000\u007f',
          hostname: 'evil\r\n(rdns)\\ ',
        }),
        queueId: '01HQ3R7G2P',
        forRecipient: formatMailbox({ local: 'a"b c', domain: 'example.test' }),
      }),
    );
    assertGolden(out, 'received-hostile.txt');
  });
});

describe('protocolName (RFC 3848, RFC 6531 §3.7.3)', () => {
  const tls = { version: 'TLSv1.3', cipher: 'X' };
  const cases: [Partial<ClientInfo>, boolean, string][] = [
    [{ esmtp: false }, false, 'SMTP'],
    [{ esmtp: false, tls }, false, 'SMTP'],
    [{}, false, 'ESMTP'],
    [{ tls }, false, 'ESMTPS'],
    [{ authUser: 'u@example.test' }, false, 'ESMTPA'],
    [{ tls, authUser: 'u@example.test' }, false, 'ESMTPSA'],
    [{}, true, 'UTF8SMTP'],
    [{ tls }, true, 'UTF8SMTPS'],
    [{ authUser: 'u@example.test' }, true, 'UTF8SMTPA'],
    [{ tls, authUser: 'u@example.test' }, true, 'UTF8SMTPSA'],
  ];
  for (const [over, utf8, name] of cases) {
    test(name, () => assert.equal(protocolName(client(over), utf8), name));
  }
});

describe('escapeHeaderText', () => {
  test('comment specials are escaped, controls and spaces become "?"', () => {
    assert.equal(escapeHeaderText('a(b)c\\d'), 'a\\(b\\)c\\\\d');
    assert.equal(escapeHeaderText('a b\tc\r\nd\x00\x7f'), 'a?b?c??d??');
  });

  test('non-ASCII only when allowed, never C1 controls', () => {
    assert.equal(escapeHeaderText('bücher'), 'b?cher');
    assert.equal(escapeHeaderText('bücher', true), 'bücher');
    assert.equal(escapeHeaderText('a\u0085\u009fb\u00a0', true), 'a??b\u00a0');
  });

  test('at most 255 characters', () => {
    assert.equal(escapeHeaderText('x'.repeat(1000)).length, 255);
  });
});

// --- structure property ------------------------------------------------------------------------------

/**
 * Read an unfolded Received: value the way an RFC 5322 parser does: comments nest and take quoted-pairs,
 * quoted strings take quoted-pairs, a backslash elsewhere is just a character. Returns the text outside
 * comments (quoted strings shown as Q) or a description of what is left open.
 */
function outsideText(value: string): { text: string } | { open: string } {
  let depth = 0;
  let inQuote = false;
  let text = '';
  for (let i = 0; i < value.length; i++) {
    const ch = value[i]!;
    if (inQuote) {
      if (ch === '\\') i++;
      else if (ch === '"') inQuote = false;
      continue;
    }
    if (depth > 0) {
      if (ch === '\\') i++;
      else if (ch === '(') depth++;
      else if (ch === ')') depth--;
      if (depth === 0) text += ' ';
      continue;
    }
    if (ch === '(') depth = 1;
    else if (ch === ')') return { open: `stray ")" at ${i}` };
    else if (ch === '"') {
      inQuote = true;
      text += 'Q';
    } else text += ch;
  }
  if (depth > 0) return { open: 'comment' };
  if (inQuote) return { open: 'quoted string' };
  return { text: text.replace(/\s+/g, ' ').trim() };
}

test('property: client text never breaks the header, a comment, a quoted string or the date', () => {
  const hostile = fc.oneof(
    fc.string({ unit: 'binary', minLength: 1, maxLength: 300 }),
    fc.string({
      unit: fc.constantFrom(
        '(',
        ')',
        '\\',
        '"',
        ';',
        '<',
        '>',
        '\r',
        '\n',
        '\t',
        ' ',
        'a',
        'é',
        '\u0085',
        '\x00',
        ':',
      ),
      minLength: 1,
      maxLength: 40,
    }),
  );
  const recipient = fc
    .string({
      unit: fc.constantFrom('a', ' ', '"', '\\', '(', ')', ';', 'é', '<', '>'),
      minLength: 1,
      maxLength: 20,
    })
    .map((local) => formatMailbox({ local, domain: 'example.test' }));
  fc.assert(
    fc.property(
      hostile,
      fc.option(hostile),
      fc.option(recipient),
      fc.boolean(),
      fc.boolean(),
      fc.boolean(),
      (helo, hostname, forRecipient, esmtp, withTls, smtputf8) => {
        const tls = withTls ? { version: 'TLSv1.3', cipher: 'TLS_AES_128_GCM_SHA256' } : null;
        const out = formatReceived(
          input({ client: client({ helo, hostname, esmtp, tls }), forRecipient, smtputf8, queueId: 'QID1' }),
        );
        // One header: CRLF only as folding (followed by a tab) and at the very end.
        assert.ok(out.endsWith('\r\n'));
        const lines = out.slice(0, -2).split('\r\n');
        assert.ok(lines[0]!.startsWith('Received: from '));
        for (const [i, line] of lines.entries()) {
          assert.doesNotMatch(line, /[\r\n]/, `bare CR/LF in line ${i}`);
          if (i > 0) assert.ok(line.startsWith('\t'), `line ${i} is not a continuation`);
          assert.doesNotMatch(
            line.slice(i > 0 ? 1 : 0),
            /[\x00-\x1f\x7f\u0080-\u009f]/,
            `control in line ${i}`,
          );
          if (!smtputf8) assert.doesNotMatch(line, /[^\x00-\x7f]/, `non-ASCII in line ${i}`);
        }
        const value = lines.join(' ').slice('Received:'.length);
        const parsed = outsideText(value);
        assert.ok('text' in parsed, `left open: ${'open' in parsed ? parsed.open : ''}\n${out}`);
        // Outside comments: exactly the expected tokens, the date after the one and only ";".
        const proto = protocolName(client({ esmtp, tls }), smtputf8);
        const shape = new RegExp(
          `^from [^ ;]+ by mx\\.example\\.test with ${proto} id QID1(?: for <[^ ;]+>;| ;) ${DATE.replace(/[+]/g, '\\+')}$`,
        );
        assert.match(parsed.text, shape, out);
      },
    ),
    { numRuns: 3000 },
  );
});
