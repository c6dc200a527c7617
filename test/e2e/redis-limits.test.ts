// End to end: two `tern serve` processes sharing one Redis (`[redis] url`, a key prefix of this run) count
// AUTH failures together. Python's smtplib logs in with a wrong password on node A, then on node B; the
// third failure locks the account out on both (454 4.7.0, even with the right password), so a guesser
// cannot multiply attempts by the number of nodes. (The UTF-8 twin of the account is covered by
// test/redis/shared-limits.test.ts: smtplib cannot send a UTF-8 login.)

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { openRedis, redisReady } from '../../src/net/redis.ts';
import type { Tern } from './harness.ts';
import { havePython, RawSmtpClient, smtplib, startTern } from './harness.ts';

const URL = process.env['TERN_TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379';

async function redisSkip(): Promise<string | false> {
  if (!havePython()) return 'python3 is not available';
  const r = openRedis(URL);
  r.on('error', () => undefined);
  try {
    return (await redisReady(r, 3000)) ? false : `Redis is not reachable at ${URL}`;
  } finally {
    r.disconnect();
  }
}

const USER = 'alice@example.test';
const PASSWORD = 'the-right-one';

describe('AUTH lockouts shared through Redis by two nodes', { skip: await redisSkip() }, () => {
  const nodes: Tern[] = [];
  before(async () => {
    const prefix = `tern-e2e-${randomBytes(4).toString('hex')}:`;
    for (let i = 0; i < 2; i++) {
      nodes.push(
        await startTern({
          users: [{ address: USER, password: PASSWORD }],
          tables: {
            redis: { url: URL, key_prefix: prefix },
            auth: { failure_delay_seconds: 0, lockout_threshold: 4, lockout_seconds: 600 },
          },
          limits: { max_connections_per_ip: 3 },
        }),
      );
    }
  });
  after(async () => {
    for (const n of nodes) await n.stop();
  });

  const login = (tern: Tern, password: string) =>
    smtplib({
      port: tern.ports.submission,
      mode: 'starttls',
      login: [USER, password],
      action: 'steps',
      steps: [['cmd', 'NOOP']],
    });

  test('failures on node A and node B lock the account on both', async () => {
    const [a, b] = nodes as [Tern, Tern];
    // smtplib's login() tries PLAIN, then LOGIN: two failures per wrong password. lockout_threshold is 4,
    // so neither node alone reaches it.
    assert.equal((await login(a, 'guess-1')).code, 535);
    const second = await login(b, 'guess-2');
    assert.ok(second.code === 535 || second.code === 454, JSON.stringify(second));
    // Locked everywhere now: the right password is refused on the node that saw only two failures.
    const right = await login(a, PASSWORD);
    assert.equal(right.ok, false);
    assert.equal(right.code, 454, JSON.stringify(right));
    await a.waitForLog('the lockout seen on node A', (l) => l.event === 'security.auth.locked');
  });

  test('max_connections_per_ip counts the connections held on every node', async () => {
    const [a, b] = nodes as [Tern, Tern];
    const held: RawSmtpClient[] = [];
    try {
      for (const port of [a.ports.smtp, b.ports.smtp, a.ports.smtp]) {
        const c = await RawSmtpClient.connect(port);
        held.push(c);
        assert.equal((await c.readReply()).code, 220);
      }
      // Node B holds one connection of this address, node A two: the fourth is one too many anywhere.
      const fourth = await RawSmtpClient.connect(b.ports.smtp);
      held.push(fourth);
      const refused = await fourth.readReply();
      assert.equal(refused.code, 421, refused.raw);
      // One closes: a place is free again, on either node.
      held[0]!.close();
      await new Promise((resolve) => setTimeout(resolve, 500));
      const again = await RawSmtpClient.connect(b.ports.smtp);
      held.push(again);
      assert.equal((await again.readReply()).code, 220);
    } finally {
      for (const c of held) c.close();
    }
  });
});
