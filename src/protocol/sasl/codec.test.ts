// The AUTH wire codec: strict base64, "*" cancel, "=" empty initial response, the 12288-octet limit.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { decodeBase64Strict, decodeSaslLine, encodeBase64, MAX_SASL_LINE_OCTETS } from './codec.ts';

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

describe('decodeBase64Strict', () => {
  it('decodes canonical base64', () => {
    assert.deepEqual(decodeBase64Strict('AHVzZXIAcGVuY2ls'), bytes('\0user\0pencil'));
    assert.deepEqual(decodeBase64Strict('QQ=='), bytes('A'));
    assert.deepEqual(decodeBase64Strict('QUI='), bytes('AB'));
    assert.deepEqual(decodeBase64Strict(''), new Uint8Array(0));
  });

  it('refuses everything that is not canonical base64', () => {
    for (const bad of [
      'QQ', // padding missing
      'QQ=', // short padding
      'QQ===',
      'Q===',
      'QR==', // non-zero unused bits
      'QUJ=', // non-zero unused bits
      'QQ==QQ==', // padding in the middle
      'dGVz dA==', // inner space
      'dGVzdA== ', // trailing space
      'dGVzdA-_', // URL alphabet
      'dGVzdA==\r',
      'ZGF0YQ==\n',
      'é===',
    ]) {
      assert.equal(decodeBase64Strict(bad), null, bad);
    }
  });

  it('round-trips any bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (data) => {
        assert.deepEqual(decodeBase64Strict(encodeBase64(data)), data);
      }),
    );
  });
});

describe('decodeSaslLine', () => {
  it('reads "*" as cancel in a response, and as malformed in an initial response', () => {
    assert.deepEqual(decodeSaslLine('*'), { kind: 'cancel' });
    assert.deepEqual(decodeSaslLine('*', 'initial'), { kind: 'malformed' });
  });

  it('reads "=" as an empty initial response only (RFC 4954 §4)', () => {
    assert.deepEqual(decodeSaslLine('=', 'initial'), { kind: 'data', data: new Uint8Array(0) });
    assert.deepEqual(decodeSaslLine('='), { kind: 'malformed' });
  });

  it('reads an empty line as an empty response, but not as an initial response', () => {
    assert.deepEqual(decodeSaslLine(''), { kind: 'data', data: new Uint8Array(0) });
    assert.deepEqual(decodeSaslLine('', 'initial'), { kind: 'malformed' });
  });

  it('decodes base64 data and refuses bad base64', () => {
    assert.deepEqual(decodeSaslLine('dXNlcg=='), { kind: 'data', data: bytes('user') });
    assert.deepEqual(decodeSaslLine('dXNlcg'), { kind: 'malformed' });
    assert.deepEqual(decodeSaslLine('**'), { kind: 'malformed' });
  });

  it('accepts a line of exactly 12288 octets and refuses a longer one', () => {
    const max = 'A'.repeat(MAX_SASL_LINE_OCTETS);
    assert.equal(decodeSaslLine(max).kind, 'data');
    assert.deepEqual(decodeSaslLine(`${max}AAAA`), { kind: 'too-long' });
  });

  it('never throws, whatever the line', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300, unit: 'binary' }), fc.boolean(), (line, initial) => {
        const result = decodeSaslLine(line, initial ? 'initial' : 'response');
        assert.ok(['data', 'cancel', 'malformed', 'too-long'].includes(result.kind));
      }),
    );
  });
});
