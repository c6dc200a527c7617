// THREAD (RFC 5256): ORDEREDSUBJECT, REFERENCES step by step (linking, loops, dummies, subject grouping,
// sibling order), the response format of RFC 5256 §4, UTF-8 subjects and ids, and large mailboxes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { scanMessage } from '../mime/structure.ts';
import {
  formatThreadResponse,
  isThreadAlgorithm,
  referencesField,
  threadMessages,
  threadNeeds,
  type ThreadAlgorithm,
  type ThreadMessage,
} from './thread.ts';

interface Spec {
  readonly seq: number;
  readonly id?: string;
  readonly refs?: string;
  readonly irt?: string;
  readonly subject?: string;
  readonly date?: string;
  /** Internal date in minutes; the sequence number by default. */
  readonly at?: number;
}

function message(s: Spec): ThreadMessage {
  const lines = [
    s.id === undefined ? null : `Message-ID: ${s.id}`,
    s.refs === undefined ? null : `References: ${s.refs}`,
    s.irt === undefined ? null : `In-Reply-To: ${s.irt}`,
    s.subject === undefined ? null : `Subject: ${s.subject}`,
    s.date === undefined ? null : `Date: ${s.date}`,
  ].filter((l) => l !== null);
  const raw = Buffer.from(`${lines.join('\r\n')}\r\n\r\nbody\r\n`, 'utf8');
  return {
    id: s.seq,
    seq: s.seq,
    internalDateMs: (s.at ?? s.seq) * 60_000,
    envelope: scanMessage(raw).root.envelope,
    references: referencesField(raw),
  };
}

function thread(algorithm: ThreadAlgorithm, specs: readonly Spec[]): string {
  return formatThreadResponse(threadMessages(algorithm, specs.map(message)));
}

describe('THREAD response format (RFC 5256 §4)', () => {
  it('the RFC example: (2)(3 6 (4 23)(44 7 96)) from References', () => {
    const specs: Spec[] = [
      { seq: 2, id: '<2@x>', subject: 'other' },
      { seq: 3, id: '<3@x>', subject: 'topic' },
      { seq: 6, id: '<6@x>', refs: '<3@x>', subject: 'Re: topic' },
      { seq: 4, id: '<4@x>', refs: '<3@x> <6@x>', subject: 'Re: topic' },
      { seq: 23, id: '<23@x>', refs: '<3@x> <6@x> <4@x>', subject: 'Re: topic' },
      { seq: 44, id: '<44@x>', refs: '<3@x> <6@x>', subject: 'Re: topic' },
      { seq: 7, id: '<7@x>', refs: '<3@x> <6@x> <44@x>', subject: 'Re: topic', at: 45 },
      { seq: 96, id: '<96@x>', refs: '<3@x> <6@x> <44@x> <7@x>', subject: 'Re: topic' },
    ];
    assert.equal(thread('REFERENCES', specs), '* THREAD (2)(3 6 (4 23)(44 7 96))\r\n');
  });

  it('an empty result, and a dummy root shown by its children only', () => {
    assert.equal(formatThreadResponse([]), '* THREAD\r\n');
    assert.equal(
      formatThreadResponse([
        {
          id: null,
          children: [
            { id: 3, children: [] },
            { id: 5, children: [{ id: 8, children: [] }] },
          ],
        },
      ]),
      '* THREAD ((3)(5 8))\r\n',
    );
  });
});

