import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from './logger.ts';
import { Events } from '../core/events.ts';

function sink(): { lines: string[]; write(line: string): void } {
  const lines: string[] = [];
  return { lines, write: (chunk: string) => void lines.push(chunk) };
}

function records(lines: readonly string[]): Record<string, unknown>[] {
  return lines.map((l) => {
    assert.ok(l.endsWith('\n'), 'one complete line per write');
    assert.equal(l.indexOf('\n'), l.length - 1, 'exactly one line per event');
    return JSON.parse(l) as Record<string, unknown>;
  });
}

test('json lines carry event, session and queueId from child loggers', () => {
  const out = sink();
  const log = createLogger({ level: 'info', format: 'json', destination: out });
  const session = log.child({ session: 's1' });
  session.event(Events.smtpConnect, { ip: '192.0.2.1' });
  session.child({ queueId: 'q42' }).event(Events.smtpQueued, { size: 10 });
  const [connect, queued] = records(out.lines);
  assert.equal(connect!.event, 'smtp.connect');
  assert.equal(connect!.session, 's1');
  assert.equal(connect!.ip, '192.0.2.1');
  assert.equal(connect!.level, 'info');
  assert.equal(connect!.queueId, undefined);
  assert.equal(queued!.event, 'smtp.queued');
  assert.equal(queued!.session, 's1');
  assert.equal(queued!.queueId, 'q42');
  assert.equal(queued!.size, 10);
  assert.match(String(queued!.time), /^\d{4}-\d\d-\d\dT/);
});

test('warn and error levels; errors keep message and stack; a field named event cannot hide the name', () => {
  const out = sink();
  const log = createLogger({ level: 'info', format: 'json', destination: out });
  log.warn(Events.deliveryDeferred, { event: 'spoofed' });
  log.error(Events.deliveryWorkerError, { err: new Error('disk on fire') });
  const [w, e] = records(out.lines);
  assert.equal(w!.level, 'warn');
  assert.equal(w!.event, 'delivery.deferred');
  assert.equal(e!.level, 'error');
  const err = e!.err as { message: string; stack: string; type: string };
  assert.equal(err.message, 'disk on fire');
  assert.equal(err.type, 'Error');
  assert.match(err.stack, /logger\.test\.ts/);
});

test('level filters: warn drops info events', () => {
  const out = sink();
  const log = createLogger({ level: 'warn', format: 'json', destination: out });
  log.event(Events.smtpConnect);
  log.child({ session: 'x' }).event(Events.smtpClose);
  log.warn(Events.tlsFailed);
  assert.deepEqual(
    records(out.lines).map((r) => r.event),
    ['smtp.tls.failed'],
  );
});

test('pretty writes one human line per event, synchronously, with the event name and fields', () => {
  const out = sink();
  const log = createLogger({ level: 'info', format: 'pretty', destination: out });
  log.child({ session: 'abc' }).event(Events.smtpConnect, { ip: '192.0.2.7' });
  // Synchronous: the line is there as soon as event() returns.
  assert.equal(out.lines.length, 1);
  const line = out.lines[0]!;
  assert.throws(() => JSON.parse(line) as unknown, 'not JSON');
  assert.match(line, /INFO/);
  assert.match(line, /smtp\.connect/);
  assert.match(line, /"session":"abc"/);
  assert.match(line, /192\.0\.2\.7/);
  assert.ok(line.endsWith('\n'));
  assert.equal(line.trimEnd().includes('\n'), false);
});

test('auto with an explicit destination writes JSON (a stream is not a terminal)', () => {
  const out = sink();
  const log = createLogger({ level: 'info', format: 'auto', destination: out });
  log.event(Events.serverListening, { port: 25 });
  assert.equal(records(out.lines)[0]!.event, 'server.listening');
});

test('debug events are written at level debug only', () => {
  const quiet = sink();
  createLogger({ level: 'info', format: 'json', destination: quiet }).debug(Events.smtpCommand, {
    verb: 'NOOP',
  });
  assert.deepEqual(quiet.lines, []);
  const out = sink();
  createLogger({ level: 'debug', format: 'json', destination: out })
    .child({ session: 's2' })
    .debug(Events.smtpCommand, { verb: 'NOOP' });
  const [line] = records(out.lines);
  assert.equal(line!.level, 'debug');
  assert.equal(line!.event, 'smtp.command');
  assert.equal(line!.session, 's2');
});

test('times are ISO 8601 in UTC in both formats, the same text', () => {
  const iso = /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/;
  const json = sink();
  createLogger({ level: 'info', format: 'json', destination: json }).event(Events.smtpConnect);
  assert.match(String(records(json.lines)[0]!.time), new RegExp(`^${iso.source}$`));
  const pretty = sink();
  createLogger({ level: 'info', format: 'pretty', destination: pretty }).event(Events.smtpConnect);
  assert.match(pretty.lines[0]!, new RegExp(`^\\[${iso.source}\\]`));
});
