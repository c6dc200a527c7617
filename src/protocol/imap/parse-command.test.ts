// IMAP command parsing, per command, with the RFCs' own examples (RFC 9051 §6 and the §8 sample
// dialogue, RFC 7162, RFC 5258, RFC 3502, RFC 4469, RFC 5256, RFC 9208, RFC 2971) and UTF-8 names.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseBad, parseOne } from './test-support.ts';

describe('IMAP commands without arguments', () => {
  it('parse, case-insensitively, and refuse trailing arguments', () => {
    for (const [line, kind] of [
      ['a002 CAPABILITY', 'capability'],
      ['a047 NOOP', 'noop'],
      ['A023 LOGOUT', 'logout'],
      ['a001 starttls', 'starttls'],
      ['A001 NAMESPACE', 'namespace'],
      ['a047 IDLE', 'idle'],
      ['A341 CLOSE', 'close'],
      ['A342 UNSELECT', 'unselect'],
      ['FXXZ CHECK', 'check'],
      ['a UNAUTHENTICATE', 'unauthenticate'],
    ] as const)
      assert.deepEqual(parseOne(line), { kind }, line);
    assert.equal(parseBad('a1 NOOP x').kind, 'error');
  });

  it('unknown commands are typed errors that keep the tag', () => {
    assert.deepEqual(parseBad('a1 FROB'), {
      kind: 'error',
      tag: 'a1',
      error: { kind: 'unknown-command', text: 'Unknown command' },
    });
    assert.deepEqual(parseBad('+ NOOP'), {
      kind: 'error',
      tag: null,
      error: { kind: 'syntax', text: 'Missing or invalid tag' },
    });
    assert.equal((parseBad('a1') as { tag: string }).tag, 'a1');
    // Tags are echoed: a non-ASCII one (here U+2028, a line separator) is not a tag.
    assert.deepEqual(parseBad('t\u2028x NOOP'), {
      kind: 'error',
      tag: null,
      error: { kind: 'syntax', text: 'Missing or invalid tag' },
    });
    assert.deepEqual(parseBad('tä1 NOOP'), {
      kind: 'error',
      tag: null,
      error: { kind: 'syntax', text: 'Missing or invalid tag' },
    });
  });
});

describe('IMAP authentication commands', () => {
  it('LOGIN with atoms, quoted strings and UTF-8 (RFC 6855)', () => {
    assert.deepEqual(parseOne('a001 LOGIN SMITH SESAME'), {
      kind: 'login',
      user: 'SMITH',
      password: 'SESAME',
    });
    assert.deepEqual(parseOne('a001 LOGIN "jürgen@example.test" "p\\"w\\\\d"'), {
      kind: 'login',
      user: 'jürgen@example.test',
      password: 'p"w\\d',
    });
    assert.deepEqual(parseOne('a001 LOGIN "日本@example.test" 秘密'), {
      kind: 'login',
      user: '日本@example.test',
      password: '秘密',
    });
    assert.equal(parseBad('a001 LOGIN "a\\x" b').kind, 'error');
    assert.equal(parseBad('a001 LOGIN onlyone').kind, 'error');
  });

  it('AUTHENTICATE with and without an initial response (SASL-IR, RFC 4959)', () => {
    assert.deepEqual(parseOne('A001 AUTHENTICATE GSSAPI'), {
      kind: 'authenticate',
      mechanism: 'GSSAPI',
      initialResponse: null,
    });
    assert.deepEqual(parseOne('a AUTHENTICATE plain dGVzdAB0ZXN0AHRlc3Q='), {
      kind: 'authenticate',
      mechanism: 'PLAIN',
      initialResponse: 'dGVzdAB0ZXN0AHRlc3Q=',
    });
    assert.deepEqual(parseOne('a AUTHENTICATE EXTERNAL ='), {
      kind: 'authenticate',
      mechanism: 'EXTERNAL',
      initialResponse: '',
    });
    assert.equal(parseBad('a AUTHENTICATE PLAIN ab!c').kind, 'error');
  });

  it('ENABLE, ID, COMPRESS', () => {
    assert.deepEqual(parseOne('t2 ENABLE CONDSTORE X-GOOD-IDEA'), {
      kind: 'enable',
      capabilities: ['CONDSTORE', 'X-GOOD-IDEA'],
    });
    assert.equal(parseBad('t2 ENABLE').kind, 'error');
    assert.deepEqual(parseOne('a023 ID ("name" "sodr" "version" "19.34" "vendor" NIL)'), {
      kind: 'id',
      params: [
        ['name', 'sodr'],
        ['version', '19.34'],
        ['vendor', null],
      ],
    });
    assert.deepEqual(parseOne('a023 ID NIL'), { kind: 'id', params: null });
    assert.deepEqual(parseOne('t1 COMPRESS DEFLATE'), { kind: 'compress', algorithm: 'DEFLATE' });
  });
});

