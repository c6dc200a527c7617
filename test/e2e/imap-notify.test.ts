// IMAP NOTIFY (RFC 5465) over real sockets: one client asks for notifications, a second one changes the
// mailbox, and the first hears of it without sending a command (§5: between commands, not only in IDLE):
// STATUS for non-selected folders, LIST for created/renamed/deleted folders and subscriptions, and
// EXISTS/FETCH/EXPUNGE for the selected folder under SELECTED. Each case runs for an ASCII user and a
// UTF-8 one with UTF-8 folder names. Dovecot's own NOTIFY script (test/imaptest/scripts/notify) checks the
// initial STATUS; this file checks what imaptest cannot: responses that arrive unprompted.
// Deliberately NOT here: NOTIFY's parsing and rules (protocol/imap/notify.test.ts, parse-command.test.ts).

import assert from 'node:assert/strict';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { startTern, type Tern } from './harness.ts';

const ACCOUNTS = [
  { address: 'notify@example.test', password: 'notify pw 1234' },
  { address: 'jürgen@example.test', password: 'jürgen pw 1234' },
] as const;

/** A small IMAP client: lines in, tagged commands out, untagged lines kept until taken. */
class Client {
  readonly #socket: TLSSocket;
  #buffer = '';
  readonly #lines: string[] = [];
  #waiter: (() => void) | null = null;
  #tag = 0;

