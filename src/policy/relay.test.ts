// Tests of the relay decision: local domains, postmaster, relaying only for clients that may relay, and
// sender-specified routing hidden in a local address (percent hack, bang path, quoted "@") refused for
// untrusted clients. Recipients go through the real RCPT parser so source routes and quoting are what a
// client can actually send.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Mailbox } from '../core/address.ts';
import { Replies } from '../core/reply.ts';
import { parseRcpt } from '../protocol/smtp/command.ts';
import { decideRecipient, type RecipientDecision, type RelayContext } from './relay.ts';

const LOCAL = new Set(['example.test', 'mail.example.test']);

function ctx(mayRelay: boolean, seen: string[] = []): RelayContext {
  return {
    isLocalDomain: (d) => {
      seen.push(d);
      return LOCAL.has(d);
    },
    primaryDomain: 'Example.TEST',
    mayRelay,
  };
}

/** Parse "RCPT TO:" text the way the session does (SMTPUTF8 on, so UTF-8 cases parse too). */
function rcpt(path: string): Mailbox {
  const r = parseRcpt(`TO:${path}`, true, true);
  assert.ok(r.ok, `test path ${path} does not parse: ${JSON.stringify(r)}`);
  return r.value.recipient;
}

const decide = (path: string, mayRelay: boolean): RecipientDecision =>
  decideRecipient(rcpt(path), ctx(mayRelay));

function assertRelayDenied(d: RecipientDecision, reason: RegExp): void {
  assert.equal(d.kind, 'reject');
  assert.ok(d.kind === 'reject');
  assert.equal(d.reply, Replies.relayDenied);
  assert.match(d.reason, reason);
}

describe('local domains', () => {
  test('a local address is looked up by its key (domain and ASCII lower-cased)', () => {
    for (const mayRelay of [false, true]) {
      assert.deepEqual(decide('<User.Name@Example.TEST>', mayRelay), {
        kind: 'local',
        address: 'user.name@example.test',
      });
      assert.deepEqual(decide('<u@mail.example.test>', mayRelay), {
        kind: 'local',
        address: 'u@mail.example.test',
      });
    }
  });

  test('isLocalDomain is asked with the normalized domain', () => {
    const seen: string[] = [];
    decideRecipient(rcpt('<u@EXAMPLE.Test>'), ctx(false, seen));
    assert.deepEqual(seen, ['example.test']);
  });

  test('"<Postmaster>" without a domain is the postmaster of the primary domain (RFC 5321 §4.1.1.3)', () => {
    for (const mayRelay of [false, true]) {
      assert.deepEqual(decide('<Postmaster>', mayRelay), {
        kind: 'local',
        address: 'postmaster@example.test',
      });
      assert.deepEqual(decide('<POSTMASTER>', mayRelay), {
        kind: 'local',
        address: 'postmaster@example.test',
      });
    }
  });

  test('postmaster at a local domain is an ordinary local address', () => {
    assert.deepEqual(decide('<postmaster@example.test>', false), {
      kind: 'local',
      address: 'postmaster@example.test',
    });
  });

  test('a subdomain of a local domain is not local', () => {
    assertRelayDenied(decide('<u@sub.example.test>', false), /not local/);
  });
});

describe('relaying', () => {
  test('untrusted client to a remote domain: 554 5.7.1', () => {
    assertRelayDenied(decide('<u@remote.example>', false), /not local/);
  });

  test('a client that may relay: relay with the address in canonical form', () => {
    assert.deepEqual(decide('<u@remote.example>', true), { kind: 'relay', address: 'u@remote.example' });
    assert.deepEqual(decide('<U@Remote.Example>', true), { kind: 'relay', address: 'U@Remote.Example' });
    // A quoted local part keeps its quotes: "john doe@remote.example" would be a different (bad) address.
    assert.deepEqual(decide('<"john doe"@remote.example>', true), {
      kind: 'relay',
      address: '"john doe"@remote.example',
    });
  });

  test('an address literal is never a local domain: refused untrusted, relayed trusted', () => {
    assertRelayDenied(decide('<u@[192.0.2.1]>', false), /not local/);
    assertRelayDenied(decide('<postmaster@[IPv6:2001:db8::1]>', false), /not local/);
    assert.deepEqual(decide('<u@[192.0.2.1]>', true), { kind: 'relay', address: 'u@[192.0.2.1]' });
  });

  test('a source route is dropped by the parser: only the final mailbox counts', () => {
    assertRelayDenied(decide('<@example.test:u@remote.example>', false), /not local/);
    assert.deepEqual(decide('<@remote.example:u@example.test>', false), {
      kind: 'local',
      address: 'u@example.test',
    });
  });
});

describe('sender-specified routing in a local address', () => {
  const routed = [
    ['percent hack', '<u%remote.example@example.test>'],
    ['percent hack, several hops', '<u%remote.example%other.example@example.test>'],
    ['bang path', '<remote.example!u@example.test>'],
    ['quoted "@"', '<"u@remote.example"@example.test>'],
    ['quoted "%"', '<"u%remote.example"@example.test>'],
    ['quoted "@" with a source route', '<@hop.example:"u@remote.example"@example.test>'],
  ] as const;

  for (const [name, path] of routed) {
    test(`${name}: refused for an untrusted client`, () => {
      assertRelayDenied(decide(path, false), /routing/);
    });
    test(`${name}: a client that may relay gets a local lookup (the directory decides)`, () => {
      const d = decide(path, true);
      assert.equal(d.kind, 'local');
    });
  }

  test('a percent hack at a remote domain is just relaying', () => {
    assertRelayDenied(decide('<u%example.test@remote.example>', false), /not local/);
  });

  test('a quoted local part without routing characters is fine', () => {
    assert.deepEqual(decide('<"john doe"@example.test>', false), {
      kind: 'local',
      address: 'john doe@example.test',
    });
  });
});

test('property: an untrusted client never relays, and never reaches a local lookup with routing', () => {
  const local = fc.string({
    unit: fc.constantFrom('a', 'B', '.', '%', '!', '@', ' ', '"', '\\', 'é', '+'),
    minLength: 1,
    maxLength: 12,
  });
  const domain = fc.constantFrom(
    'example.test',
    'EXAMPLE.TEST',
    'mail.example.test',
    'remote.example',
    'sub.example.test',
    '[192.0.2.1]',
    '[IPv6:::1]',
  );
  const quoted = (s: string): string => `"${s.replace(/(["\\])/g, '\\$1')}"`;
  fc.assert(
    fc.property(local, domain, fc.boolean(), fc.boolean(), (l, d, quote, route) => {
      const path = `<${route ? '@hop.example:' : ''}${quote ? quoted(l) : l}@${d}>`;
      const r = parseRcpt(`TO:${path}`, true, true);
      if (!r.ok) return;
      const decision = decideRecipient(r.value.recipient, ctx(false));
      assert.notEqual(decision.kind, 'relay', path);
      if (decision.kind === 'local') {
        assert.ok(LOCAL.has(d.toLowerCase()), path);
        assert.doesNotMatch(decision.address.slice(0, decision.address.lastIndexOf('@')), /[%!@]/, path);
      }
    }),
    { numRuns: 5000 },
  );
});
