// The ManageSieve state machine stepped without sockets: the dialogues sieve-connect and Thunderbird's
// Sieve extension hold, every command in every state, names, quotas, STARTTLS, AUTHENTICATE, hostile input,
// pending decisions, and the fragmentation property.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ManageSieveSession } from './session.ts';
import { baseOptions, Harness, literal, plainResponse } from './test-harness.ts';

const SCRIPT = 'require "fileinto";\r\nif header :contains "subject" "x" {\r\n  fileinto "X";\r\n}\r\n';
const BAD_SCRIPT = 'require "fileinto";\r\nkeep;\r\n    bogus;\r\n';
const octets = (s: string): number => Buffer.byteLength(s, 'utf8');

/** A session over TLS, authenticated as `user` with PLAIN and an initial response. */
function authenticated(user = 'alice@example.test', password = 'secret pass'): Harness {
  const h = new Harness({ tlsActive: true }).send(
    `AUTHENTICATE "PLAIN" "${plainResponse(user, password)}"\r\n`,
  );
  assert.equal(h.session.phase, 'authenticated');
  h.wire = '';
  return h;
}

/** The wire text since the harness was last cleared. */
const wire = (h: Harness): string => h.wire;

describe('ManageSieve session: greeting and CAPABILITY', () => {
  it('greets with the capabilities: no SASL before TLS, STARTTLS offered, VERSION 1.0', () => {
    assert.deepEqual(new Harness().lines, [
      '"IMPLEMENTATION" "Tern"',
      '"SASL" ""',
      '"SIEVE" "fileinto reject envelope vacation"',
      '"STARTTLS"',
      '"UNAUTHENTICATE"',
      '"VERSION" "1.0"',
      'OK "Tern ManageSieve ready"',
    ]);
  });

  it('over TLS: every mechanism, no STARTTLS; MAXREDIRECTS when configured', () => {
    const h = new Harness({ tlsActive: true, maxRedirects: 4 });
    assert.deepEqual(h.lines, [
      '"IMPLEMENTATION" "Tern"',
      '"SASL" "PLAIN SCRAM-SHA-256 SCRAM-SHA-256-PLUS EXTERNAL"',
      '"SIEVE" "fileinto reject envelope vacation"',
      '"MAXREDIRECTS" "4"',
      '"UNAUTHENTICATE"',
      '"VERSION" "1.0"',
      'OK "Tern ManageSieve ready"',
    ]);
  });

  it('plaintext allowed (loopback): SASL without the TLS-bound mechanisms', () => {
    assert.ok(new Harness({ plaintextAuth: true }).lines.includes('"SASL" "PLAIN SCRAM-SHA-256"'));
  });

  it('no STARTTLS line when TLS cannot be offered', () => {
    assert.ok(!new Harness({ starttls: false }).lines.includes('"STARTTLS"'));
  });

  it('after authentication: OWNER, no SASL line', () => {
    const h = authenticated('jürgen@example.test', 'pässwörd').send('CAPABILITY\r\n');
    assert.deepEqual(h.lines, [
      '"IMPLEMENTATION" "Tern"',
      '"SIEVE" "fileinto reject envelope vacation"',
      '"OWNER" "jürgen@example.test"',
      '"UNAUTHENTICATE"',
      '"VERSION" "1.0"',
      'OK "Capability completed"',
    ]);
  });

  it('CAPABILITY with an argument is a syntax error; commands are case-insensitive', () => {
    const h = new Harness();
    h.wire = '';
    h.send('CAPABILITY x\r\ncapability\r\n');
    assert.equal(h.lines[0], 'NO "Syntax error in arguments"');
    assert.equal(h.lines.at(-1), 'OK "Capability completed"');
  });
});