describe('IMAP mailbox commands', () => {
  it('SELECT / EXAMINE, INBOX in any case, UTF-8 names, CONDSTORE and QRESYNC (RFC 7162)', () => {
    assert.deepEqual(parseOne('A142 SELECT inbox'), {
      kind: 'select',
      mailbox: 'INBOX',
      condstore: false,
      qresync: null,
    });
    assert.deepEqual(parseOne('A932 EXAMINE blurdybloop'), {
      kind: 'examine',
      mailbox: 'blurdybloop',
      condstore: false,
      qresync: null,
    });
    assert.deepEqual(parseOne('a SELECT "Entwürfe/日本"'), {
      kind: 'select',
      mailbox: 'Entwürfe/日本',
      condstore: false,
      qresync: null,
    });
    assert.equal((parseOne('a142 SELECT INBOX (CONDSTORE)') as { condstore: boolean }).condstore, true);
    const q = parseOne('A02 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))');
    assert.deepEqual((q as { qresync: unknown }).qresync, {
      uidValidity: 67890007,
      modSeq: 20050715194045000n,
      knownUids: {
        kind: 'set',
        ranges: [
          { from: 41, to: 41 },
          { from: 43, to: 211 },
          { from: 214, to: 541 },
        ],
      },
      seqMatch: null,
    });
    const q2 = parseOne(
      'B04 SELECT INBOX (QRESYNC (67890007 90060115194045000 1:29997 (5000,7500,9000,9990:9999 15000,22500,27000,29970,29973,29976,29979,29982,29985,29988,29991,29994,29997)))',
    );
    assert.notEqual((q2 as { qresync: { seqMatch: unknown } }).qresync.seqMatch, null);
    assert.equal(parseBad('a SELECT INBOX (FOO)').kind, 'error');
  });

  it('CREATE (with USE, RFC 6154), DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE', () => {
    assert.deepEqual(parseOne('A003 CREATE owatagusiam/'), {
      kind: 'create',
      mailbox: 'owatagusiam/',
      specialUse: [],
    });
    assert.deepEqual(parseOne('t1 CREATE "Important Messages" (USE (\\Important))'), {
      kind: 'create',
      mailbox: 'Important Messages',
      specialUse: ['\\Important'],
    });
    assert.deepEqual(parseOne('A683 DELETE blurdybloop'), { kind: 'delete', mailbox: 'blurdybloop' });
    assert.deepEqual(parseOne('A683 RENAME blurdybloop sarasoop'), {
      kind: 'rename',
      from: 'blurdybloop',
      to: 'sarasoop',
    });
    assert.deepEqual(parseOne('A002 SUBSCRIBE #news.comp.mail.mime'), {
      kind: 'subscribe',
      mailbox: '#news.comp.mail.mime',
    });
    assert.deepEqual(parseOne('A002 UNSUBSCRIBE "日本"'), { kind: 'unsubscribe', mailbox: '日本' });
  });

  it('LIST, plain and extended (RFC 5258, RFC 5819, RFC 6154)', () => {
    assert.deepEqual(parseOne('A101 LIST "" ""'), {
      kind: 'list',
      reference: '',
      patterns: [''],
      select: [],
      returns: null,
    });
    assert.deepEqual(parseOne('A682 LIST "" *'), {
      kind: 'list',
      reference: '',
      patterns: ['*'],
      select: [],
      returns: null,
    });
    assert.deepEqual(parseOne('A202 LIST ~/Mail/ %'), {
      kind: 'list',
      reference: '~/Mail/',
      patterns: ['%'],
      select: [],
      returns: null,
    });
    assert.deepEqual(parseOne('A04 LIST (SUBSCRIBED RECURSIVEMATCH) "" % RETURN (CHILDREN)'), {
      kind: 'list',
      reference: '',
      patterns: ['%'],
      select: ['SUBSCRIBED', 'RECURSIVEMATCH'],
      returns: { subscribed: false, children: true, specialUse: false, myRights: false, status: null },
    });
    assert.deepEqual(parseOne('A01 LIST "" ("INBOX" "Drafts" "日本/*")'), {
      kind: 'list',
      reference: '',
      patterns: ['INBOX', 'Drafts', '日本/*'],
      select: [],
      returns: { subscribed: false, children: false, specialUse: false, myRights: false, status: null },
    });
    const s = parseOne('A02 LIST "" % RETURN (STATUS (MESSAGES UNSEEN) SPECIAL-USE)');
    assert.deepEqual((s as { returns: unknown }).returns, {
      subscribed: false,
      children: false,
      specialUse: true,
      myRights: false,
      status: ['MESSAGES', 'UNSEEN'],
    });
    assert.equal(parseBad('A04 LIST (RECURSIVEMATCH) "" %').kind, 'error');
    assert.deepEqual(parseOne('A002 LSUB "#news." "comp.mail.*"'), {
      kind: 'lsub',
      reference: '#news.',
      pattern: 'comp.mail.*',
    });
  });

  it('STATUS with every item of RFC 9051, STATUS=SIZE, CONDSTORE, APPENDLIMIT and IMAP4rev1', () => {
    assert.deepEqual(parseOne('A042 STATUS blurdybloop (UIDNEXT MESSAGES)'), {
      kind: 'status',
      mailbox: 'blurdybloop',
      items: ['UIDNEXT', 'MESSAGES'],
    });
    const all = 'MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE HIGHESTMODSEQ APPENDLIMIT RECENT MAILBOXID';
    assert.deepEqual(
      (parseOne(`a STATUS "jürgen" (${all.toLowerCase()})`) as { items: unknown }).items,
      all.split(' '),
    );
    assert.equal(parseBad('a STATUS x (BOGUS)').kind, 'error');
    assert.equal(parseBad('a STATUS x ()').kind, 'error');
  });

  it('quota commands (RFC 9208)', () => {
    assert.deepEqual(parseOne('G0001 GETQUOTA "!partition/sda4"'), {
      kind: 'getquota',
      root: '!partition/sda4',
    });
    assert.deepEqual(parseOne('A003 GETQUOTAROOT INBOX'), { kind: 'getquotaroot', mailbox: 'INBOX' });
    assert.deepEqual(parseOne('S0000 SETQUOTA "#user/alice" (STORAGE 510)'), {
      kind: 'setquota',
      root: '#user/alice',
      limits: [{ resource: 'STORAGE', limit: 510 }],
    });
  });
});

