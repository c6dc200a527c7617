// XCLIENT's attributes decoded without a socket: xtext, unknown values, hostile input.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { parseXclient, parseXclientAddress } from './xclient.ts';

describe('parseXclient', () => {
  test('every attribute, names in any case, xtext decoded (UTF-8 login)', () => {
    const r = parseXclient(
      'name=spike.porcupine.org ADDR=168.100.189.2 PORT=4711 PROTO=ESMTP HELO=a+20b LOGIN=j+C3+BCrgen@example.test DESTADDR=192.0.2.1 DESTPORT=25',
    );
    assert.ok(r.ok);
    assert.deepEqual(Object.fromEntries(r.attributes), {
      NAME: 'spike.porcupine.org',
      ADDR: '168.100.189.2',
      PORT: '4711',
      PROTO: 'ESMTP',
      HELO: 'a b',
      LOGIN: 'jürgen@example.test',
      DESTADDR: '192.0.2.1',
      DESTPORT: '25',
    });
  });

  test('[UNAVAILABLE] and [TEMPUNAVAIL] are unknown values', () => {
    const r = parseXclient('ADDR=[UNAVAILABLE] NAME=[tempunavail]');
    assert.ok(r.ok);
    assert.equal(r.attributes.get('ADDR'), null);
    assert.equal(r.attributes.get('NAME'), null);
  });

  test('refused: nothing, unknown names, bad xtext, control characters, bad ports and protocols', () => {
    for (const bad of [
      '',
      '   ',
      'FOO=1',
      'ADDR',
      '=x',
      'NAME=a+zz',
      'NAME=a+0A',
      'PORT=65536',
      'PORT=x',
      'PROTO=LMTP',
      'NAME=',
    ]) {
      assert.equal(parseXclient(bad).ok, false, bad);
    }
  });

  test('never throws on any input', () => {
    fc.assert(fc.property(fc.string({ maxLength: 200 }), (s) => void parseXclient(s)));
  });
});

describe('parseXclientAddress', () => {
  test('IPv4, IPv6 with IPV6: (RFC 5952 text), IPv4-mapped as IPv4, garbage refused', () => {
    assert.equal(parseXclientAddress('192.0.2.7'), '192.0.2.7');
    assert.equal(parseXclientAddress('IPV6:2001:DB8:0:0::5'), '2001:db8::5');
    assert.equal(parseXclientAddress('::ffff:192.0.2.9'), '192.0.2.9');
    for (const bad of ['example.org', '999.1.1.1', 'IPV6:', '1.2.3'])
      assert.equal(parseXclientAddress(bad), null, bad);
  });
});
