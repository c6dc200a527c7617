// IMAP URLs (RFC 5092) as CATENATE and URLAUTH use them: parse, rump and verifier, owner rules.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { accessNames, parseImapUrl, percentEncode, urlOwner } from './imap-url.ts';

describe('parseImapUrl', () => {
  test('a relative CATENATE URL with UIDVALIDITY, section and partial', () => {
    const u = parseImapUrl('/INBOX;UIDVALIDITY=785799047/;UID=113330/;section=1.5.9/;partial=10.20');
    assert.deepEqual(u, {
      user: null,
      host: null,
      mailbox: 'INBOX',
      uidValidity: 785799047,
      uid: 113330,
      section: '1.5.9',
      partial: { offset: 10, length: 20 },
      expireMs: null,
      access: null,
      rump: null,
      verifier: null,
    });
  });

  test('a relative URL naming a folder with UTF-8 (%-encoded) and a HEADER section', () => {
    const u = parseImapUrl(`/${percentEncode('Entwürfe/日本')}/;uid=7/;section=HEADER`);
    assert.equal(u?.mailbox, 'Entwürfe/日本');
    assert.equal(u?.uid, 7);
    assert.equal(u?.section, 'HEADER');
    assert.equal(u?.partial, null);
  });

  test('partial without a length, keywords in any case', () => {
    const u = parseImapUrl('/box/;UiD=2/;PARTIAL=100000');
    assert.deepEqual(u?.partial, { offset: 100000, length: null });
  });

  test('a URLAUTH rump (RFC 4467 §3) and the same URL with its verifier', () => {
    const rump = 'imap://joe@example.com/INBOX/;uid=20/;section=1.2;urlauth=submit+fred';
    const r = parseImapUrl(rump);
    assert.equal(r?.user, 'joe');
    assert.equal(r?.host, 'example.com');
    assert.deepEqual(r?.access, { kind: 'submit', user: 'fred' });
    assert.equal(r?.rump, rump);
    assert.equal(r?.verifier, null);
    const full = parseImapUrl(`${rump}:internal:91354a473744909de610943775f92038`);
    assert.equal(full?.rump, rump);
    assert.deepEqual(full?.verifier, { mechanism: 'INTERNAL', token: '91354a473744909de610943775f92038' });
    assert.equal(full?.section, '1.2');
  });

  test('a URLAUTH URL of a UTF-8 user and folder, with EXPIRE', () => {
    const text =
      `imap://${percentEncode('jürgen')}@exämple.org/${percentEncode('日本')}/;uid=3` +
      `;expire=2026-12-07T01:02:03Z;urlauth=user+${percentEncode('jürgen@exämple.org')}`;
    const u = parseImapUrl(text);
    assert.equal(u?.user, 'jürgen');
    assert.equal(u?.host, 'exämple.org');
    assert.equal(u?.mailbox, '日本');
    assert.equal(u?.expireMs, Date.UTC(2026, 11, 7, 1, 2, 3));
    assert.deepEqual(u?.access, { kind: 'user', user: 'jürgen@exämple.org' });
    assert.equal(u?.rump, text);
  });

  test('authuser and anonymous; imaptest writes the access user unencoded', () => {
    assert.deepEqual(parseImapUrl('imap://u@localhost/box/;uid=1;urlauth=authuser')?.access, {
      kind: 'authuser',
    });
    assert.deepEqual(parseImapUrl('imap://u@localhost/box/;uid=1;urlauth=ANONYMOUS')?.access, {
      kind: 'anonymous',
    });
    assert.deepEqual(parseImapUrl('imap://u@localhost/box/;uid=1;urlauth=user+u@localhost')?.access, {
      kind: 'user',
      user: 'u@localhost',
    });
  });

  test('what is not a message URL is null', () => {
    for (const bad of [
      '',
      'INBOX/;uid=1',
      '/INBOX',
      '/INBOX/;uid=0',
      '/INBOX?SUBJECT%20x',
      '/;uid=1',
      '/INBOX/;uid=1;urlauth=authuser', // URLAUTH only on absolute URLs
      'imap://host/INBOX/;uid=1;urlauth=authuser', // no user
      'imap://u@h/INBOX/;uid=1;urlauth=nobody',
      'imap://u@h/INBOX/;uid=1;expire=tomorrow;urlauth=authuser',
      'imap://u@h/INBOX/;uid=1;urlauth=authuser:internal:abc', // token too short
      '/%ZZ/;uid=1',
      'http://u@h/INBOX/;uid=1',
    ]) {
      assert.equal(parseImapUrl(bad), null, bad);
    }
  });
});

describe('URL owners', () => {
  test('a user without @ takes the host as its domain; an address stays', () => {
    assert.equal(urlOwner({ user: 'u', host: 'localhost' }), 'u@localhost');
    assert.equal(urlOwner({ user: 'jürgen', host: 'exämple.org' }), 'jürgen@exämple.org');
    assert.equal(urlOwner({ user: '日本@例え.jp', host: 'mail.example.org' }), '日本@例え.jp');
    assert.equal(urlOwner({ user: null, host: null }), null);
  });

  test('an access user names a login without regard to case', () => {
    assert.ok(accessNames('U@Localhost', 'u@localhost', 'x'));
    assert.ok(accessNames('jürgen', 'JÜRGEN@exämple.org', 'exämple.org'));
    assert.ok(!accessNames('jürgen', 'jürgen@exämple.org', 'other.org'));
    assert.ok(accessNames('日本@例え.jp', '日本@例え.jp', null));
  });
});