describe('ManageSieve session: a sieve-connect dialogue', () => {
  it('STARTTLS, capabilities again, AUTHENTICATE with a literal, then every script command', () => {
    const h = new Harness();
    h.wire = '';
    h.send('CAPABILITY\r\nSTARTTLS\r\n');
    const begin = h.lines.indexOf('OK "Begin TLS negotiation"');
    assert.equal(h.lines[begin - 1], 'OK "Capability completed"');
    assert.ok(h.lines.slice(0, begin).includes('"STARTTLS"'));
    // RFC 5804 §2.2: after the handshake the server sends the capabilities again, unasked.
    assert.deepEqual(h.lines.slice(begin + 1), [
      '"IMPLEMENTATION" "Tern"',
      '"SASL" "PLAIN SCRAM-SHA-256 SCRAM-SHA-256-PLUS EXTERNAL"',
      '"SIEVE" "fileinto reject envelope vacation"',
      '"UNAUTHENTICATE"',
      '"VERSION" "1.0"',
      'OK "TLS negotiation successful"',
    ]);
    h.wire = '';
    const ir = plainResponse('jürgen@example.test', 'pässwörd');
    h.send(`AUTHENTICATE "PLAIN" ${literal(ir)}\r\n`);
    assert.deepEqual(h.lines, ['OK "Authentication successful"']);
    assert.deepEqual(h.of('auth-start'), [{ kind: 'auth-start', mechanism: 'PLAIN', initialResponse: ir }]);
    h.wire = '';
    h.send(
      `PUTSCRIPT "Ferien ü" ${literal(SCRIPT)}\r\n` +
        'LISTSCRIPTS\r\n' +
        'SETACTIVE "Ferien ü"\r\n' +
        `PUTSCRIPT "日本" ${literal('keep;\r\n')}\r\n` +
        'LISTSCRIPTS\r\n' +
        'GETSCRIPT "Ferien ü"\r\n' +
        'HAVESPACE "new" 100\r\n' +
        `CHECKSCRIPT ${literal(SCRIPT)}\r\n` +
        'DELETESCRIPT "Ferien ü"\r\n' +
        'RENAMESCRIPT "Ferien ü" "Urlaub"\r\n' +
        'DELETESCRIPT "日本"\r\n' +
        'SETACTIVE ""\r\n' +
        'DELETESCRIPT "Urlaub"\r\n' +
        'LISTSCRIPTS\r\n' +
        'LOGOUT\r\n',
    );
    assert.equal(
      wire(h),
      'OK "Script stored"\r\n' +
        '"Ferien ü"\r\nOK "Listscripts completed"\r\n' +
        'OK "Script activated"\r\n' +
        'OK "Script stored"\r\n' +
        '"Ferien ü" ACTIVE\r\n"日本"\r\nOK "Listscripts completed"\r\n' +
        `{${octets(SCRIPT)}}\r\n${SCRIPT}\r\nOK "Getscript completed"\r\n` +
        'OK "Putscript would succeed"\r\n' +
        'OK "Script is valid"\r\n' +
        'NO (ACTIVE) "Script is active"\r\n' +
        'OK "Script renamed"\r\n' +
        'OK "Script deleted"\r\n' +
        'OK "Active script deactivated"\r\n' +
        'OK "Script deleted"\r\n' +
        'OK "Listscripts completed"\r\n' +
        'OK "Logout completed"\r\n',
    );
    assert.ok(h.closed);
    assert.equal(h.session.phase, 'closed');
    assert.deepEqual(
      h.ops.map((o) => [o.user, o.op.kind]),
      [
        ['jürgen@example.test', 'put'],
        ['jürgen@example.test', 'list'],
        ['jürgen@example.test', 'set-active'],
        ['jürgen@example.test', 'put'],
        ['jürgen@example.test', 'list'],
        ['jürgen@example.test', 'get'],
        ['jürgen@example.test', 'have-space'],
        ['jürgen@example.test', 'delete'],
        ['jürgen@example.test', 'rename'],
        ['jürgen@example.test', 'delete'],
        ['jürgen@example.test', 'set-active'],
        ['jürgen@example.test', 'delete'],
        ['jürgen@example.test', 'list'],
      ],
    );
    assert.deepEqual(h.ops[0]?.op, { kind: 'put', name: 'Ferien ü', script: SCRIPT });
  });
});