describe('IMAP message commands', () => {
  it('SEARCH: RFC 9051 examples, OR/NOT nesting, CHARSET, dates, sizes', () => {
    assert.deepEqual(parseOne('A282 SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"'), {
      kind: 'search',
      uid: false,
      returns: null,
      program: {
        charset: null,
        key: {
          kind: 'and',
          keys: [
            { kind: 'flag', flag: '\\Flagged', present: true },
            { kind: 'date', field: 'internal', op: 'since', date: { year: 1994, month: 2, day: 1 } },
            { kind: 'not', key: { kind: 'header', field: 'From', value: 'Smith' } },
          ],
        },
      },
    });
    assert.deepEqual((parseOne('A283 SEARCH TEXT "string not in mailbox"') as { program: unknown }).program, {
      charset: null,
      key: { kind: 'text', value: 'string not in mailbox' },
    });
    const or = parseOne('A285 SEARCH OR (FROM jürgen SEEN) NOT (UID 1:* LARGER 100) HEADER X-Tag "日本"');
    assert.equal((or as { program: { key: { kind: string } } }).program.key.kind, 'and');
    assert.deepEqual((parseOne('A284 SEARCH CHARSET UTF-8 TEXT "日本"') as { program: unknown }).program, {
      charset: 'UTF-8',
      key: { kind: 'text', value: '日本' },
    });
    assert.equal(parseBad('a SEARCH 2:4,$').kind, 'error');
    assert.deepEqual(
      (parseOne('a UID SEARCH $ SENTBEFORE "3-Mar-2024"') as { program: { key: unknown } }).program.key,
      {
        kind: 'and',
        keys: [
          { kind: 'sequence', set: { kind: 'saved' } },
          { kind: 'date', field: 'sent', op: 'before', date: { year: 2024, month: 3, day: 3 } },
        ],
      },
    );
    assert.equal(parseBad('a SEARCH SINCE 30-Feb-2024').kind, 'error');
    assert.equal(parseBad('a SEARCH').kind, 'error');
    assert.equal(parseBad('a SEARCH BOGUS').kind, 'error');
  });

  it('SEARCH extensions: ESEARCH RETURN, MODSEQ, WITHIN, SAVEDATE, OBJECTID', () => {
    const e = parseOne('A282 UID SEARCH RETURN (MIN COUNT SAVE) FLAGGED');
    assert.deepEqual((e as { returns: unknown; uid: boolean }).returns, ['MIN', 'COUNT', 'SAVE']);
    assert.deepEqual((parseOne('a SEARCH RETURN () ALL') as { returns: unknown }).returns, []);
    assert.deepEqual(
      (parseOne('a SEARCH MODSEQ "/flags/\\\\draft" all 620162338') as { program: { key: unknown } }).program
        .key,
      {
        kind: 'modseq',
        modSeq: 620162338n,
        entry: { name: '/flags/\\draft', type: 'all' },
      },
    );
    assert.deepEqual((parseOne('a SEARCH YOUNGER 3600') as { program: { key: unknown } }).program.key, {
      kind: 'age',
      op: 'younger',
      seconds: 3600,
    });
    assert.equal(
      (parseOne('a SEARCH SAVEDSINCE 1-Jan-2020 SAVEDATESUPPORTED') as { kind: string }).kind,
      'search',
    );
    assert.deepEqual(
      (parseOne('a SEARCH EMAILID M6d99ac3275bb4e') as { program: { key: unknown } }).program.key,
      {
        kind: 'emailid',
        id: 'M6d99ac3275bb4e',
      },
    );
    assert.equal(parseBad('a SEARCH MODSEQ 9223372036854775808').kind, 'error');
  });

  it('SEARCH nesting beyond the limit is an error, not a stack overflow', () => {
    assert.deepEqual(
      (parseBad(`a SEARCH ${'NOT '.repeat(5000)}ALL`) as { error: { kind: string } }).error.kind,
      'too-deep',
    );
    assert.deepEqual(
      (parseBad(`a SEARCH ${'('.repeat(5000)}ALL${')'.repeat(5000)}`) as { error: { kind: string } }).error
        .kind,
      'too-deep',
    );
  });

  it('FETCH: macros, attributes, sections, partials (RFC 9051 §6.4.5)', () => {
    const f = parseOne('A654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])') as {
      items: unknown;
      set: unknown;
    };
    assert.deepEqual(f.set, { kind: 'set', ranges: [{ from: 2, to: 4 }] });
    assert.deepEqual(f.items, [
      { kind: 'flags' },
      {
        kind: 'section',
        binary: false,
        peek: false,
        section: { part: [], text: { kind: 'fields', not: false, fields: ['DATE', 'FROM'] } },
        partial: null,
      },
    ]);
    assert.deepEqual((parseOne('a FETCH 1 FAST') as { items: unknown }).items, [
      { kind: 'flags' },
      { kind: 'internaldate' },
      { kind: 'rfc822.size' },
    ]);
    assert.equal((parseOne('a FETCH 1:* ALL') as { macro: string }).macro, 'ALL');
    assert.equal((parseOne('a FETCH 1 full') as unknown as { items: unknown[] }).items.length, 5);
    assert.deepEqual(
      (parseOne('a FETCH 4:2 BODY.PEEK[1.2.MIME]<0.2048>') as { items: unknown; set: unknown }).items,
      [
        {
          kind: 'section',
          binary: false,
          peek: true,
          section: { part: [1, 2], text: { kind: 'mime' } },
          partial: { offset: 0, length: 2048 },
        },
      ],
    );
    const all = parseOne(
      'a UID FETCH 1:* (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY BODY[] BODY[TEXT] BODY[1.HEADER.FIELDS.NOT (Received)] BINARY[2]<5.10> BINARY.PEEK[] BINARY.SIZE[1.1] MODSEQ EMAILID THREADID SAVEDATE PREVIEW PREVIEW (LAZY) RFC822 RFC822.HEADER RFC822.TEXT) (CHANGEDSINCE 12345 VANISHED)',
    ) as unknown as { items: unknown[]; changedSince: bigint; vanished: boolean };
    assert.equal(all.items.length, 22); // UID added for UID FETCH
    assert.equal(all.changedSince, 12345n);
    assert.equal(all.vanished, true);
    assert.equal(parseBad('a FETCH 1 (FLAGS) (VANISHED)').kind, 'error');
    const preview = parseOne('a FETCH 1 PREVIEW (CHANGEDSINCE 5)') as unknown as {
      items: unknown;
      changedSince: bigint;
    };
    assert.deepEqual([preview.items, preview.changedSince], [[{ kind: 'preview', lazy: false }], 5n]);
    assert.deepEqual((parseOne('a FETCH 1 preview (lazy)') as unknown as { items: unknown }).items, [
      { kind: 'preview', lazy: true },
    ]);
    assert.equal(parseBad('a FETCH 1 BODY[MIME]').kind, 'error');
    for (const bad of ['BODY[1.]', 'BODY[1TEXT]', 'BODY[1..2]', 'BODY[.TEXT]', 'BODY[0]', 'BODY[1.2.MIMEX]'])
      assert.equal(parseBad(`a FETCH 1 ${bad}`).kind, 'error', bad);
    assert.deepEqual((parseOne('a FETCH 1 BODY[1.2.3]') as unknown as { items: unknown }).items, [
      {
        kind: 'section',
        binary: false,
        peek: false,
        section: { part: [1, 2, 3], text: null },
        partial: null,
      },
    ]);
    assert.deepEqual((parseOne('a FETCH 1 body[2.text]') as unknown as { items: unknown }).items, [
      {
        kind: 'section',
        binary: false,
        peek: false,
        section: { part: [2], text: { kind: 'text' } },
        partial: null,
      },
    ]);
    assert.equal(parseBad('a FETCH 1 BODY[]<0.0>').kind, 'error');
    assert.equal(parseBad('a FETCH 0 FLAGS').kind, 'error');
    assert.equal(parseBad('a FETCH 1 BINARY[TEXT]').kind, 'error');
  });

  it('STORE with +FLAGS/-FLAGS/FLAGS(.SILENT) and UNCHANGEDSINCE', () => {
    assert.deepEqual(parseOne('A003 STORE 2:4 +FLAGS (\\Deleted)'), {
      kind: 'store',
      uid: false,
      set: { kind: 'set', ranges: [{ from: 2, to: 4 }] },
      unchangedSince: null,
      mode: 'add',
      silent: false,
      flags: ['\\Deleted'],
    });
    const s = parseOne(
      'd105 UID STORE 7,5,9 (UNCHANGEDSINCE 320162338) -FLAGS.SILENT \\Seen $Junk',
    ) as Record<string, unknown>;
    assert.equal(s['unchangedSince'], 320162338n);
    assert.equal(s['mode'], 'remove');
    assert.equal(s['silent'], true);
    assert.deepEqual(s['flags'], ['\\Seen', '$Junk']);
    assert.equal((parseOne('a STORE 1 FLAGS ()') as { mode: string }).mode, 'replace');
    assert.equal(parseBad('a STORE 1 LABELS (x)').kind, 'error');
  });

  it('COPY, MOVE, UID forms, EXPUNGE and UID EXPUNGE', () => {
    assert.deepEqual(parseOne('A003 COPY 2:4 MEETING'), {
      kind: 'copy',
      uid: false,
      set: { kind: 'set', ranges: [{ from: 2, to: 4 }] },
      mailbox: 'MEETING',
    });
    assert.deepEqual(parseOne('a UID MOVE 42:69 "日本"'), {
      kind: 'move',
      uid: true,
      set: { kind: 'set', ranges: [{ from: 42, to: 69 }] },
      mailbox: '日本',
    });
    assert.deepEqual(parseOne('A202 EXPUNGE'), { kind: 'expunge', uids: null });
    assert.deepEqual(parseOne('A003 UID EXPUNGE 3000:3002'), {
      kind: 'expunge',
      uids: { kind: 'set', ranges: [{ from: 3000, to: 3002 }] },
    });
    assert.equal(parseBad('a UID NOOP').kind, 'error');
  });

  it('SORT, ESORT, SORT=DISPLAY and THREAD (RFC 5256, RFC 5267, RFC 5957)', () => {
    const s = parseOne('A283 SORT (SUBJECT REVERSE DATE) UTF-8 ALL') as Record<string, unknown>;
    assert.deepEqual(s['criteria'], [
      { reverse: false, key: 'SUBJECT' },
      { reverse: true, key: 'DATE' },
    ]);
    assert.deepEqual(s['program'], { charset: 'UTF-8', key: { kind: 'all' } });
    const e = parseOne('a UID SORT RETURN (COUNT) (DISPLAYFROM) US-ASCII SINCE 1-Feb-1994') as Record<
      string,
      unknown
    >;
    assert.deepEqual(e['returns'], ['COUNT']);
    assert.deepEqual(parseOne('A283 THREAD ORDEREDSUBJECT UTF-8 SINCE 5-MAR-2000'), {
      kind: 'thread',
      uid: false,
      algorithm: 'ORDEREDSUBJECT',
      program: {
        charset: 'UTF-8',
        key: { kind: 'date', field: 'internal', op: 'since', date: { year: 2000, month: 3, day: 5 } },
      },
    });
    assert.equal(parseBad('a SORT (SUBJECT) ALL').kind, 'error');
  });
});

