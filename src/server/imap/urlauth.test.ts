// URLAUTH (RFC 4467, RFC 5524) and CATENATE (RFC 4469) against a real SQLite mailbox store: GENURLAUTH
// and URLFETCH round trips, the access rules, RESETKEY, BINARY/BODYPARTSTRUCTURE, and APPEND CATENATE
// driven as the connection drives it (begin → data → finish), for ASCII and UTF-8 users and folders.

import { SharedUids } from './shared-uids.ts';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { nullLogger } from '../../core/ports.ts';
import type { AppendMessage, ImapCommand } from '../../protocol/imap/command.ts';
import { formatAstring } from '../../protocol/imap/format.ts';
import { percentEncode } from '../../protocol/imap/imap-url.ts';
import { SqliteMailboxStore } from '../../store/sqlite-mailbox-store.ts';
import { AppendCommand } from './append.ts';
import type { Completion, ImapContext } from './context.ts';
import { burlContent, genurlauth, resetkey, urlfetch } from './urlauth.ts';

const NOW = Date.UTC(2026, 11, 7, 1, 0, 0);
const enc = new TextEncoder();

const MESSAGE =
  'From: jürgen@exämple.org\r\nSubject: 日本\r\nMIME-Version: 1.0\r\n' +
  'Content-Type: multipart/mixed; boundary="b"\r\n\r\n' +
  '--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHallo Jürgen\r\n' +
  '--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n' +
  'AAECaGk=\r\n--b--\r\n';

interface Session {
  readonly ctx: ImapContext;
  /** What the handlers wrote, as text (literals included). */
  output(): string;
}

let dir: string;
let store: SqliteMailboxStore;

function session(user: string): Session {
  const out: Uint8Array[] = [];
  const put = (d: string | Uint8Array): void => {
    out.push(typeof d === 'string' ? enc.encode(d) : d);
  };
  const ctx: ImapContext = {
    user,
    store,
    directory: { getQuota: () => Promise.resolve(null) },
    sharedUids: new SharedUids(),
    log: nullLogger,
    enabled: { condstore: false, qresync: false, utf8: true, imap4rev2: true },
    nowMs: () => NOW,
    view: null,
    write: put,
    send: (d) => {
      put(d);
      return Promise.resolve();
    },
    savedResult: null,
    appendLimitBytes: 1 << 20,
  };
  return {
    ctx,
    output: () => {
      const text = Buffer.concat(out).toString('utf8');
      out.length = 0;
      return text;
    },
  };
}

async function put(user: string, folder: string, text: string): Promise<number> {
  await store.ensureDefaults(user);
  if (!(await store.folders(user)).some((f) => f.name === folder)) await store.createFolder(user, folder);
  const bytes = enc.encode(text);
  const r = await store.append(user, folder, {
    flags: [],
    internalDateMs: NOW,
    content: (async function* () {
      await Promise.resolve();
      yield bytes;
    })(),
  });
  return r.uid;
}

/** GENURLAUTH one rump; the URL it answers. */
async function generate(s: Session, rump: string): Promise<string> {
  const c = await genurlauth(s.ctx, { kind: 'genurlauth', urls: [{ rump, mechanism: 'INTERNAL' }] });
  assert.equal(c.status, 'OK', c.text);
  const m = /^\* GENURLAUTH "(.*)"\r\n$/.exec(s.output());
  assert.ok(m, 'one GENURLAUTH response');
  return m[1]!;
}

async function fetchUrl(
  s: Session,
  url: string,
  params: ImapCommand & { kind: 'urlfetch' } = plain(url),
): Promise<string> {
  const c = await urlfetch(s.ctx, params);
  assert.equal(c.status, 'OK');
  return s.output();
}

/** A URL as URLFETCH echoes it: an atom where it can be, else quoted. */
function astring(url: string): string {
  return formatAstring(url, { utf8: true });
}

function plain(url: string): ImapCommand & { kind: 'urlfetch' } {
  return { kind: 'urlfetch', urls: [{ url, params: null }] };
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tern-urlauth-'));
  store = await SqliteMailboxStore.open({ dir, clock: { nowMs: () => NOW } });
});

