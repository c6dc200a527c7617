import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { defaultConfig, type Config } from '../config/config.ts';
import { nullLogger } from '../core/ports.ts';
import type { Directory } from '../directory/directory.ts';
import type { Queue } from '../queue/queue.ts';
import type { MailboxStore } from '../store/mailbox-store.ts';
import { InProcessMaildropLocks } from '../store/maildrop-locks.ts';
import { startListeners, type ListenerDeps, type SessionDispatch } from './listeners.ts';

const clock = { nowMs: () => 1_700_000_000_000 };

function config(threshold: number, extraListener = false): Config {
  const d = defaultConfig();
  const smtp = { ...d.listeners[0]!, host: '127.0.0.1', port: 0 };
  return {
    ...d,
    listeners: extraListener ? [smtp, { ...d.listeners[1]!, host: '127.0.0.1', port: 0 }] : [smtp],
    auth: { ...d.auth, lockoutThreshold: threshold },
  };
}

function deps(c: Config, dispatch: SessionDispatch): ListenerDeps {
  // Sessions never start here (the dispatch takes no socket): the services are never called.
  const unused = {} as unknown;
  return {
    config: c,
    queue: unused as Queue,
    directory: unused as Directory,
    store: unused as MailboxStore,
    maildropLocks: new InProcessMaildropLocks(),
    logger: nullLogger,
    clock,
    tls: null,
    dispatch,
  };
}

/** A dispatch whose prepare of a later generation waits for the test to open the gate. */
function gatedDispatch(outcome: 'ok' | 'refuse' = 'ok'): { dispatch: SessionDispatch; open: () => void } {
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  return {
    open,
    dispatch: {
      prepare: async (gen) => {
        if (gen === 1) return;
        await gate;
        if (outcome === 'refuse') throw new Error('a thread refused');
      },
      retire: () => undefined,
      hand: () => false,
      stop: () => Promise.resolve(),
    },
  };
}

describe('listeners: reload and the process-wide AUTH lockouts', () => {
  it('a reload that changes lockout_* swaps the guard only with the snapshot; until then the lockout holds', async () => {
    const { dispatch, open } = gatedDispatch();
    const running = await startListeners(deps(config(2), dispatch));
    try {
      const guard = running.limits.authGuard;
      for (const ip of ['192.0.2.9', '2001:db8::9']) {
        guard.recordFailure(ip, null);
        guard.recordFailure(ip, null);
        assert.equal((await running.limits.authGuard.check(ip, null)).locked, true, ip);
      }
      const reload = Promise.resolve(running.reload(deps(config(5), dispatch)));
      await new Promise((r) => setTimeout(r, 20));
      // The session threads are still preparing: every check still sees the lockouts.
      assert.equal(running.limits.authGuard, guard);
      assert.equal((await running.limits.authGuard.check('192.0.2.9', null)).locked, true);
      open();
      await reload;
      // Applied: the counts start afresh with the new options, as docs/configuration.md says.
      assert.notEqual(running.limits.authGuard, guard);
      assert.equal((await running.limits.authGuard.check('192.0.2.9', null)).locked, false);
    } finally {
      await running.close(0);
    }
  });

  it('a refused reload leaves the guard and its counts as they were', async () => {
    const { dispatch, open } = gatedDispatch('refuse');
    const running = await startListeners(deps(config(2), dispatch));
    try {
      const guard = running.limits.authGuard;
      guard.recordFailure('192.0.2.10', 'jürgen@example.test');
      guard.recordFailure('192.0.2.10', 'jürgen@example.test');
      const reload = Promise.resolve(running.reload(deps(config(5), dispatch)));
      open();
      await assert.rejects(reload, /refused/);
      assert.equal(running.limits.authGuard, guard);
      assert.equal((await guard.check('192.0.2.11', 'jürgen@example.test')).locked, true);
    } finally {
      await running.close(0);
    }
  });

  it('a reload still preparing when close() begins is refused and closes what it bound', async () => {
    const { dispatch, open } = gatedDispatch();
    const running = await startListeners(deps(config(2), dispatch));
    const reload = Promise.resolve(running.reload(deps(config(2, true), dispatch)));
    await new Promise((r) => setTimeout(r, 20));
    const closed = running.close(0);
    open();
    await assert.rejects(reload, /stopping/);
    await closed;
    assert.equal(running.bound.length, 1);
  });
});