describe('the RFC 9051 §8 sample dialogue', () => {
  it('every client command parses', () => {
    for (const line of [
      'a001 login mrc secret',
      'a002 select inbox',
      'a003 fetch 12 full',
      'a004 fetch 12 body[header]',
      'a005 store 12 +flags \\deleted',
      'a006 logout',
    ])
      assert.notEqual(parseOne(line).kind, undefined, line);
  });
});

describe('NOTIFY (RFC 5465)', () => {
  it('NOTIFY NONE', () => {
    assert.deepEqual(parseOne('a notify none'), { kind: 'notify', set: null });
  });

  it('the RFC 5465 §3.1 and §6 examples', () => {
    assert.deepEqual(
      parseOne(
        'A02 NOTIFY SET STATUS (selected (MessageNew (uid body.peek[header.fields (from to subject)]) MessageExpunge)) (subtree Lists (MessageNew MessageExpunge FlagChange))',
      ),
      {
        kind: 'notify',
        set: {
          status: true,
          groups: [
            {
              filter: { kind: 'selected' },
              events: [
                {
                  name: 'MessageNew',
                  fetch: [
                    { kind: 'uid' },
                    {
                      kind: 'section',
                      binary: false,
                      peek: true,
                      section: {
                        part: [],
                        text: { kind: 'fields', not: false, fields: ['from', 'to', 'subject'] },
                      },
                      partial: null,
                    },
                  ],
                },
                { name: 'MessageExpunge', fetch: null },
              ],
            },
            {
              filter: { kind: 'subtree', mailboxes: ['Lists'] },
              events: [
                { name: 'MessageNew', fetch: null },
                { name: 'MessageExpunge', fetch: null },
                { name: 'FlagChange', fetch: null },
              ],
            },
          ],
        },
      },
    );
    assert.deepEqual(parseOne('a NOTIFY SET (PERSONAL (MailboxName SubscriptionChange)) (inboxes NONE)'), {
      kind: 'notify',
      set: {
        status: false,
        groups: [
          {
            filter: { kind: 'personal' },
            events: [
              { name: 'MailboxName', fetch: null },
              { name: 'SubscriptionChange', fetch: null },
            ],
          },
          { filter: { kind: 'inboxes' }, events: [] },
        ],
      },
    });
  });

  it('mailbox lists, INBOX in any case, UTF-8 names and unknown events kept as written', () => {
    assert.deepEqual(
      parseOne('a NOTIFY SET (mailboxes (inbox "Jürgen" 日本) (messagenew messageexpunge XFoo))'),
      {
        kind: 'notify',
        set: {
          status: false,
          groups: [
            {
              filter: { kind: 'mailboxes', mailboxes: ['INBOX', 'Jürgen', '日本'] },
              events: [
                { name: 'MessageNew', fetch: null },
                { name: 'MessageExpunge', fetch: null },
                { name: 'XFoo', fetch: null },
              ],
            },
          ],
        },
      },
    );
    assert.deepEqual(parseOne('a NOTIFY SET (subtree 日本/東京 (MailboxName))'), {
      kind: 'notify',
      set: {
        status: false,
        groups: [
          {
            filter: { kind: 'subtree', mailboxes: ['日本/東京'] },
            events: [{ name: 'MailboxName', fetch: null }],
          },
        ],
      },
    });
  });

  it('refuses what the grammar does not allow', () => {
    for (const line of [
      'a NOTIFY',
      'a NOTIFY SET',
      'a NOTIFY SET STATUS',
      'a NOTIFY SET (selected)',
      'a NOTIFY SET (selected ())',
      'a NOTIFY SET (everything (MessageNew))',
      'a NOTIFY SET (mailboxes (MessageNew))',
      'a NOTIFY SET (selected (MessageNew (FROB) MessageExpunge))',
      'a NOTIFY SET (selected (MessageNew MessageExpunge)) ',
      'a NOTIFY NONE x',
    ])
      assert.equal(parseBad(line).kind, 'error', line);
  });
});