describe('ManageSieve session: a Thunderbird dialogue', () => {
  it('AUTHENTICATE "PLAIN" without an initial response: "" challenge, quoted response', () => {
    const h = new Harness({ tlsActive: true });
    h.wire = '';
    h.send(`AUTHENTICATE "PLAIN"\r\n"${plainResponse('日本@example.test', '秘密')}"\r\n`);
    assert.deepEqual(h.lines, ['""', 'OK "Authentication successful"']);
    assert.equal(h.session.user, '日本@example.test');
    assert.deepEqual(h.of('auth-start')[0], {
      kind: 'auth-start',
      mechanism: 'PLAIN',
      initialResponse: null,
    });
  });

  it('a response as a literal, and a bare base64 token, are accepted too', () => {
    const response = plainResponse('alice@example.test', 'secret pass');
    for (const line of [literal(response), response]) {
      const h = new Harness({ tlsActive: true }).send(`Authenticate "plain"\r\n${line}\r\n`);
      assert.equal(h.session.phase, 'authenticated', line);
    }
  });

  it('an empty initial response "" reaches the drive as "=" (the SASL codec form)', () => {
    const h = new Harness({ tlsActive: true }).send('AUTHENTICATE "EXTERNAL" ""\r\n');
    assert.equal(h.of('auth-start')[0]?.initialResponse, '=');
  });

  it('NOOP with a tag echoes it (RFC 5804 §2.13)', () => {
    const h = authenticated().send('NOOP\r\nNOOP "STARTTLS-SYNC-42"\r\nNOOP {5+}\r\na"b\\c\r\n');
    assert.deepEqual(h.lines, [
      'OK "Done"',
      'OK (TAG "STARTTLS-SYNC-42") "Done"',
      'OK (TAG {5}',
      'a"b\\c) "Done"',
    ]);
  });
});

describe('ManageSieve session: AUTHENTICATE', () => {
  it('"*" cancels with NO; the client may try again', () => {
    const h = new Harness({ tlsActive: true });
    h.wire = '';
    h.send(
      `AUTHENTICATE "PLAIN"\r\n"*"\r\nAUTHENTICATE "PLAIN" "${plainResponse('alice@example.test', 'secret pass')}"\r\n`,
    );
    assert.deepEqual(h.lines, ['""', 'NO "Authentication cancelled"', 'OK "Authentication successful"']);
  });

  it('a wrong password is NO; the last allowed failure adds BYE and closes', () => {
    const h = new Harness({ tlsActive: true });
    h.failuresBeforeClose = 2;
    h.wire = '';
    const bad = plainResponse('alice@example.test', 'wrong');
    h.send(`AUTHENTICATE "PLAIN" "${bad}"\r\nAUTHENTICATE "PLAIN" "${bad}"\r\nCAPABILITY\r\n`);
    assert.deepEqual(h.lines, [
      'NO "Authentication failed"',
      'NO "Authentication failed"',
      'BYE "Too many failed authentications, closing connection"',
    ]);
    assert.ok(h.closed);
  });

  it('before TLS: NO (ENCRYPT-NEEDED) for a configured mechanism, NO for an unknown one', () => {
    const h = new Harness();
    h.wire = '';
    h.send(
      'AUTHENTICATE "PLAIN" "AGEAYg=="\r\nAUTHENTICATE "X-UNKNOWN"\r\nAUTHENTICATE "PL AIN"\r\nAUTHENTICATE\r\n',
    );
    assert.deepEqual(h.lines, [
      'NO (ENCRYPT-NEEDED) "Encryption required for this authentication mechanism"',
      'NO "Unsupported authentication mechanism"',
      'NO "Syntax error in AUTHENTICATE arguments"',
      'NO "Syntax error in AUTHENTICATE arguments"',
    ]);
    assert.equal(h.of('auth-start').length, 0);
  });

  it('with plaintext allowed, EXTERNAL and -PLUS still need TLS', () => {
    const h = new Harness({ plaintextAuth: true });
    h.wire = '';
    h.send('AUTHENTICATE "EXTERNAL"\r\nAUTHENTICATE "SCRAM-SHA-256-PLUS"\r\n');
    assert.deepEqual(h.statuses.slice(1), [
      'NO (ENCRYPT-NEEDED) "Encryption required for this authentication mechanism"',
      'NO (ENCRYPT-NEEDED) "Encryption required for this authentication mechanism"',
    ]);
  });

  it('a response that is not one string, or is too long, ends the exchange with NO', () => {
    const h = new Harness({ tlsActive: true });
    h.wire = '';
    h.send('AUTHENTICATE "PLAIN"\r\n"a" "b"\r\nAUTHENTICATE "PLAIN"\r\n{20000+}\r\n');
    h.send('A'.repeat(20000) + '\r\nNOOP\r\n');
    assert.deepEqual(h.lines, [
      '""',
      'NO "Malformed authentication response"',
      '""',
      'NO "Authentication response too long"',
      'OK "Done"',
    ]);
    assert.equal(h.session.phase, 'unauthenticated');
    assert.deepEqual(
      h.of('state').map((s) => `${s.from}>${s.to}`),
      ['unauthenticated>auth', 'auth>unauthenticated', 'unauthenticated>auth', 'auth>unauthenticated'],
    );
  });

  it('AUTHENTICATE when authenticated is NO', () => {
    const h = authenticated().send('AUTHENTICATE "PLAIN" "AGEAYg=="\r\n');
    assert.deepEqual(h.lines, ['NO "Already authenticated"']);
  });

  it('a challenge from the drive goes out as a string; the answer comes back as auth-response', () => {
    const s = new ManageSieveSession({ ...baseOptions, tlsActive: true });
    s.greet();
    const start = s.feed(new TextEncoder().encode('AUTHENTICATE "SCRAM-SHA-256" "biwsbj11c2VyLHI9YWJj"\r\n'));
    assert.deepEqual(start.at(-1), {
      kind: 'auth-start',
      mechanism: 'SCRAM-SHA-256',
      initialResponse: 'biwsbj11c2VyLHI9YWJj',
    });
    const challenge = s.resolve({ kind: 'auth', outcome: { kind: 'challenge', challenge: 'cj1hYmM=' } });
    assert.deepEqual(challenge, [{ kind: 'challenge', challenge: 'cj1hYmM=' }]);
    const next = s.feed(new TextEncoder().encode('"Yz1iaXdz"\r\n'));
    assert.deepEqual(next, [{ kind: 'auth-response', response: 'Yz1iaXdz' }]);
    const done = s.resolve({ kind: 'auth', outcome: { kind: 'success', user: 'user@example.test' } });
    assert.deepEqual(done.at(-1), {
      kind: 'reply',
      reply: { status: 'OK', code: null, text: 'Authentication successful' },
    });
  });
});

