import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cookieValue } from './auth.ts';
import { acceptableHost } from './server.ts';

test('Host names the admin listener answers to (a rebinding page brings its own name)', () => {
  const names = ['mx.example.org', 'example.org', 'xn--mnchen-3ya.example'];
  for (const ok of [
    '127.0.0.1',
    '127.0.0.1:8025',
    '[::1]:8025',
    'localhost:8025',
    'LOCALHOST',
    'mx.example.org',
    'MX.Example.Org.:443',
    'admin.example.org',
    'xn--mnchen-3ya.example',
    '192.0.2.7',
  ])
    assert.ok(acceptableHost(ok, names), ok);
  for (const bad of [
    undefined,
    '',
    'attacker.example',
    'example.org.attacker.example',
    'notexample.org',
    '[not-an-ip]:8025',
    'localhost.attacker.example',
  ])
    assert.ok(!acceptableHost(bad, names), String(bad));
});

test('cookie values: the named one, whatever else the header holds', () => {
  assert.equal(cookieValue('a=1; tern_admin=abc; b=2', 'tern_admin'), 'abc');
  assert.equal(cookieValue('tern_admin_x=1;tern_admin=v', 'tern_admin'), 'v');
  assert.equal(cookieValue('other=1', 'tern_admin'), null);
  assert.equal(cookieValue(undefined, 'tern_admin'), null);
  assert.equal(cookieValue('garbage', 'tern_admin'), null);
});
