import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defaultConfig } from '../config/config.ts';
import { configView, REDACTED } from './config-view.ts';

test('the configuration view redacts every secret and turns Maps into objects', () => {
  const base = defaultConfig();
  const config = {
    ...base,
    auth: {
      ...base.auth,
      oauth: { ...(base.auth.oauth ?? {}), hmacSecret: 's3cret', introspectionClientSecret: 'ic' },
    },
    outbound: {
      ...base.outbound,
      relay: { host: 'smtp.example.net', port: 587, auth: { username: 'u', password: 'pw' } },
      transports: new Map([
        ['example.org', { host: 'x', port: 25, auth: { username: 'v', password: 'pw2' } }],
      ]),
    },
  } as unknown as Parameters<typeof configView>[0];
  const view = configView(config);
  const text = JSON.stringify(view);
  for (const secret of ['s3cret', '"ic"', '"pw"', 'pw2'])
    assert.ok(!text.includes(secret), `${secret} leaked: ${text}`);
  assert.ok(text.includes(REDACTED));
  assert.equal(
    (view['outbound'] as { transports: Record<string, { host: string }> }).transports['example.org']?.host,
    'x',
  );
  assert.equal(view['hostname'], 'localhost');
});
