import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ListenerConfig } from '../../config/config.ts';
import { parseCidr } from '../networks.ts';
import { choosePipeline, type FilterCatalogue } from './build.ts';
import type { Filter } from './filter.ts';

const filter = (name: string): Filter => ({
  name,
  stages: ['mail'],
  timeoutMs: 100,
  onFailure: 'accept',
  open: () => ({ check: () => Promise.resolve({ kind: 'accept' }) }),
});

const listener = (service: ListenerConfig['service'], filters?: string[]): ListenerConfig => ({
  service,
  host: '127.0.0.1',
  port: 25,
  tls: 'starttls',
  auth: false,
  requireAuth: false,
  plaintextAuthOnLoopback: false,
  clientCertificates: 'none',
  ...(filters === undefined ? {} : { filters }),
});

const net = (text: string, filters: string[]) => ({ text, network: parseCidr(text)!, filters });

const CAT: FilterCatalogue = {
  byName: new Map([
    ['dnsbl', [filter('dnswl'), filter('dnsbl')]],
    ['clamav', [filter('clamav')]],
    ['milter:dkim', [filter('milter:dkim')]],
  ]),
  order: ['dnsbl', 'clamav'],
  networks: [net('10.0.0.0/8', ['clamav']), net('10.1.0.0/16', ['milter:dkim', 'auth'])],
  auth: filter('auth'),
};

const names = (c: { filters: readonly Filter[] }) => c.filters.map((f) => f.name);

describe('which pipeline a client gets', () => {
  test('an unauthenticated client of an smtp listener: [filters] order, "dnsbl" expanded, auth last', () => {
    const c = choosePipeline(CAT, {
      ip: '192.0.2.1',
      listener: listener('smtp'),
      authenticated: false,
      skipped: false,
    });
    assert.deepEqual(names(c), ['dnswl', 'dnsbl', 'clamav', 'auth']);
    assert.equal(c.by, 'order');
  });

  test('authenticated, trusted or skipped clients, and submission listeners: none (unless named)', () => {
    for (const [l, authenticated, skipped] of [
      [listener('smtp'), true, false],
      [listener('smtp'), false, true],
      [listener('submission'), false, false],
    ] as const) {
      assert.deepEqual(
        names(choosePipeline(CAT, { ip: '192.0.2.1', listener: l, authenticated, skipped })),
        [],
      );
    }
  });

  test("a listener's own list applies to every client of it, authenticated too", () => {
    const c = choosePipeline(CAT, {
      ip: '192.0.2.1',
      listener: listener('submission', ['milter:dkim']),
      authenticated: true,
      skipped: false,
    });
    assert.deepEqual(names(c), ['milter:dkim']);
    assert.equal(c.by, 'listener');
  });

  test('the most specific network wins over the listener and the order; "auth" where a list places it', () => {
    const wide = choosePipeline(CAT, {
      ip: '10.9.9.9',
      listener: listener('smtp', ['dnsbl']),
      authenticated: false,
      skipped: false,
    });
    assert.deepEqual(names(wide), ['clamav', 'auth']);
    assert.equal(wide.by, 'network 10.0.0.0/8');
    const narrow = choosePipeline(CAT, {
      ip: '10.1.2.3',
      listener: listener('smtp'),
      authenticated: true,
      skipped: false,
    });
    assert.deepEqual(names(narrow), ['milter:dkim', 'auth']);
  });

  test('IPv6 clients and networks', () => {
    const cat = { ...CAT, networks: [net('2001:db8::/32', ['clamav'])] };
    assert.deepEqual(
      names(
        choosePipeline(cat, {
          ip: '2001:db8::25',
          listener: listener('smtp'),
          authenticated: true,
          skipped: false,
        }),
      ),
      ['clamav'],
    );
  });
});