describe('CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267)', () => {
  it('RETURN (UPDATE CONTEXT PARTIAL m:n), a reversed range read low to high', () => {
    const s = parseOne('A02 UID SEARCH RETURN (PARTIAL 23500:24000) UNDELETED UNKEYWORD $Junk');
    assert.deepEqual((s as { returns: unknown }).returns, ['PARTIAL']);
    assert.deepEqual((s as { partial: unknown }).partial, { first: 23500, last: 24000 });
    const r = parseOne('a SEARCH RETURN (update count partial 4:2) SUBJECT jürgen');
    assert.deepEqual((r as { returns: unknown }).returns, ['UPDATE', 'COUNT', 'PARTIAL']);
    assert.deepEqual((r as { partial: unknown }).partial, { first: 2, last: 4 });
    const c = parseOne('a SEARCH RETURN (CONTEXT COUNT) UNDELETED') as Record<string, unknown>;
    assert.deepEqual(c['returns'], ['CONTEXT', 'COUNT']);
    assert.equal('partial' in c, false);
    const o = parseOne('B02 UID SORT RETURN (UPDATE PARTIAL 1:5) (REVERSE ARRIVAL) UTF-8 FROM 日本');
    assert.deepEqual((o as { returns: unknown }).returns, ['UPDATE', 'PARTIAL']);
    assert.deepEqual((o as { partial: unknown }).partial, { first: 1, last: 5 });
  });

  it('PARTIAL needs a range of two non-zero numbers, and never comes with ALL', () => {
    for (const line of [
      'a SEARCH RETURN (PARTIAL 1) ALL',
      'a SEARCH RETURN (PARTIAL 1:*) ALL',
      'a SEARCH RETURN (PARTIAL *:1) ALL',
      'a SEARCH RETURN (PARTIAL 0:3) ALL',
      'a SEARCH RETURN (ALL PARTIAL 1:3) ALL',
      'a SEARCH RETURN (PARTIAL 1:3 PARTIAL 4:5) ALL',
      'a SORT RETURN (PARTIAL 1) (ARRIVAL) US-ASCII ALL',
    ])
      assert.equal(parseBad(line).kind, 'error', line);
  });

  it('CANCELUPDATE takes one or more tags, UTF-8 too', () => {
    assert.deepEqual(parseOne('B04 CANCELUPDATE "B01"'), { kind: 'cancelupdate', tags: ['B01'] });
    assert.deepEqual(parseOne('B05 CANCELUPDATE "B01" "jürgen" "日本"'), {
      kind: 'cancelupdate',
      tags: ['B01', 'jürgen', '日本'],
    });
    assert.equal(parseBad('B06 CANCELUPDATE').kind, 'error');
  });
});

