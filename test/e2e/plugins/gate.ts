// A test filter plugin (test/e2e/filters-pipeline.test.ts): its verdict at the end of data is chosen by
// the message's Subject, so one server can show every verdict, action and failure over real SMTP.
//   hang     never answers (the pipeline's timeout decides)
//   throw    throws at once
//   midway   reads part of the message from the spool, then throws (a filter dying mid-message)
//   reject   554 5.7.1 from the filter
//   discard  accepted and dropped
//   junk     quarantined (filed in Junk) with an added field
//   edit     fields added on top, inserted, changed and removed, the body kept
//   body     the body replaced
//   redirect the recipients replaced by 日本@example.test
//   score:N  a score of N
// Every stage it sees is appended to settings.trail (a file), with its name, so order is provable.

import { appendFileSync } from 'node:fs';
import type { FilterFactory, Verdict } from '../../../src/policy/filters/filter.ts';

const factory: FilterFactory = ({ name, settings, timeoutMs, onFailure }) => {
  const trail = typeof settings['trail'] === 'string' ? settings['trail'] : null;
  return {
    name,
    stages: ['mail', 'rcpt', 'headers', 'message'],
    timeoutMs,
    onFailure,
    open: () => ({
      async check(stage, ctx, signal): Promise<Verdict> {
        if (trail !== null) appendFileSync(trail, `${name}:${stage}\n`);
        if (stage !== 'message') return { kind: 'accept' };
        const subject = ctx.message?.headers.find((h) => h.name.toLowerCase() === 'subject')?.value ?? '';
        const [word, arg] = subject.split(':');
        switch (word) {
          case 'hang':
            return new Promise((_resolve, reject) =>
              signal.addEventListener('abort', () => reject(new Error('aborted'))),
            );
          case 'throw':
            throw new Error('the filter crashed');
          case 'midway': {
            let seen = 0;
            for await (const chunk of ctx.message!.read()) {
              seen += chunk.length;
              if (seen > 1000) throw new Error(`died after ${seen} bytes`);
            }
            return { kind: 'accept' };
          }
          case 'reject':
            return {
              kind: 'reject',
              reply: { code: 554, enhanced: '5.7.1', text: 'Refused by the gate' },
              reason: 'subject says reject',
            };
          case 'discard':
            return { kind: 'discard', reason: 'subject says discard' };
          case 'junk':
            return {
              kind: 'quarantine',
              reason: 'subject says junk',
              actions: { headers: [{ op: 'add', name: 'X-Gate', value: 'junk' }] },
            };
          case 'edit':
            return {
              kind: 'accept',
              reason: 'edited',
              actions: {
                headers: [
                  { op: 'add', name: 'X-Gate-Top', value: 'on top' },
                  { op: 'insert', index: 0, name: 'X-Gate-First', value: 'first of the client fields' },
                  { op: 'change', name: 'Subject', occurrence: 1, value: 'edited: 日本語の件名' },
                  { op: 'change', name: 'X-Remove-Me', occurrence: 1, value: null },
                ],
              },
            };
          case 'body':
            return {
              kind: 'accept',
              reason: 'new body',
              actions: { body: [new TextEncoder().encode('The gate replaced this body.\r\n')] },
            };
          case 'redirect':
            // As a milter's SMFIR_ADDRCPT/DELRCPT would: the envelope's recipients change.
            return {
              kind: 'accept',
              reason: 'recipients changed',
              actions: { addRecipients: ['日本@example.test'], deleteRecipients: ctx.recipients },
            };
          case 'score':
            return { kind: 'score', score: Number.parseFloat(arg ?? '0'), reason: 'subject score' };
          default:
            return { kind: 'accept' };
        }
      },
    }),
  };
};

export default factory;
