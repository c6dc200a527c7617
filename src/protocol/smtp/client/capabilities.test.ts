// Tests of EHLO capability parsing: a Postfix-like reply, case-insensitive keywords, SIZE forms,
// old "AUTH=" lines, junk lines ignored, and the HELO fallback with no extensions.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { heloCapabilities, NO_CAPABILITIES, parseEhloReply } from './capabilities.ts';

describe('parseEhloReply', () => {
  test('a full Postfix-like reply', () => {
    const caps = parseEhloReply([
      'mx.example.org Hello client.example',
      'PIPELINING',
      'SIZE 10240000',
      'VRFY',
      'ETRN',
      'STARTTLS',
      'AUTH PLAIN LOGIN',
      'ENHANCEDSTATUSCODES',
      '8BITMIME',
      'DSN',
      'SMTPUTF8',
      'CHUNKING',
    ]);
    assert.deepEqual(caps, {
      esmtp: true,
      serverName: 'mx.example.org',
      pipelining: true,
      size: true,
      sizeLimitBytes: 10240000,
      eightBitMime: true,
      smtputf8: true,
      chunking: true,
      binaryMime: false,
      dsn: true,
      startTls: true,
      enhancedStatusCodes: true,
      requireTls: false,
      authMechanisms: ['PLAIN', 'LOGIN'],
    });
  });

  test('only the greeting line: ESMTP with nothing else', () => {
    assert.deepEqual(parseEhloReply(['host']), { ...NO_CAPABILITIES, esmtp: true, serverName: 'host' });
  });

  test('keywords are case-insensitive; the greeting line is never read as a keyword', () => {
    const caps = parseEhloReply(['PIPELINING', 'pipelining', 'binarymime', 'starttls']);
    assert.equal(caps.serverName, 'PIPELINING');
    assert.equal(caps.pipelining, true);
    assert.equal(caps.binaryMime, true);
    assert.equal(caps.startTls, true);
    assert.equal(parseEhloReply(['STARTTLS']).startTls, false);
  });

  test('SIZE with no number or 0 declares no fixed limit; junk numbers too', () => {
    for (const line of ['SIZE', 'SIZE 0', 'SIZE -5', 'SIZE 12abc', 'SIZE 1e9']) {
      const caps = parseEhloReply(['h', line]);
      assert.equal(caps.size, true, line);
      assert.equal(caps.sizeLimitBytes, null, line);
    }
  });

  test('old AUTH=LOGIN lines, duplicates and junk mechanisms', () => {
    const caps = parseEhloReply(['h', 'AUTH=LOGIN PLAIN', 'AUTH login CRAM-MD5 bad/mech']);
    assert.deepEqual(caps.authMechanisms, ['LOGIN', 'PLAIN', 'CRAM-MD5']);
  });

  test('junk lines and unknown keywords are ignored', () => {
    const caps = parseEhloReply(['h', '', '   ', 'X-EXPS GSSAPI', '\u0000\u0001', 'DSNX', 'PIPELININGX']);
    assert.deepEqual(caps, { ...NO_CAPABILITIES, esmtp: true, serverName: 'h' });
  });
});

test('heloCapabilities: no extensions', () => {
  assert.deepEqual(heloCapabilities(['old.example ready']), {
    ...NO_CAPABILITIES,
    serverName: 'old.example',
  });
});
