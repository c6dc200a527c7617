import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Logger } from '../../core/ports.ts';
import type { Filter, FilterClient, FilterOutcome, FilterStage, Verdict } from './filter.ts';
import { FilterRun, type StageInput } from './pipeline.ts';

const CLIENT: FilterClient = {
  ip: '192.0.2.7',
  port: 40000,
  hostname: null,
  helo: 'mx.example',
  tls: false,
  authUser: null,
  service: 'smtp',
  localAddress: '127.0.0.1',
  localPort: 25,
};
const INPUT: StageInput = {
  queueId: null,
  mailFrom: '日本@example.jp',
  mailParams: new Map(),
  recipients: [],
};
const LOG: Logger = {
  event: () => undefined,
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  child: () => LOG,
} as unknown as Logger; // only the pipeline's own calls matter here; it makes none

const REPLY = { code: 550, enhanced: '5.7.1', text: 'no' };

/** A filter whose verdict per stage is scripted; it records what ran. */
function scripted(
  name: string,
  stages: readonly FilterStage[],
  verdict: (stage: FilterStage) => Verdict | 'hang' | 'throw',
  opts: { timeoutMs?: number; onFailure?: 'tempfail' | 'accept'; log?: string[] } = {},
): Filter {
  return {
    name,
    stages,
    timeoutMs: opts.timeoutMs ?? 1000,
    onFailure: opts.onFailure ?? 'accept',
    open: () => ({
      check: (stage, _ctx, signal) => {
        opts.log?.push(`${name}:${stage}`);
        const v = verdict(stage);
        if (v === 'throw') return Promise.reject(new Error('boom'));
        if (v === 'hang')
          return new Promise((_resolve, reject) =>
            signal.addEventListener('abort', () => reject(new Error('aborted'))),
          );
        return Promise.resolve(v);
      },
      reset: () => opts.log?.push(`${name}:reset`),
      close: () => opts.log?.push(`${name}:close`),
    }),
  };
}

function run(filters: Filter[], outcomes: FilterOutcome[] = []): FilterRun {
  return new FilterRun(
    filters,
    () => CLIENT,
    LOG,
    (o) => outcomes.push(o),
  );
}