describe('THREAD=ORDEREDSUBJECT', () => {
  it('groups by base subject; the oldest is the parent, threads ordered by their first message', () => {
    const specs: Spec[] = [
      { seq: 1, subject: 'a', date: '1 Jan 2024 10:00 +0000' },
      { seq: 2, subject: 'Re: b', date: '2 Jan 2024 10:00 +0000' },
      { seq: 3, subject: 'B', date: '3 Jan 2024 10:00 +0000' },
      { seq: 4, subject: 'Re: A', date: '4 Jan 2024 10:00 +0000' },
      { seq: 5, subject: '[fwd: a]', date: '31 Dec 2023 10:00 +0000' },
      { seq: 6, subject: 'c' },
    ];
    // 5 is the oldest "a"; 6 has no Date: its internal date (1970) puts it first.
    assert.equal(thread('ORDEREDSUBJECT', specs), '* THREAD (6)(5 (1)(4))(2 3)\r\n');
  });

  it('UTF-8 twins: encoded-word and raw subjects group together', () => {
    const specs: Spec[] = [
      { seq: 1, subject: 'Grüße aus 日本' },
      { seq: 2, subject: 'Re: =?utf-8?q?GR=C3=9CSSE?= aus 日本' },
      { seq: 3, subject: 'Re: =?utf-8?b?R3LDvMOfZSBhdXMg5pel5pys?=' },
    ];
    assert.equal(thread('ORDEREDSUBJECT', specs), '* THREAD (1 3)(2)\r\n');
  });
});