describe('ManageSieve session: STARTTLS', () => {
  it('discards what was pipelined after STARTTLS', () => {
    const h = new Harness().send('STARTTLS\r\nAUTHENTICATE "PLAIN" "AGEAYg=="\r\n');
    assert.equal(h.of('auth-start').length, 0);
    assert.ok(h.of('violation').some((v) => v.what.includes('pipelined after STARTTLS')));
    assert.equal(h.session.tlsActive, true);
  });

  it('is refused over TLS, when not offered, and after authentication', () => {
    assert.deepEqual(new Harness({ tlsActive: true }).send('STARTTLS\r\n').statuses.slice(1), [
      'NO "TLS is already active"',
    ]);
    assert.deepEqual(new Harness({ starttls: false }).send('STARTTLS\r\n').statuses.slice(1), [
      'NO "TLS not available"',
    ]);
    const h = new Harness({ plaintextAuth: true }).send(
      `AUTHENTICATE "PLAIN" "${plainResponse('alice@example.test', 'secret pass')}"\r\nSTARTTLS\r\n`,
    );
    assert.deepEqual(h.statuses.slice(1), [
      'OK "Authentication successful"',
      'NO "STARTTLS is only allowed before authentication"',
    ]);
  });

  it('a failed handshake closes; new mechanisms after TLS are offered', () => {
    const failed = new Harness();
    failed.tlsFails = true;
    failed.send('STARTTLS\r\n');
    assert.ok(failed.closed);
    const h = new Harness();
    h.mechanismsAfterTls = ['PLAIN'];
    h.send('STARTTLS\r\n');
    assert.ok(h.lines.includes('"SASL" "PLAIN"'));
  });
});