describe('the filter pipeline: order, stages, timeouts, failure modes', () => {
  test('a slow filter costs its timeout; tempfail defers with 451 4.7.1 and ends the stage', async () => {
    const outcomes: FilterOutcome[] = [];
    const log: string[] = [];
    const p = run(
      [
        scripted('slow', ['mail'], () => 'hang', { timeoutMs: 30, onFailure: 'tempfail' }),
        scripted('after', ['mail'], () => ({ kind: 'reject', reply: REPLY, reason: 'x' }), { log }),
      ],
      outcomes,
    );
    const started = performance.now();
    const r = await p.mail(INPUT);
    assert.ok(performance.now() - started < 500);
    assert.equal(r.kind, 'refuse');
    if (r.kind === 'refuse') assert.deepEqual([r.reply.code, r.reply.enhanced], [451, '4.7.1']);
    assert.deepEqual(log, [], 'the stage ended at the deferral');
    assert.match(outcomes[0]!.failed ?? '', /no answer within 30 ms/);
  });

  test('on_failure = "accept": a slow or throwing filter lets the next one decide', async () => {
    const outcomes: FilterOutcome[] = [];
    const p = run(
      [
        scripted('slow', ['mail'], () => 'hang', { timeoutMs: 30 }),
        scripted('throws', ['mail'], () => 'throw'),
        scripted('after', ['mail'], () => ({ kind: 'reject', reply: REPLY, reason: 'listed' })),
      ],
      outcomes,
    );
    const r = await p.mail(INPUT);
    assert.equal(r.kind, 'refuse');
    if (r.kind === 'refuse') assert.equal(r.reply.code, 550);
    assert.deepEqual(
      outcomes.map((o) => [o.filter, o.verdict.kind, o.failed ?? null]),
      [
        ['slow', 'accept', 'no answer within 30 ms'],
        ['throws', 'accept', 'boom'],
        ['after', 'reject', null],
      ],
    );
  });

  test('order is config order; connect and HELO run once at the first MAIL; stages keep to their filters', async () => {
    const log: string[] = [];
    const accept = (): Verdict => ({ kind: 'accept' });
    const p = run([
      scripted('b', ['connect', 'rcpt'], accept, { log }),
      scripted('a', ['helo', 'mail', 'message'], accept, { log }),
    ]);
    await p.mail(INPUT);
    await p.mail(INPUT);
    await p.run('rcpt', { ...INPUT, rcpt: 'bob@example.org' });
    assert.deepEqual(log, ['b:connect', 'a:helo', 'a:mail', 'a:mail', 'b:rcpt']);
    assert.equal(p.has('message'), true);
    assert.equal(p.has('headers'), false);
  });

  test('a refusal at connect is kept for the connection: every MAIL gets it', async () => {
    let calls = 0;
    const p = run([
      scripted('c', ['connect'], () => {
        calls++;
        return { kind: 'reject', reply: REPLY, reason: 'bad client' };
      }),
    ]);
    assert.equal((await p.mail(INPUT)).kind, 'refuse');
    assert.equal((await p.mail(INPUT)).kind, 'refuse');
    assert.equal(calls, 1);
  });

  test('scores add up, actions gather, quarantine and discard are kept; reset clears them', async () => {
    const log: string[] = [];
    const p = run([
      scripted(
        's1',
        ['message'],
        () => ({
          kind: 'score',
          score: 2.5,
          reason: 'a',
          actions: { headers: [{ op: 'add', name: 'X-Spam-Score', value: '2.5' }] },
        }),
        { log },
      ),
      scripted('q', ['message'], () => ({ kind: 'quarantine', reason: 'looks like spam' })),
      scripted('s2', ['message'], () => ({
        kind: 'score',
        score: 1.25,
        reason: 'b',
        actions: { addRecipients: ['日本@example.jp'], deleteRecipients: ['bob@example.org'] },
      })),
      scripted('d', ['message'], () => ({ kind: 'discard', reason: 'milter said so' })),
      scripted('never', ['message'], () => ({ kind: 'reject', reply: REPLY, reason: 'too late' }), { log }),
    ]);
    const r = await p.run('message', INPUT);
    assert.equal(r.kind, 'continue');
    const res = p.results();
    assert.equal(res.score, 3.75);
    assert.equal(p.facts.score, 3.75);
    assert.equal(res.quarantine, 'q: looks like spam');
    assert.equal(res.discard, 'd: milter said so');
    assert.deepEqual(res.headers, [{ op: 'add', name: 'X-Spam-Score', value: '2.5' }]);
    assert.deepEqual(res.addRecipients, ['日本@example.jp']);
    assert.deepEqual(res.deleteRecipients, ['bob@example.org']);
    assert.deepEqual(res.summary, ['s1=2.5', 'q=quarantine', 's2=1.25', 'd=discard']);
    assert.ok(!log.includes('never:message'), 'nothing runs after a discard');
    p.reset();
    assert.equal(p.results().score, 0);
    assert.equal(p.results().discard, null);
    assert.ok(log.includes('s1:reset'));
    p.close();
    assert.ok(log.includes('s1:close'));
  });

  test('a filter whose open() throws fails by its own failure mode, the others still run', async () => {
    const broken: Filter = {
      name: 'broken',
      stages: ['mail'],
      timeoutMs: 100,
      onFailure: 'tempfail',
      open: () => {
        throw new Error('cannot start');
      },
    };
    const outcomes: FilterOutcome[] = [];
    const r = await run([broken], outcomes).mail(INPUT);
    assert.equal(r.kind, 'refuse');
    assert.equal(outcomes[0]!.failed, 'cannot start');
  });
});
