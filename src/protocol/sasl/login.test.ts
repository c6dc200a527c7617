// LOGIN: the "Username:"/"Password:" dialogue, with and without the username as initial response.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLoginMechanism } from './login.ts';
import type { Step } from './mechanism.ts';

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

function challengeText(step: Step): string {
  assert.equal(step.kind, 'challenge');
  return new TextDecoder().decode(step.data);
}

describe('LOGIN', () => {
  it('asks for the username, then the password, then verification', () => {
    const login = createLoginMechanism();
    assert.equal(challengeText(login.start(null)), 'Username:');
    assert.equal(challengeText(login.next(bytes('user@example.org'))), 'Password:');
    assert.deepEqual(login.next(bytes('pencil')), {
      kind: 'verify',
      request: { kind: 'password', username: 'user@example.org', password: 'pencil' },
    });
    assert.deepEqual(login.resume({ kind: 'accept', identity: 'user@example.org' }), {
      kind: 'success',
      identity: 'user@example.org',
    });
  });

  it('takes the username from the initial response', () => {
    const login = createLoginMechanism();
    assert.equal(challengeText(login.start(bytes('user'))), 'Password:');
    assert.equal(login.next(bytes('pencil')).kind, 'verify');
  });

  it('refuses an empty username or password, NUL and bad UTF-8', () => {
    const cases: [string, (m: ReturnType<typeof createLoginMechanism>) => Step][] = [
      ['empty initial username', (m) => m.start(new Uint8Array(0))],
      ['empty username', (m) => (m.start(null), m.next(new Uint8Array(0)))],
      ['NUL in username', (m) => (m.start(null), m.next(bytes('us\0er')))],
      ['empty password', (m) => (m.start(bytes('user')), m.next(new Uint8Array(0)))],
      ['NUL in password', (m) => (m.start(bytes('user')), m.next(bytes('pen\0cil')))],
      ['password not UTF-8', (m) => (m.start(bytes('user')), m.next(new Uint8Array([0xed, 0xa0, 0x80])))],
    ];
    for (const [why, run] of cases) {
      const step = run(createLoginMechanism());
      assert.equal(step.kind === 'failure' && step.reason, 'malformed', why);
    }
  });

  it('fails on reject', () => {
    const login = createLoginMechanism();
    login.start(bytes('user'));
    login.next(bytes('wrong'));
    const step = login.resume({ kind: 'reject' });
    assert.equal(step.kind === 'failure' && step.reason, 'credentials');
  });
});
