// `[[filters.plugin]]`: filters from modules the operator names (docs/filtering.md, examples/). A module's
// default export is a FilterFactory (policy/filters/filter.ts); it is imported and called once per
// configuration generation in each thread, and what it returns is checked before any session uses it.
// Deliberately NOT here: running filters (policy/filters/pipeline.ts).

import { pathToFileURL } from 'node:url';
import type { Config } from '../config/config.ts';
import { FILTER_STAGES, type Filter, type FilterFactory } from '../policy/filters/filter.ts';

/** A plugin that cannot be used: names its config key, like a config error. */
export class FilterPluginError extends Error {
  readonly key: string;
  constructor(key: string, message: string, options?: ErrorOptions) {
    super(`${key}: ${message}`, options);
    this.key = key;
  }
}

export async function loadFilterPlugins(config: Config): Promise<Map<string, Filter>> {
  const out = new Map<string, Filter>();
  const plugins = config.filters.plugins;
  for (const [i, p] of plugins.entries()) {
    const key = `filters.plugin[${i}]`;
    let mod: { default?: unknown };
    try {
      mod = (await import(pathToFileURL(p.path).href)) as { default?: unknown };
    } catch (err) {
      throw new FilterPluginError(
        `${key}.path`,
        `cannot load ${p.path}: ${err instanceof Error ? err.message : String(err)}`,
        {
          cause: err,
        },
      );
    }
    if (typeof mod.default !== 'function')
      throw new FilterPluginError(
        `${key}.path`,
        `${p.path} has no default export that makes a filter (a FilterFactory)`,
      );
    const factory = mod.default as FilterFactory;
    let filter: Filter;
    try {
      filter = await factory({
        name: p.name,
        settings: p.settings,
        timeoutMs: p.timeoutMs,
        onFailure: p.onFailure,
      });
    } catch (err) {
      throw new FilterPluginError(
        key,
        `the plugin refused its settings: ${err instanceof Error ? err.message : String(err)}`,
        {
          cause: err,
        },
      );
    }
    const problem = invalid(filter);
    if (problem !== null) throw new FilterPluginError(`${key}.path`, `${p.path}: ${problem}`);
    // The config's name, timeout and failure mode govern, whatever the module wrote.
    out.set(p.name, {
      name: p.name,
      stages: filter.stages,
      timeoutMs: p.timeoutMs,
      onFailure: p.onFailure,
      open: (client, log) => filter.open(client, log),
    });
  }
  return out;
}

function invalid(f: unknown): string | null {
  if (typeof f !== 'object' || f === null) return 'the factory returned no filter';
  const filter = f as Partial<Filter>;
  if (typeof filter.open !== 'function') return 'the filter has no open(client, log) method';
  if (!Array.isArray(filter.stages) || filter.stages.length === 0) return 'the filter lists no stages';
  const bad = (filter.stages as unknown[]).find((s) => !FILTER_STAGES.includes(s as never));
  if (bad !== undefined) return `${JSON.stringify(bad)} is not a stage (${FILTER_STAGES.join(', ')})`;
  return null;
}