after(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

for (const { user, local, domain, folder } of [
  { user: 'alice@example.org', local: 'alice', domain: 'example.org', folder: 'INBOX' },
  { user: 'jürgen@exämple.org', local: 'jürgen', domain: 'exämple.org', folder: 'Entwürfe/日本' },
]) {
  describe(`URLAUTH for ${user} in ${folder}`, () => {
    it('GENURLAUTH signs the rump; URLFETCH answers the message, then NIL after RESETKEY', async () => {
      const uid = await put(user, folder, MESSAGE);
      const s = session(user);
      const rump = `imap://${percentEncode(local)}@${domain}/${percentEncode(folder)}/;uid=${uid};urlauth=user+${percentEncode(user)}`;
      const url = await generate(s, rump);
      assert.match(url, /:internal:[0-9a-f]{64}$/);
      assert.ok(url.startsWith(rump));
      const body = await fetchUrl(s, url);
      const size = enc.encode(MESSAGE).length;
      assert.equal(body, `* URLFETCH ${astring(url)} {${size}}\r\n${MESSAGE}\r\n`);
      // A token changed in one digit, and another user, get NIL.
      const wrong = url.slice(0, -1) + (url.endsWith('0') ? '1' : '0');
      assert.equal(await fetchUrl(s, wrong), `* URLFETCH ${astring(wrong)} NIL\r\n`);
      const other = session('bob@example.org');
      assert.equal(await fetchUrl(other, url), `* URLFETCH ${astring(url)} NIL\r\n`);
      const c = await resetkey(s.ctx, { kind: 'resetkey', mailbox: folder, mechanisms: [] });
      assert.equal(c.status, 'OK');
      assert.equal(await fetchUrl(s, url), `* URLFETCH ${astring(url)} NIL\r\n`);
    });

    it('authuser admits another user; submit+ admits nobody over IMAP; EXPIRE is honoured', async () => {
      const uid = await put(user, folder, MESSAGE);
      const s = session(user);
      const base = `imap://${percentEncode(user)}@mail.example.net/${percentEncode(folder)}/;uid=${uid}/;section=1`;
      const anyone = await generate(s, `${base};urlauth=authuser`);
      assert.equal(
        await fetchUrl(session('日本@例え.jp'), anyone),
        `* URLFETCH ${astring(anyone)} {13}\r\nHallo Jürgen\r\n`,
      );
      const submit = await generate(s, `${base};urlauth=submit+${percentEncode(user)}`);
      assert.equal(await fetchUrl(s, submit), `* URLFETCH ${astring(submit)} NIL\r\n`);
      const expired = await generate(s, `${base};expire=2026-12-07T00:59:59Z;urlauth=authuser`);
      assert.equal(await fetchUrl(s, expired), `* URLFETCH ${astring(expired)} NIL\r\n`);
      const later = await generate(s, `${base};expire=2026-12-07T02:00:00+00:30;urlauth=authuser`);
      assert.match(await fetchUrl(s, later), /\{13\}\r\nHallo Jürgen\r\n$/);
    });

    it('BURL reads a submit+ URL for its user alone, whole, within the size limit', async () => {
      const uid = await put(user, folder, MESSAGE);
      const s = session(user);
      const url = await generate(
        s,
        `imap://${percentEncode(user)}@h/${percentEncode(folder)}/;uid=${uid}/;section=1;urlauth=submit+${percentEncode(user)}`,
      );
      const mine = { store, user, nowMs: () => NOW };
      assert.equal(Buffer.from((await burlContent(mine, url, 1000)) ?? []).toString('utf8'), 'Hallo Jürgen');
      assert.equal(await burlContent(mine, url, 5), null, 'over the limit');
      assert.equal(await burlContent({ ...mine, user: 'bob@example.org' }, url, 1000), null);
      const authuser = await generate(
        s,
        `imap://${percentEncode(user)}@h/${percentEncode(folder)}/;uid=${uid};urlauth=authuser`,
      );
      assert.equal(await burlContent(mine, authuser, 1 << 20), null, 'only submit+ URLs go to submission');
    });

    it("GENURLAUTH refuses another user's mail, a missing folder and other mechanisms", async () => {
      const s = session(user);
      const bad = await genurlauth(s.ctx, {
        kind: 'genurlauth',
        urls: [{ rump: `imap://bob@example.org/INBOX/;uid=1;urlauth=authuser`, mechanism: 'INTERNAL' }],
      });
      assert.equal(bad.status, 'NO');
      const missing = await genurlauth(s.ctx, {
        kind: 'genurlauth',
        urls: [
          { rump: `imap://${percentEncode(user)}@x/Nirgends/;uid=1;urlauth=authuser`, mechanism: 'INTERNAL' },
        ],
      });
      assert.deepEqual(missing.code, { kind: 'NONEXISTENT' });
      const mech = await genurlauth(s.ctx, {
        kind: 'genurlauth',
        urls: [{ rump: `imap://${percentEncode(user)}@x/INBOX/;uid=1;urlauth=authuser`, mechanism: 'HMAC' }],
      });
      assert.equal(mech.status, 'NO');
      assert.equal(s.output(), '');
    });

    it('URLFETCH BINARY decodes, BODYPARTSTRUCTURE describes what is sent', async () => {
      const uid = await put(user, folder, MESSAGE);
      const s = session(user);
      const url = await generate(
        s,
        `imap://${percentEncode(user)}@h/${percentEncode(folder)}/;uid=${uid}/;section=2;urlauth=user+${percentEncode(user)}`,
      );
      const out = await fetchUrl(s, url, {
        kind: 'urlfetch',
        urls: [{ url, params: ['BINARY', 'BODYPARTSTRUCTURE'] }],
      });
      assert.equal(
        out,
        `* URLFETCH ${astring(url)} (BODYPARTSTRUCTURE ("application" "octet-stream" NIL NIL NIL "binary" 5 NIL NIL NIL NIL))` +
          ` (BINARY ~{5}\r\n\x00\x01\x02hi)\r\n`,
      );
      const stored = await fetchUrl(s, url, { kind: 'urlfetch', urls: [{ url, params: ['BODY'] }] });
      assert.equal(stored, `* URLFETCH ${astring(url)} (BODY {8}\r\nAAECaGk=)\r\n`);
    });
  });

  describe(`CATENATE for ${user} into ${folder}`, () => {
    it('TEXT literals and URL parts make one message, in order', async () => {
      const uid = await put(user, folder, MESSAGE);
      const s = session(user);
      const header = `/${percentEncode(folder)}/;uid=${uid}/;section=HEADER`;
      const part = `/${percentEncode(folder)}/;uid=${uid}/;section=1`;
      const text = enc.encode('--- ');
      const messages: AppendMessage[] = [
        {
          flags: ['\\Seen'],
          date: null,
          data: {
            kind: 'catenate',
            parts: [
              { kind: 'url', url: header },
              { kind: 'text', data: { index: 0, sizeBytes: text.length, binary: false } },
              { kind: 'url', url: part },
            ],
          },
        },
        // A message of URLs alone, put together when the command ends.
        { flags: null, date: null, data: { kind: 'catenate', parts: [{ kind: 'url', url: part }] } },
      ];
      const append = new AppendCommand(folder);
      const refused = await append.begin(s.ctx, {
        sizeBytes: text.length,
        head: { flags: ['\\Seen'], date: null },
        binary: false,
        position: { earlier: [], catenate: [{ kind: 'url', url: header }] },
      });
      assert.equal(refused, null);
      await append.data(text, true);
      const done: Completion = await append.finish(s.ctx, { kind: 'append', mailbox: folder, messages });
      assert.equal(done.status, 'OK', done.text);
      assert.equal(done.code?.kind, 'APPENDUID');
      const uids = done.code?.kind === 'APPENDUID' ? done.code.uids : [];
      assert.equal(uids.length, 2);
      const headerText = MESSAGE.slice(0, MESSAGE.indexOf('\r\n\r\n') + 4);
      assert.equal(await read(user, folder, uids[0]!), `${headerText}--- Hallo Jürgen`);
      assert.equal(await read(user, folder, uids[1]!), 'Hallo Jürgen');
      const [meta] = await store.messages(user, folder, [uids[0]!]);
      assert.deepEqual(meta?.flags, ['\\Seen']);
    });

    it('a URL that names nothing refuses the literal with [BADURL], and nothing stays', async () => {
      const s = session(user);
      const before = (await store.folderStatus(user, folder)).messages;
      const bad = `/${percentEncode(folder)};uidvalidity=12345/;uid=1`;
      const append = new AppendCommand(folder);
      const refused = await append.begin(s.ctx, {
        sizeBytes: 3,
        head: { flags: null, date: null },
        binary: false,
        position: { earlier: [], catenate: [{ kind: 'url', url: bad }] },
      });
      assert.deepEqual(refused?.code, { kind: 'BADURL', url: bad });
      await append.abort(s.ctx);
      assert.equal((await store.folderStatus(user, folder)).messages, before);
    });

    it("another user's mail is no URL for CATENATE without URLAUTH", async () => {
      const uid = await put('bob@example.org', 'INBOX', MESSAGE);
      const s = session(user);
      const url = `imap://bob@example.org/INBOX/;uid=${uid}`;
      const append = new AppendCommand(folder);
      const done = await append.finish(s.ctx, {
        kind: 'append',
        mailbox: folder,
        messages: [{ flags: null, date: null, data: { kind: 'catenate', parts: [{ kind: 'url', url }] } }],
      });
      assert.deepEqual(done.code, { kind: 'BADURL', url });
    });
  });
}

async function read(user: string, folder: string, uid: number): Promise<string> {
  const m = await store.openMessage(user, folder, uid);
  assert.ok(m);
  const chunks: Uint8Array[] = [];
  for await (const c of m.content) chunks.push(c);
  await m.close();
  return Buffer.concat(chunks).toString('utf8');
}
