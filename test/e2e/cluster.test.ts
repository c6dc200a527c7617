// End to end: three `tern serve` processes on loopback sharing one PostgreSQL database (a database of
// their own, created and dropped here) and one Redis (`[storage] backend = "postgres"`, `[redis] url`).
// A user added with the CLI of one node logs in and gets mail on every node; mail sent to each node
// lands in one mailbox; and a node killed with SIGKILL while it holds a relayed message (its next hop
// never answers) loses nothing: once its lease runs out another node delivers the message to an
// independent SMTP server (aiosmtpd), once, and the shared queue is empty at the end. An IMAP IDLE
// session (imapflow) on one node hears a message delivered through another (LISTEN/NOTIFY).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { ImapFlow } from 'imapflow';
import pg from 'pg';
import { openRedis, redisReady } from '../../src/net/redis.ts';
import { postgresSkip, TEST_POSTGRES_URL } from '../support/postgres.ts';
import type { Tern } from './harness.ts';
import { smtplib, startTern, waitFor } from './harness.ts';
import { closedPort, findPython, startPythonPeer, type ExternalPeer } from './outbound-helpers.ts';

const REDIS_URL = process.env['TERN_TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const python = findPython('aiosmtpd');

async function skipReason(): Promise<string | false> {
  if (python === null) return 'aiosmtpd is not installed';
  const pgSkip = await postgresSkip();
  if (pgSkip !== false) return pgSkip;
  const r = openRedis(REDIS_URL);
  r.on('error', () => undefined);
  try {
    return (await redisReady(r, 3000)) ? false : `Redis is not reachable at ${REDIS_URL}`;
  } finally {
    r.disconnect();
  }
}

/** A next hop that accepts connections and never says a word: a delivery to it hangs. */
async function silentServer(): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return {
    port: address.port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function query(sql: string): Promise<Record<string, unknown>[]> {
  const c = new pg.Client({ connectionString: clusterUrl });
  await c.connect();
  try {
    return (await c.query(sql)).rows as Record<string, unknown>[];
  } finally {
    await c.end();
  }
}

let clusterUrl = '';

async function admin(sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: TEST_POSTGRES_URL });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

describe('three nodes on one PostgreSQL and Redis', { skip: await skipReason() }, () => {
  const database = `tern_cluster_${randomBytes(5).toString('hex')}`;
  const url = TEST_POSTGRES_URL.replace(/\/[^/]*$/, `/${database}`);
  clusterUrl = url;
  const prefix = `tern-cluster-${randomBytes(4).toString('hex')}:`;
  let sink: ExternalPeer;
  let silent: { port: number; close: () => Promise<void> };
  const nodes: Tern[] = [];

  const node = (relayPort: number): Promise<Tern> =>
    startTern({
      smtp: { trusted_networks: ['127.0.0.0/8'] },
      tables: {
        storage: { backend: 'postgres', url },
        redis: { url: REDIS_URL, key_prefix: prefix },
        queue: { lease_seconds: 3, retry_min_seconds: 1, retry_max_seconds: 2 },
        outbound: {
          relay: `[127.0.0.1]:${relayPort}`,
          tls: 'none',
          connect_timeout_seconds: 2,
          greeting_timeout_seconds: 120,
        },
        auth: { failure_delay_seconds: 0 },
      },
    });

  before(async () => {
    await admin(`CREATE DATABASE ${database}`);
    const sinkPort = await closedPort();
    sink = await startPythonPeer('aiosmtpd', python!, '127.0.0.1', sinkPort);
    silent = await silentServer();
    // Node A relays to the silent next hop; B and C to the sink.
    nodes.push(await node(silent.port));
    const migrated = await nodes[0]!.tern(['migrate', '--json']);
    assert.equal(migrated.code, 0, migrated.stderr);
    nodes.push(await node(sinkPort), await node(sinkPort));
  });
  after(async () => {
    for (const n of nodes) await n.stop();
    await sink?.close();
    await silent?.close();
    await admin(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
  });

  test('a user added on one node gets mail sent to each node in one mailbox (UTF-8 twin)', async () => {
    const [a, b, c] = nodes as [Tern, Tern, Tern];
    for (const user of ['alice@example.test', 'jürgen@example.test']) {
      const added = await b.tern(['user', 'add', user]);
      assert.equal(added.code, 0, added.stderr);
      for (const [i, n] of [a, b, c].entries()) {
        const r = await smtplib({
          port: n.ports.smtp,
          mode: 'plain',
          action: 'sendmail',
          from: 'someone@remote.test',
          to: [user],
          raw: `From: someone@remote.test\r\nSubject: via node ${i}\r\n\r\nhello\r\n`,
          mail_options: /[^\x20-\x7e]/.test(user) ? ['SMTPUTF8'] : [],
        });
        assert.ok(r.ok, JSON.stringify(r));
      }
      const list = await waitFor(`three messages for ${user}`, async () => {
        const l = await c.mailboxList(user);
        return l.length === 3 ? l : undefined;
      });
      assert.deepEqual(list.map((m) => m.subject).sort(), ['via node 0', 'via node 1', 'via node 2']);
    }
  });

  test('SIGKILL of the node that holds a relayed message: another node delivers it, once', async () => {
    const [a, b, c] = nodes as [Tern, Tern, Tern];
    // B and C stopped: node A alone is there to take the message, and hangs on its silent next hop.
    process.kill(b.pid, 'SIGSTOP');
    process.kill(c.pid, 'SIGSTOP');
    try {
      const r = await smtplib({
        port: a.ports.smtp,
        mode: 'plain',
        action: 'sendmail',
        from: 'alice@example.test',
        to: ['carol@elsewhere.test'],
        raw: 'From: alice@example.test\r\nSubject: survive the crash\r\n\r\nimportant\r\n',
      });
      assert.ok(r.ok, JSON.stringify(r));
      const owner = await waitFor('node A holding the lease', async () => {
        const rows = await query(
          `SELECT r.lease_owner FROM queue_recipients r WHERE r.address = 'carol@elsewhere.test' AND r.lease_owner IS NOT NULL`,
        );
        return rows.length > 0 ? String(rows[0]!['lease_owner']) : undefined;
      });
      assert.match(owner, new RegExp(`/${a.pid}/`), 'the lease is node A’s');
      await a.kill('SIGKILL');
    } finally {
      process.kill(b.pid, 'SIGCONT');
      process.kill(c.pid, 'SIGCONT');
    }
    const got = await waitFor(
      'another node delivering it to the sink',
      async () => {
        const list = (await sink.messages()).filter((m) => m.rcptTos.includes('carol@elsewhere.test'));
        return list.length > 0 ? list : undefined;
      },
      30_000,
    );
    await new Promise((resolve) => setTimeout(resolve, 4000));
    const all = (await sink.messages()).filter((m) => m.rcptTos.includes('carol@elsewhere.test'));
    assert.equal(all.length, 1, 'delivered once');
    assert.match(got[0]!.data.toString('utf8'), /survive the crash/);
    await waitFor(
      'the shared queue empty',
      async () => {
        const q = await b.tern(['queue', 'list', '--json']);
        return q.code === 0 && (JSON.parse(q.stdout) as unknown[]).length === 0 ? true : undefined;
      },
      20_000,
    );
  });

  test('an IMAP IDLE session on one node hears mail delivered through another', async () => {
    const [, b, c] = nodes as [Tern, Tern, Tern];
    const add = await b.tern(['user', 'add', 'idle@example.test', '--password-stdin'], 'idle-password\n');
    assert.equal(add.code, 0, add.stderr);
    const client = new ImapFlow({
      host: '127.0.0.1',
      port: b.ports.imap!,
      secure: false,
      doSTARTTLS: true,
      tls: { rejectUnauthorized: false },
      auth: { user: 'idle@example.test', pass: 'idle-password' },
      logger: false,
      disableAutoIdle: true,
      connectionTimeout: 10_000,
    });
    await client.connect();
    try {
      await client.mailboxOpen('INBOX');
      const heard = new Promise<number>((resolve) =>
        client.on('exists', (e: { count: number }) => resolve(e.count)),
      );
      const idling = client.idle();
      const sent = await smtplib({
        port: c.ports.smtp,
        mode: 'plain',
        action: 'sendmail',
        from: 'someone@remote.test',
        to: ['idle@example.test'],
        raw: 'From: someone@remote.test\r\nSubject: wake up\r\n\r\nhello\r\n',
      });
      assert.ok(sent.ok, JSON.stringify(sent));
      const count = await Promise.race([
        heard,
        new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error('no EXISTS within 10 s')), 10_000),
        ),
      ]);
      assert.equal(count, 1);
      void idling;
    } finally {
      await client.logout().catch(() => undefined);
    }
  });
});
