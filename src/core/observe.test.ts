import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Events } from './events.ts';
import { observingLogger, plainFields, type Observed } from './observe.ts';
import type { LogFields, Logger } from './ports.ts';

function recorder(): { logger: Logger; lines: [string, LogFields | undefined][] } {
  const lines: [string, LogFields | undefined][] = [];
  const logger: Logger = {
    event: (n, f) => lines.push([n, f]),
    warn: (n, f) => lines.push([n, f]),
    error: (n, f) => lines.push([n, f]),
    debug: (n, f) => lines.push([n, f]),
    child: () => logger,
  };
  return { logger, lines };
}

test('observed records: only the listed events, with the child fields, logged as before', () => {
  const { logger, lines } = recorder();
  const seen: Observed[] = [];
  const log = observingLogger(
    logger,
    (o) => seen.push(o),
    () => 42,
  ).child({ session: 's1' });
  log.event(Events.smtpCommand, { verb: 'EHLO' });
  log.event(Events.smtpQueued, { queueId: 'Q1', sender: 'jürgen@example.org', to: ['日本@example.jp'] });
  log.warn(Events.smtpAuthFailed, { mechanism: 'PLAIN', err: new Error('boom'), nested: { a: 1 } });
  log.debug(Events.smtpQueued, { queueId: 'debug-only' });
  assert.equal(lines.length, 4, 'everything is still logged');
  assert.deepEqual(seen, [
    {
      event: 'smtp.queued',
      atMs: 42,
      fields: { session: 's1', queueId: 'Q1', sender: 'jürgen@example.org', to: ['日本@example.jp'] },
    },
    { event: 'security.auth.failed', atMs: 42, fields: { session: 's1', mechanism: 'PLAIN', err: 'boom' } },
  ]);
});

test('plainFields keeps what crosses a thread and JSON: no objects, no functions, no undefined', () => {
  assert.deepEqual(
    plainFields({
      a: 1,
      b: 'x',
      c: null,
      d: [1, 'y', { z: 1 }],
      e: { f: 1 },
      g: () => 1,
      h: undefined,
      i: true,
    }),
    { a: 1, b: 'x', c: null, d: [1, 'y'], i: true },
  );
});