describe('ManageSieve session: state rules', () => {
  it('script commands before authentication are NO "Authenticate first"', () => {
    const h = new Harness();
    h.wire = '';
    h.send('LISTSCRIPTS\r\nGETSCRIPT "a"\r\nUNAUTHENTICATE\r\nNOOP\r\n');
    assert.deepEqual(h.lines, [
      'NO "Authenticate first"',
      'NO "Authenticate first"',
      'NO "Not authenticated"',
      'OK "Done"',
    ]);
    assert.equal(h.ops.length, 0);
  });

  it('UNAUTHENTICATE returns to the non-authenticated state', () => {
    const h = authenticated().send('UNAUTHENTICATE\r\nLISTSCRIPTS\r\nCAPABILITY\r\n');
    assert.equal(h.lines[0], 'OK "Unauthenticate completed"');
    assert.equal(h.lines[1], 'NO "Authenticate first"');
    assert.ok(h.lines.includes('"SASL" "PLAIN SCRAM-SHA-256 SCRAM-SHA-256-PLUS EXTERNAL"'));
    assert.ok(!h.lines.some((l) => l.startsWith('"OWNER"')));
    assert.equal(h.session.user, null);
  });
});

describe('ManageSieve session: scripts', () => {
  it('an invalid script is NO with the validator message, and is not stored', () => {
    const h = authenticated().send(
      `PUTSCRIPT "s" ${literal(BAD_SCRIPT)}\r\nCHECKSCRIPT ${literal(BAD_SCRIPT)}\r\n`,
    );
    assert.deepEqual(h.lines, [
      'NO "line 3 column 5: unknown command bogus"',
      'NO "line 3 column 5: unknown command bogus"',
    ]);
    assert.equal(h.ops.length, 0);
    assert.equal(h.session.errors, 0, 'a bad script is not a protocol error');
  });

  it('warnings come as OK (WARNINGS)', () => {
    const h = authenticated().send(`PUTSCRIPT "w" "warn;"\r\nCHECKSCRIPT "warn;"\r\n`);
    assert.deepEqual(h.lines, ['OK (WARNINGS) "line 1: deprecated"', 'OK (WARNINGS) "line 1: deprecated"']);
  });

  it('a validator that throws is NO, never a crash', () => {
    const h = new Harness({
      tlsActive: true,
      validate: () => {
        throw new Error('boom');
      },
    }).send(
      `AUTHENTICATE "PLAIN" "${plainResponse('alice@example.test', 'secret pass')}"\r\nCHECKSCRIPT "keep;"\r\n`,
    );
    assert.equal(h.lines.at(-1), 'NO "Script could not be checked"');
  });

  it('a script over the size limit is NO (QUOTA/MAXSIZE); its literal is swallowed', () => {
    const big = 'x'.repeat(baseOptions.maxScriptBytes + 1);
    const h = authenticated().send(
      `PUTSCRIPT "big" ${literal(big)}\r\nCHECKSCRIPT ${literal(big)}\r\nNOOP\r\n`,
    );
    assert.deepEqual(h.lines, [
      'NO (QUOTA/MAXSIZE) "Script is too large"',
      'NO (QUOTA/MAXSIZE) "Script is too large"',
      'OK "Done"',
    ]);
    assert.equal(h.ops.length, 0);
    const quoted = new Harness({ tlsActive: true, maxScriptBytes: 10 })
      .send(`AUTHENTICATE "PLAIN" "${plainResponse('alice@example.test', 'secret pass')}"\r\n`)
      .send('PUTSCRIPT "q" "keep; keep; keep;"\r\n');
    assert.equal(quoted.lines.at(-1), 'NO (QUOTA/MAXSIZE) "Script is too large"');
  });

  it('HAVESPACE: QUOTA/MAXSIZE over the size limit (or 32 bits), QUOTA/MAXSCRIPTS at the count', () => {
    const h = authenticated();
    h.maxScripts = 1;
    h.send(
      `HAVESPACE "a" ${baseOptions.maxScriptBytes + 1}\r\nHAVESPACE "a" 99999999999999\r\n` +
        'HAVESPACE "a" 10\r\nPUTSCRIPT "a" "keep;"\r\nHAVESPACE "b" 10\r\nHAVESPACE "a" 10\r\n' +
        'PUTSCRIPT "b" "keep;"\r\nHAVESPACE "a" x\r\n',
    );
    assert.deepEqual(h.lines, [
      'NO (QUOTA/MAXSIZE) "Script is too large"',
      'NO (QUOTA/MAXSIZE) "Script is too large"',
      'OK "Putscript would succeed"',
      'OK "Script stored"',
      'NO (QUOTA/MAXSCRIPTS) "Too many scripts"',
      'OK "Putscript would succeed"',
      'NO (QUOTA/MAXSCRIPTS) "Too many scripts"',
      'NO "Syntax error in arguments"',
    ]);
  });

  it('NONEXISTENT, ALREADYEXISTS, ACTIVE; the active script stays active when renamed', () => {
    const h = authenticated().send(
      'GETSCRIPT "none"\r\nSETACTIVE "none"\r\nDELETESCRIPT "none"\r\nRENAMESCRIPT "none" "x"\r\n' +
        'PUTSCRIPT "a" "keep;"\r\nPUTSCRIPT "b" "keep;"\r\nRENAMESCRIPT "a" "b"\r\nSETACTIVE "a"\r\n' +
        'RENAMESCRIPT "a" "c"\r\nDELETESCRIPT "c"\r\nLISTSCRIPTS\r\n',
    );
    assert.deepEqual(h.lines, [
      'NO (NONEXISTENT) "Script does not exist"',
      'NO (NONEXISTENT) "Script does not exist"',
      'NO (NONEXISTENT) "Script does not exist"',
      'NO (NONEXISTENT) "Script does not exist"',
      'OK "Script stored"',
      'OK "Script stored"',
      'NO (ALREADYEXISTS) "A script with that name already exists"',
      'OK "Script activated"',
      'OK "Script renamed"',
      'NO (ACTIVE) "Script is active"',
      '"b"',
      '"c" ACTIVE',
      'OK "Listscripts completed"',
    ]);
  });

  it('a failing store is NO (TRYLATER)', () => {
    const h = authenticated();
    h.storeFails = true;
    h.send('LISTSCRIPTS\r\n');
    assert.deepEqual(h.lines, ['NO (TRYLATER) "Temporary failure, try again later"']);
  });

  it('GETSCRIPT always sends a literal, even for a one-line script', () => {
    const h = authenticated().send('PUTSCRIPT "k" "keep;"\r\nGETSCRIPT "k"\r\n');
    assert.equal(wire(h), 'OK "Script stored"\r\n{5}\r\nkeep;\r\nOK "Getscript completed"\r\n');
  });

  it('names: UTF-8 kept, NFD stored as NFC, names with quotes listed as literals', () => {
    const nfd = 'Ferien u\u0308';
    const h = authenticated().send(
      `PUTSCRIPT "${nfd}" "keep;"\r\nGETSCRIPT "Ferien ü"\r\nPUTSCRIPT ${literal('say "hi"')} "keep;"\r\nLISTSCRIPTS\r\n`,
    );
    assert.deepEqual(h.ops[0]?.op, { kind: 'put', name: 'Ferien ü', script: 'keep;' });
    assert.ok(wire(h).includes('{5}\r\nkeep;\r\nOK "Getscript completed"'));
    assert.ok(wire(h).endsWith('"Ferien ü"\r\n{8}\r\nsay "hi"\r\nOK "Listscripts completed"\r\n'));
  });

  it('names: empty, control characters, U+2028, over 1024 octets and atoms are refused', () => {
    const h = authenticated().send(
      'PUTSCRIPT "" "keep;"\r\n' +
        `PUTSCRIPT ${literal('a\tb')} "keep;"\r\n` +
        `PUTSCRIPT ${literal('a\r\nb')} "keep;"\r\n` +
        'GETSCRIPT "a\u2028b"\r\n' +
        'GETSCRIPT "a\u0085b"\r\n' +
        `GETSCRIPT "${'é'.repeat(513)}"\r\n` +
        'GETSCRIPT name\r\n' +
        'RENAMESCRIPT "a" ""\r\n',
    );
    assert.deepEqual(h.lines, [
      ...Array.from({ length: 6 }, () => 'NO "Invalid script name"'),
      'NO "Syntax error in arguments"',
      'NO "Invalid script name"',
    ]);
    assert.equal(h.ops.length, 0);
    assert.equal(
      authenticated().send(`GETSCRIPT "${'é'.repeat(512)}"\r\n`).ops.length,
      1,
      '1024 octets is fine',
    );
  });

  it('names may span lines: literals for both names of RENAMESCRIPT, synchronizing or not', () => {
    const h = authenticated().send(
      `PUTSCRIPT "日本" "keep;"\r\nRENAMESCRIPT ${literal('日本', true)} ${literal('Ferien ü')}\r\n`,
    );
    assert.deepEqual(h.lines, ['OK "Script stored"', 'OK "Script renamed"']);
    assert.deepEqual(h.ops[1]?.op, { kind: 'rename', from: '日本', to: 'Ferien ü' });
  });
});