describe('THREAD=REFERENCES', () => {
  it('In-Reply-To stands in when References is absent', () => {
    const specs: Spec[] = [
      { seq: 1, id: '<a@x>', subject: 'one' },
      { seq: 2, id: '<b@x>', irt: '<a@x> <junk@x>', subject: 'two' },
    ];
    assert.equal(thread('REFERENCES', specs), '* THREAD (1 2)\r\n');
  });

  it('a missing parent is a dummy: kept at the top with several children, promoted with one', () => {
    const two: Spec[] = [
      { seq: 1, id: '<a@x>', refs: '<gone@x>', subject: 'first' },
      { seq: 2, id: '<b@x>', refs: '<gone@x>', subject: 'second' },
    ];
    assert.equal(thread('REFERENCES', two), '* THREAD ((1)(2))\r\n');
    const one: Spec[] = [{ seq: 1, id: '<a@x>', refs: '<gone@x> <gone2@x>', subject: 'first' }];
    assert.equal(thread('REFERENCES', one), '* THREAD (1)\r\n');
    // A dummy between two messages is removed and its child moves up.
    const middle: Spec[] = [
      { seq: 1, id: '<a@x>', subject: 'first' },
      { seq: 2, id: '<c@x>', refs: '<a@x> <gone@x>', subject: 'second' },
    ];
    assert.equal(thread('REFERENCES', middle), '* THREAD (1 2)\r\n');
  });

  it('never links a loop', () => {
    const specs: Spec[] = [
      { seq: 1, id: '<a@x>', refs: '<b@x>', subject: 'one' },
      { seq: 2, id: '<b@x>', refs: '<a@x>', subject: 'two' },
      { seq: 3, id: '<c@x>', refs: '<c@x>', subject: 'three' },
    ];
    assert.equal(thread('REFERENCES', specs), '* THREAD (2 1)(3)\r\n');
  });

  it('duplicate and missing Message-IDs are separate messages', () => {
    const specs: Spec[] = [
      { seq: 1, id: '<a@x>', subject: 'one' },
      { seq: 2, id: '<a@x>', subject: 'two' },
      { seq: 3, subject: 'three' },
      { seq: 4, id: '<d@x>', refs: '<a@x>', subject: 'four' },
    ];
    assert.equal(thread('REFERENCES', specs), '* THREAD (1 4)(2)(3)\r\n');
  });

  it('the last reference wins over a link made from a truncated References field', () => {
    const specs: Spec[] = [
      { seq: 1, id: '<a@x>', subject: 'one' },
      { seq: 2, id: '<b@x>', refs: '<a@x>', subject: 'two' },
      // Claims c's parent is a; c itself then says b.
      { seq: 3, id: '<x@x>', refs: '<a@x> <c@x>', subject: 'three' },
      { seq: 4, id: '<c@x>', refs: '<b@x>', subject: 'four' },
    ];
    assert.equal(thread('REFERENCES', specs), '* THREAD (1 2 4 3)\r\n');
  });

  it('roots with one base subject are grouped (RFC 5256 step 5)', () => {
    // A reply joins the non-reply as its child; two non-replies get a dummy parent.
    assert.equal(
      thread('REFERENCES', [
        { seq: 1, id: '<a@x>', subject: 'hello' },
        { seq: 2, id: '<b@x>', subject: 'Re: hello' },
      ]),
      '* THREAD (1 2)\r\n',
    );
    assert.equal(
      thread('REFERENCES', [
        { seq: 1, id: '<a@x>', subject: 'Re: hello' },
        { seq: 2, id: '<b@x>', subject: 'hello' },
      ]),
      '* THREAD (2 1)\r\n',
    );
    assert.equal(
      thread('REFERENCES', [
        { seq: 1, id: '<a@x>', subject: 'hello' },
        { seq: 2, id: '<b@x>', subject: 'HELLO' },
        { seq: 3, id: '<c@x>', subject: 'other' },
        { seq: 4, id: '<d@x>', subject: 'Re: Re: hello' },
      ]),
      '* THREAD ((1)(2)(4))(3)\r\n',
    );
    // A dummy root from references takes a same-subject message in.
    assert.equal(
      thread('REFERENCES', [
        { seq: 1, id: '<a@x>', refs: '<gone@x>', subject: 'Re: x' },
        { seq: 2, id: '<b@x>', refs: '<gone@x>', subject: 'Re: x' },
        { seq: 3, id: '<c@x>', subject: 'x' },
      ]),
      '* THREAD ((1)(2)(3))\r\n',
    );
    // Empty subjects are never grouped.
    assert.equal(
      thread('REFERENCES', [
        { seq: 1, id: '<a@x>', subject: '' },
        { seq: 2, id: '<b@x>', subject: 'Re:' },
      ]),
      '* THREAD (1)(2)\r\n',
    );
  });

  it('siblings and roots are ordered by sent date, then by sequence number', () => {
    const specs: Spec[] = [
      { seq: 1, id: '<r@x>', subject: 'r', date: '1 Jan 2024 10:00 +0000' },
      { seq: 2, id: '<a@x>', refs: '<r@x>', subject: 'a', date: '1 Jan 2024 12:00 +0000' },
      { seq: 3, id: '<b@x>', refs: '<r@x>', subject: 'b', date: '1 Jan 2024 13:00 +0200' },
      { seq: 4, id: '<c@x>', refs: '<r@x>', subject: 'c', date: '1 Jan 2024 12:00 +0000' },
      { seq: 5, id: '<s@x>', subject: 's', date: '31 Dec 2023 10:00 +0000' },
    ];
    assert.equal(thread('REFERENCES', specs), '* THREAD (5)(1 (3)(2)(4))\r\n');
  });

  it('UTF-8 twins: non-ASCII ids and encoded subjects', () => {
    const specs: Spec[] = [
      { seq: 1, id: '<日本@例え.jp>', subject: 'Grüße' },
      {
        seq: 2,
        id: '<jürgen@bücher.example>',
        refs: '<日本@例え.jp>',
        subject: '=?utf-8?q?Re:_Gr=C3=BC=C3=9Fe?=',
      },
      { seq: 3, id: '<z@x>', subject: 'Re: grüße' },
    ];
    assert.equal(thread('REFERENCES', specs), '* THREAD (1 (2)(3))\r\n');
  });

  it('UID THREAD shows UIDs', () => {
    const ms = [message({ seq: 1, id: '<a@x>' }), message({ seq: 2, id: '<b@x>', refs: '<a@x>' })].map(
      (m) => ({
        ...m,
        id: m.seq * 100,
      }),
    );
    assert.equal(formatThreadResponse(threadMessages('REFERENCES', ms)), '* THREAD (100 200)\r\n');
  });
});

