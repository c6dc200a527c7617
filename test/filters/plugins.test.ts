// [[filters.plugin]] modules loaded from files (server/filter-plugins.ts): a good one becomes a filter
// under the config's name, timeout and failure mode; a module that is missing, has no factory, or makes
// something that is no filter is refused with an error naming its key.

import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { defaultConfig, type Config, type PluginConfig } from '../../src/config/config.ts';
import { FilterPluginError, loadFilterPlugins } from '../../src/server/filter-plugins.ts';

const ROOT = join(import.meta.dirname, '..', '..');

function withPlugins(plugins: PluginConfig[]): Config {
  const c = defaultConfig();
  return { ...c, filters: { ...c.filters, plugins } };
}

const plugin = (name: string, path: string, settings: Record<string, unknown> = {}): PluginConfig => ({
  name,
  path,
  settings,
  timeoutMs: 1234,
  onFailure: 'accept',
});

describe('filter plugins from files', () => {
  test('the example plugin: named, timed and failing as the config says; it judges a subject', async () => {
    const loaded = await loadFilterPlugins(
      withPlugins([plugin('words', join(ROOT, 'examples/filters/subject-words.ts'), { reject: ['viagra'] })]),
    );
    const f = loaded.get('words')!;
    assert.deepEqual(
      [f.name, f.timeoutMs, f.onFailure, [...f.stages]],
      ['words', 1234, 'accept', ['headers']],
    );
    const session = f.open(
      {
        ip: '192.0.2.1',
        port: 1,
        hostname: null,
        helo: 'h',
        tls: false,
        authUser: null,
        service: 'smtp',
        localAddress: '127.0.0.1',
        localPort: 25,
      },
      { event: () => undefined } as never,
    );
    const verdict = await session.check(
      'headers',
      {
        client: {
          ip: '192.0.2.1',
          port: 1,
          hostname: null,
          helo: 'h',
          tls: false,
          authUser: null,
          service: 'smtp',
          localAddress: '127.0.0.1',
          localPort: 25,
        },
        queueId: 'Q',
        mailFrom: 'jürgen@example.org',
        mailParams: new Map(),
        recipients: ['日本@example.jp'],
        message: {
          headers: [{ name: 'Subject', value: 'Cheap VIAGRA', raw: ' Cheap VIAGRA' }],
          fromAddresses: [],
          sizeBytes: 10,
          read: () => (async function* () {})(),
        },
        facts: {},
      },
      new AbortController().signal,
    );
    assert.equal(verdict.kind, 'reject');
  });

  test('errors name the key: a missing file, no default export, a factory that throws, no filter', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tern-plugins-'));
    await writeFile(join(dir, 'nodefault.ts'), 'export const x = 1;\n');
    await writeFile(
      join(dir, 'throws.ts'),
      "export default () => { throw new Error('needs a word list'); };\n",
    );
    await writeFile(
      join(dir, 'nofilter.ts'),
      "export default () => ({ name: 'x', stages: ['later'], open() {} });\n",
    );
    const cases: [PluginConfig, RegExp][] = [
      [plugin('gone', join(dir, 'missing.ts')), /^filters\.plugin\[0\]\.path: cannot load/],
      [plugin('nodefault', join(dir, 'nodefault.ts')), /^filters\.plugin\[0\]\.path: .*no default export/],
      [
        plugin('throws', join(dir, 'throws.ts')),
        /^filters\.plugin\[0\]: the plugin refused its settings: needs a word list/,
      ],
      [plugin('nofilter', join(dir, 'nofilter.ts')), /"later" is not a stage/],
    ];
    for (const [p, message] of cases) {
      await assert.rejects(loadFilterPlugins(withPlugins([p])), (err: unknown) => {
        assert.ok(err instanceof FilterPluginError);
        assert.match(err.message, message);
        return true;
      });
    }
  });
});