describe('ManageSieve session: hostile input', () => {
  it('an over-long line is NO and skipped to its end; the session goes on', () => {
    const h = new Harness();
    h.wire = '';
    h.send(`NOOP "${'x'.repeat(20000)}"\r\nNOOP\r\n`);
    assert.deepEqual(h.lines, ['NO "Command line too long"', 'OK "Done"']);
  });

  it('NUL, invalid UTF-8, bad quoting, unknown commands: NO each, never a throw', () => {
    const h = new Harness();
    h.wire = '';
    h.send(new Uint8Array([0x4e, 0x4f, 0x4f, 0x50, 0x20, 0x22, 0x00, 0x22, 0x0d, 0x0a]));
    h.send(new Uint8Array([0x4e, 0x4f, 0x4f, 0x50, 0x20, 0x22, 0xc3, 0x28, 0x22, 0x0d, 0x0a]));
    h.send('NOOP "unterminated\r\nNOOP "a\\x"\r\nNOOP "a"b\r\nFROB\r\n"NOOP"\r\nNOOP {3+}x\r\n');
    assert.deepEqual(h.lines, [
      'NO "Command is not valid UTF-8"',
      'NO "Command is not valid UTF-8"',
      'NO "Syntax error in arguments"',
      'NO "Syntax error in arguments"',
      'NO "Syntax error in arguments"',
      'NO "Unknown command"',
      'NO "Unknown command"',
      'NO "Syntax error in arguments"',
    ]);
    assert.equal(h.session.errors, 8);
  });

  it('a literal whose size is beyond 32 bits is BYE: its end cannot be found', () => {
    const h = authenticated().send('PUTSCRIPT "a" {99999999999}\r\nkeep;\r\nNOOP\r\n');
    assert.deepEqual(h.lines, ['BYE "Literal too large, closing connection"']);
    assert.ok(h.closed);
  });

  it('a literal far over its limit is BYE; one within the skip bound is swallowed', () => {
    const h = authenticated().send(
      `PUTSCRIPT "a" {${16 * Math.max(baseOptions.maxScriptBytes, baseOptions.maxLineBytes) + 1}+}\r\n`,
    );
    assert.deepEqual(h.lines, ['BYE "Literal too large, closing connection"']);
    // Before authentication nothing needs more than a line: a big literal there is a string too long.
    const pre = new Harness();
    pre.wire = '';
    pre.send(
      `NOOP {${baseOptions.maxLineBytes + 1}+}\r\n${'x'.repeat(baseOptions.maxLineBytes + 1)}\r\nNOOP\r\n`,
    );
    assert.deepEqual(pre.lines, ['NO "String too long"', 'OK "Done"']);
  });

  it('a literal that is not UTF-8 text is NO, and the rest of its command is skipped', () => {
    const h = authenticated();
    h.send('PUTSCRIPT "a" {2+}\r\n');
    h.send(new Uint8Array([0xff, 0xfe]));
    h.send(' {3+}\r\nabc\r\nNOOP\r\n');
    assert.deepEqual(h.lines, ['NO "Script is not valid UTF-8 text"', 'OK "Done"']);
  });

  it('too many errors: BYE and close', () => {
    const h = new Harness({ maxErrors: 3 });
    h.wire = '';
    h.send('FROB\r\nFROB\r\nFROB\r\nFROB\r\n');
    assert.deepEqual(h.lines, [
      'NO "Unknown command"',
      'NO "Unknown command"',
      'NO "Unknown command"',
      'BYE "Too many errors, closing connection"',
    ]);
    assert.ok(h.closed);
    assert.deepEqual(h.session.feed(new TextEncoder().encode('NOOP\r\n')), []);
  });

  it('too many commands before authentication: BYE and close', () => {
    const h = new Harness({ maxCommandsBeforeAuth: 2 });
    h.wire = '';
    h.send('NOOP\r\nNOOP\r\nNOOP\r\n');
    assert.deepEqual(h.lines, [
      'OK "Done"',
      'OK "Done"',
      'BYE "Too many commands without authenticating, closing connection"',
    ]);
  });

  it('empty lines between commands are ignored; bare LF ends a line', () => {
    const h = new Harness();
    h.wire = '';
    h.send('\r\n\r\nNOOP\n\n');
    assert.deepEqual(h.lines, ['OK "Done"']);
  });

  it('more arguments than any command has: NO, and a literal among them is skipped', () => {
    const h = authenticated().send(`NOOP a b c d e f g h ${literal('xyz')}\r\nNOOP\r\n`);
    assert.deepEqual(h.lines, ['NO "Syntax error in arguments"', 'OK "Done"']);
  });
});