describe('URLAUTH commands (RFC 4467 §6, RFC 5524 §4)', () => {
  it('GENURLAUTH takes rump and mechanism pairs', () => {
    assert.deepEqual(
      parseOne(
        'a GENURLAUTH "imap://joe@example.com/INBOX/;uid=20/;section=1.2;urlauth=submit+fred" INTERNAL "imap://j%C3%BCrgen@ex.org/%E6%97%A5%E6%9C%AC/;uid=1;urlauth=authuser" internal',
      ),
      {
        kind: 'genurlauth',
        urls: [
          {
            rump: 'imap://joe@example.com/INBOX/;uid=20/;section=1.2;urlauth=submit+fred',
            mechanism: 'INTERNAL',
          },
          {
            rump: 'imap://j%C3%BCrgen@ex.org/%E6%97%A5%E6%9C%AC/;uid=1;urlauth=authuser',
            mechanism: 'INTERNAL',
          },
        ],
      },
    );
    assert.equal(parseBad('a GENURLAUTH "imap://x@y/INBOX/;uid=1;urlauth=authuser"').kind, 'error');
  });

  it('RESETKEY with no mailbox, a mailbox, a UTF-8 mailbox and mechanisms', () => {
    assert.deepEqual(parseOne('a RESETKEY'), { kind: 'resetkey', mailbox: null, mechanisms: [] });
    assert.deepEqual(parseOne('a RESETKEY INBOX INTERNAL'), {
      kind: 'resetkey',
      mailbox: 'INBOX',
      mechanisms: ['INTERNAL'],
    });
    assert.deepEqual(parseOne('a RESETKEY "Entwürfe/日本"'), {
      kind: 'resetkey',
      mailbox: 'Entwürfe/日本',
      mechanisms: [],
    });
  });

  it('URLFETCH plain and with RFC 5524 parameters', () => {
    const url = 'imap://u@localhost/box/;uid=1;urlauth=authuser:internal:0123456789abcdef0123456789abcdef';
    assert.deepEqual(parseOne(`a URLFETCH ${url} ("${url}" BINARY bodypartstructure) (${url})`), {
      kind: 'urlfetch',
      urls: [
        { url, params: null },
        { url, params: ['BINARY', 'BODYPARTSTRUCTURE'] },
        { url, params: [] },
      ],
    });
    assert.deepEqual(parseOne('a URLFETCH "imap://jürgen@exämple.org/日本/;uid=2"'), {
      kind: 'urlfetch',
      urls: [{ url: 'imap://jürgen@exämple.org/日本/;uid=2', params: null }],
    });
    assert.equal(parseBad(`a URLFETCH (${url} BODY BINARY)`).kind, 'error');
    assert.equal(parseBad(`a URLFETCH (${url} FOO)`).kind, 'error');
    assert.equal(parseBad('a URLFETCH').kind, 'error');
  });
});