  private constructor(socket: TLSSocket) {
    this.#socket = socket;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.#buffer += chunk;
      for (let i = this.#buffer.indexOf('\r\n'); i >= 0; i = this.#buffer.indexOf('\r\n')) {
        this.#lines.push(this.#buffer.slice(0, i));
        this.#buffer = this.#buffer.slice(i + 2);
      }
      this.#waiter?.();
    });
  }

  static async open(port: number): Promise<Client> {
    const socket = await new Promise<TLSSocket>((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => resolve(s));
      s.once('error', reject);
    });
    const c = new Client(socket);
    await c.next(/^\* OK/);
    return c;
  }

  /** The next line matching `re` (lines before it are dropped), waiting up to 5 s. */
  async next(re: RegExp): Promise<string> {
    const deadline = Date.now() + 5000;
    for (;;) {
      const i = this.#lines.findIndex((l) => re.test(l));
      if (i >= 0) return this.#lines.splice(0, i + 1)[i]!;
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`timed out waiting for ${String(re)}; have ${JSON.stringify(this.#lines)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#waiter = null;
    }
  }

  /** The lines waiting now, without waiting for more. */
  drain(): string[] {
    return this.#lines.splice(0);
  }

  async ok(command: string): Promise<string[]> {
    const before = this.drain();
    const tag = `t${++this.#tag}`;
    this.#socket.write(`${tag} ${command}\r\n`);
    const lines: string[] = [];
    for (;;) {
      const line = await this.next(/^/);
      if (line.startsWith(`${tag} `)) {
        assert.match(line, new RegExp(`^${tag} OK`), `${command}: ${line}`);
        return [...before, ...lines];
      }
      lines.push(line);
    }
  }

  async tagged(command: string): Promise<string> {
    const tag = `t${++this.#tag}`;
    this.#socket.write(`${tag} ${command}\r\n`);
    for (;;) {
      const line = await this.next(/^/);
      if (line.startsWith(`${tag} `)) return line;
    }
  }

  /** A raw line (IDLE's DONE). */
  send(line: string): void {
    this.#socket.write(`${line}\r\n`);
  }

  /** The lines received and not yet taken, without waiting. */
  peek(): readonly string[] {
    return [...this.#lines];
  }

  close(): void {
    this.#socket.destroy();
  }
}

describe('IMAP NOTIFY (RFC 5465) between commands', () => {
  let tern: Tern;
  let port = 0;
  before(async () => {
    tern = await startTern({ users: [...ACCOUNTS] });
    assert.ok(tern.ports.imaps !== undefined);
    port = tern.ports.imaps;
  });
  after(() => tern?.stop());

  const login = async (account: (typeof ACCOUNTS)[number]): Promise<Client> => {
    const c = await Client.open(port);
    await c.ok(`LOGIN "${account.address}" "${account.password}"`);
    await c.ok('ENABLE UTF8=ACCEPT');
    return c;
  };

  for (const [i, account] of ACCOUNTS.entries()) {
    const folder = i === 0 ? 'Lists' : '日本';
    describe(`as ${account.address}`, () => {
      test('STATUS for a non-selected folder arrives without a command', async () => {
        const a = await login(account);
        const b = await login(account);
        try {
          await b.ok(`CREATE "${folder}"`);
          const initial = await a.ok(`NOTIFY SET STATUS (mailboxes "${folder}" (MessageNew MessageExpunge))`);
          assert.ok(
            initial.some((l) =>
              new RegExp(`^\\* STATUS "?${folder}"? \\(MESSAGES 0 UIDNEXT 1 UIDVALIDITY \\d+\\)$`).test(l),
            ),
            JSON.stringify(initial),
          );
          await b.ok(`APPEND "${folder}" {3+}\r\nhi!`);
          assert.match(
            await a.next(/^\* STATUS/),
            new RegExp(`^\\* STATUS "?${folder}"? \\(MESSAGES 1 UIDNEXT 2 `),
          );
          // INBOX is not in the filter: nothing for it.
          await b.ok('APPEND INBOX {3+}\r\nhi!');
          await b.ok(`DELETE "${folder}"`);
          assert.deepEqual(
            (await a.ok('NOOP')).filter((l) => l.includes('INBOX')),
            [],
          );
        } finally {
          a.close();
          b.close();
        }
      });

      test('LIST for created, renamed, deleted and subscribed folders (MailboxName, SubscriptionChange)', async () => {
        const a = await login(account);
        const b = await login(account);
        try {
          await a.ok('NOTIFY SET (personal (MailboxName SubscriptionChange))');
          await b.ok(`CREATE "${folder}"`);
          assert.match(await a.next(/^\* LIST/), new RegExp(`^\\* LIST \\(.*\\) "/" "?${folder}"?$`));
          await b.ok(`SUBSCRIBE "${folder}"`);
          assert.match(
            await a.next(/^\* LIST/),
            new RegExp(`^\\* LIST \\(.*\\\\Subscribed.*\\) "/" "?${folder}"?$`),
          );
          await b.ok(`RENAME "${folder}" "${folder}2"`);
          assert.match(
            await a.next(/^\* LIST/),
            new RegExp(`^\\* LIST \\(.*\\) "/" "?${folder}2"? \\("OLDNAME" \\("?${folder}"?\\)\\)$`),
          );
          await b.ok(`DELETE "${folder}2"`);
          assert.match(
            await a.next(/^\* LIST/),
            new RegExp(`^\\* LIST \\(.*\\\\NonExistent.*\\) "/" "?${folder}2"?$`),
          );
          await b.ok(`UNSUBSCRIBE "${folder}2"`);
          assert.match(
            await a.next(/^\* LIST/),
            new RegExp(`^\\* LIST \\(\\\\NonExistent \\\\Noselect\\) "/" "?${folder}2"?$`),
          );
          await a.ok('NOTIFY NONE');
          await b.ok(`CREATE "${folder}3"`);
          await b.ok(`DELETE "${folder}3"`);
          assert.deepEqual(
            (await a.ok('NOOP')).filter((l) => l.startsWith('* LIST')),
            [],
          );
        } finally {
          a.close();
          b.close();
        }
      });

      test('SELECTED: EXISTS with the fetch attributes asked for, and EXPUNGE, without a command', async () => {
        const a = await login(account);
        const b = await login(account);
        try {
          await b.ok(`CREATE "${folder}"`);
          await a.ok(`SELECT "${folder}"`);
          await a.ok('NOTIFY SET (selected (MessageNew (FLAGS) MessageExpunge FlagChange))');
          await b.ok(`APPEND "${folder}" (\\Flagged) {3+}\r\nhi!`);
          assert.equal(await a.next(/EXISTS$/), '* 1 EXISTS');
          assert.match(await a.next(/FETCH/), /^\* 1 FETCH \(FLAGS \(\\Flagged( \\Recent)?\) UID 1\)$/);
          await b.ok(`SELECT "${folder}"`);
          await b.ok('STORE 1 +FLAGS (\\Deleted)');
          assert.match(await a.next(/FETCH/), /^\* 1 FETCH \(.*\\Deleted/);
          await b.ok('EXPUNGE');
          assert.equal(await a.next(/EXPUNGE$/), '* 1 EXPUNGE');
          await b.ok('CLOSE');
          await b.ok(`DELETE "${folder}"`);
        } finally {
          a.close();
          b.close();
        }
      });

      test('SELECTED-DELAYED: new mail at once, expunges only at a command that allows them', async () => {
        const a = await login(account);
        const b = await login(account);
        try {
          await b.ok(`CREATE "${folder}"`);
          await b.ok(`APPEND "${folder}" {3+}\r\nhi!`);
          await a.ok(`SELECT "${folder}"`);
          await a.ok('NOTIFY SET (selected-delayed (MessageNew MessageExpunge))');
          await b.ok(`SELECT "${folder}"`);
          await b.ok('STORE 1 +FLAGS.SILENT (\\Deleted)');
          await b.ok('EXPUNGE');
          await b.ok(`APPEND "${folder}" {3+}\r\nho!`);
          // The new message is pushed; an expunge would have gone out before it, and none did.
          assert.equal(await a.next(/EXISTS$/), '* 2 EXISTS');
          assert.deepEqual(
            a.peek().filter((l) => l.endsWith('EXPUNGE')),
            [],
          );
          const noop = await a.ok('NOOP');
          assert.ok(noop.includes('* 1 EXPUNGE'), JSON.stringify(noop));
          await b.ok('CLOSE');
          await b.ok(`DELETE "${folder}"`);
        } finally {
          a.close();
          b.close();
        }
      });

      test('in IDLE, the STATUS NOTIFY asked for arrives too', async () => {
        const a = await login(account);
        const b = await login(account);
        try {
          await b.ok(`CREATE "${folder}"`);
          await a.ok('SELECT INBOX');
          await a.ok(`NOTIFY SET (subtree "${folder}" (MessageNew MessageExpunge FlagChange))`);
          a.send('i1 IDLE');
          await a.next(/^\+ /);
          await b.ok(`APPEND "${folder}" (\\Seen) {3+}\r\nhi!`);
          assert.match(
            await a.next(/^\* STATUS/),
            new RegExp(
              `^\\* STATUS "?${folder}"? \\(MESSAGES 1 UIDNEXT 2 UIDVALIDITY \\d+ HIGHESTMODSEQ \\d+\\)$`,
            ),
          );
          a.send('DONE');
          await a.next(/^i1 OK/);
          await b.ok(`DELETE "${folder}"`);
        } finally {
          a.close();
          b.close();
        }
      });

      test('events Tern does not deliver are NO [BADEVENT]; rule breaks are BAD', async () => {
        const a = await login(account);
        try {
          assert.match(
            await a.tagged('NOTIFY SET (selected (MessageNew MessageExpunge AnnotationChange))'),
            /^t\d+ NO \[BADEVENT \(MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange\)\]/,
          );
          assert.match(await a.tagged(`NOTIFY SET (mailboxes "${folder}" (MessageNew))`), /^t\d+ BAD /);
          assert.match(
            await a.tagged('NOTIFY SET (personal (MessageNew (UID) MessageExpunge))'),
            /^t\d+ BAD /,
          );
        } finally {
          a.close();
        }
      });
    });
  }
});