describe('ManageSieve session: pending decisions', () => {
  it('input waits while a store op is pending; resolve goes on with it', () => {
    const s = new ManageSieveSession({ ...baseOptions, tlsActive: true });
    s.greet();
    s.feed(new TextEncoder().encode(`AUTHENTICATE "PLAIN" "${plainResponse('a@example.test', 'p')}"\r\n`));
    s.resolve({ kind: 'auth', outcome: { kind: 'success', user: 'a@example.test' } });
    const first = s.feed(new TextEncoder().encode('LISTSCRIPTS\r\nGETSCRIPT "x"\r\n'));
    assert.deepEqual(first.at(-1), { kind: 'store', user: 'a@example.test', op: { kind: 'list' } });
    assert.equal(s.pending, 'store');
    assert.ok(s.bufferedBytes > 0);
    const second = s.resolve({ kind: 'store', result: { kind: 'list', scripts: [] } });
    assert.deepEqual(second.at(-1), {
      kind: 'store',
      user: 'a@example.test',
      op: { kind: 'get', name: 'x' },
    });
    assert.throws(
      () => s.resolve({ kind: 'store', result: { kind: 'done' } }),
      /store result done for op get/,
    );
  });

  it('resolve for the wrong decision throws (a driver bug); after close it is ignored', () => {
    const s = new ManageSieveSession(baseOptions);
    s.greet();
    assert.throws(() => s.resolve({ kind: 'tls', ok: true }), /while pending nothing/);
    s.close();
    assert.deepEqual(s.resolve({ kind: 'tls', ok: true }), []);
  });
});