describe('THREAD scale', () => {
  it('10,000 messages in busy threads, in well under a second', () => {
    const specs: Spec[] = [];
    for (let i = 1; i <= 10_000; i++) {
      const root = Math.floor((i - 1) / 100) * 100 + 1;
      const refs: string[] = [];
      // Each reply names its thread root and up to ten ancestors, as real References do.
      if (i !== root) {
        refs.push(`<m${root}@x>`);
        for (let p = Math.max(root + 1, i - 10); p < i; p++) refs.push(`<m${p}@x>`);
      }
      specs.push({
        seq: i,
        id: `<m${i}@x>`,
        subject: i === root ? `topic ${root}` : `Re: topic ${root}`,
        ...(refs.length > 0 ? { refs: refs.join(' ') } : {}),
      });
    }
    const input = specs.map(message);
    for (const algorithm of ['REFERENCES', 'ORDEREDSUBJECT'] as const) {
      const start = performance.now();
      const out = formatThreadResponse(threadMessages(algorithm, input));
      const ms = performance.now() - start;
      assert.ok(ms < 1000, `${algorithm} took ${ms} ms`);
      assert.equal(out.match(/\d+/g)?.length, 10_000);
    }
  });

  it('a single reply chain of 10,000 messages does not overflow the stack', () => {
    const input = Array.from({ length: 10_000 }, (_, i) =>
      message({
        seq: i + 1,
        id: `<m${i + 1}@x>`,
        ...(i > 0 ? { refs: `<m${i}@x>` } : {}),
        subject: 'Re: chain',
      }),
    );
    const start = performance.now();
    const out = formatThreadResponse(threadMessages('REFERENCES', input));
    assert.ok(performance.now() - start < 1000);
    assert.equal(out, `* THREAD (${Array.from({ length: 10_000 }, (_, i) => i + 1).join(' ')})\r\n`);
  });

  it('a deep branching tree renders without recursion', () => {
    // Each message has two replies: one that continues the spine and one leaf.
    const specs: Spec[] = [{ seq: 1, id: '<s1@x>', subject: 'deep' }];
    let seq = 2;
    for (let depth = 1; depth < 3000; depth++) {
      specs.push({ seq: seq++, id: `<s${depth + 1}@x>`, refs: `<s${depth}@x>`, subject: 'Re: deep' });
      specs.push({ seq: seq++, id: `<leaf${depth}@x>`, refs: `<s${depth}@x>`, subject: 'Re: deep' });
    }
    const out = formatThreadResponse(threadMessages('REFERENCES', specs.map(message)));
    assert.ok(out.startsWith('* THREAD (1 (2 (4 (6 '));
    assert.equal(out.match(/\(/g)?.length, out.match(/\)/g)?.length);
  });
});

describe('THREAD helpers', () => {
  it('algorithms, needs and the References field', () => {
    assert.equal(isThreadAlgorithm('references'), true);
    assert.equal(isThreadAlgorithm('REFS'), false);
    assert.equal(threadNeeds('REFERENCES'), 'header');
    assert.equal(threadNeeds('ORDEREDSUBJECT'), 'meta');
    const header = Buffer.from('Subject: x\r\nReferences: <a@x>\r\n <b@x>\r\nReferences: <c@x>\r\n\r\n');
    assert.equal(referencesField(header), '<a@x> <b@x> <c@x>');
    assert.equal(referencesField(Buffer.from('Subject: x\r\n\r\n')), null);
  });
});

describe('junk never throws', () => {
  // Headers built from arbitrary text, including brackets, angle brackets, encoded-word debris and
  // non-ASCII: SEARCH, SORT and THREAD are total.
  const junk = fc.stringMatching(/^[ -~\u00e4\u65e5\u00df\t<>()[\]:=?@"]{0,60}$/);
  it('threads, sorts and searches arbitrary headers', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ id: junk, refs: junk, subject: junk, date: junk }), { maxLength: 12 }),
        (rows) => {
          const specs = rows.map((r, i) => ({
            seq: i + 1,
            id: r.id.replace(/[\r\n]/g, ''),
            refs: r.refs,
            subject: r.subject,
            date: r.date,
          }));
          const ms = specs.map(message);
          for (const algorithm of ['REFERENCES', 'ORDEREDSUBJECT'] as const) {
            const out = formatThreadResponse(threadMessages(algorithm, ms));
            // Every message appears exactly once.
            assert.deepEqual(
              (out.match(/\d+/g) ?? []).map(Number).sort((a, b) => a - b),
              specs.map((s) => s.seq),
            );
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