describe('ManageSieve session: fragmentation', () => {
  it('any fragmentation of the same stream gives the same effects', () => {
    const stream = new TextEncoder().encode(
      'CAPABILITY\r\nNOOP "t"\r\nLISTSCRIPTS\r\nFROB\r\n' +
        `AUTHENTICATE "PLAIN"\r\n"*"\r\nAUTHENTICATE "PLAIN" ${literal(plainResponse('jürgen@example.test', 'pässwörd'))}\r\n` +
        `PUTSCRIPT "Ferien ü" ${literal(SCRIPT)}\r\nPUTSCRIPT "bad" ${literal(BAD_SCRIPT)}\r\n` +
        `PUTSCRIPT "big" ${literal('y'.repeat(5000))}\r\nSETACTIVE "Ferien ü"\r\n` +
        `RENAMESCRIPT ${literal('Ferien ü')} "日本"\r\nGETSCRIPT "日本"\r\nLISTSCRIPTS\r\n` +
        `NOOP "${'z'.repeat(17000)}"\r\nHAVESPACE "x" 10\r\nDELETESCRIPT "日本"\r\nLOGOUT\r\n`,
    );
    const whole = new Harness({ plaintextAuth: true }).send(stream);
    assert.ok(whole.closed);
    assert.equal(whole.ops.length, 7);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: stream.length }), { maxLength: 30 }), (cuts) => {
        const points = [...new Set(cuts)].sort((a, b) => a - b);
        const h = new Harness({ plaintextAuth: true });
        let prev = 0;
        for (const p of [...points, stream.length]) {
          h.send(stream.subarray(prev, p));
          prev = p;
        }
        assert.deepEqual(h.effects, whole.effects);
        assert.equal(h.wire, whole.wire);
      }),
      { numRuns: 300 },
    );
  });
});
