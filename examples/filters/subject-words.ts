// An example filter plugin for Tern (docs/filtering.md, "Writing a plugin"). Configure it with:
//
//   [[filters.plugin]]
//   name = "subject-words"
//   path = "examples/filters/subject-words.ts"   # relative to the configuration file
//   reject = ["viagra"]                           # refused with 554 5.7.1
//   score = { "free money" = 3.5 }                # added to the message's score
//   timeout_seconds = 2
//   on_failure = "accept"
//
//   [filters]
//   order = ["dnsbl", "subject-words"]
//
// The module's default export is a FilterFactory: it is given the table's other keys as `settings`
// and returns a Filter. Tern runs it with type stripping (no build step); only `import type` may name
// Tern's own modules, so the plugin holds no reference to Tern's code at run time.

import type {
  Filter,
  FilterContext,
  FilterFactory,
  FilterStage,
  Verdict,
} from '../../src/policy/filters/filter.ts';

function words(v: unknown, key: string): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || !v.every((w) => typeof w === 'string'))
    throw new Error(`${key} must be an array of strings`);
  return v.map((w) => w.toLowerCase());
}

function scores(v: unknown): [string, number][] {
  if (v === undefined) return [];
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('score must be a table');
  return Object.entries(v).map(([w, n]) => {
    if (typeof n !== 'number') throw new Error(`score."${w}" must be a number`);
    return [w.toLowerCase(), n];
  });
}

const factory: FilterFactory = ({ name, settings, timeoutMs, onFailure }) => {
  const reject = words(settings['reject'], 'reject');
  const scored = scores(settings['score']);
  const filter: Filter = {
    name,
    stages: ['headers'],
    timeoutMs,
    onFailure,
    // No state per connection: one session object serves them all.
    open: () => ({
      check(_stage: FilterStage, ctx: FilterContext): Promise<Verdict> {
        const subject = (
          ctx.message?.headers.find((h) => h.name.toLowerCase() === 'subject')?.value ?? ''
        ).toLowerCase();
        const hit = reject.find((w) => subject.includes(w));
        if (hit !== undefined)
          return Promise.resolve({
            kind: 'reject',
            reply: { code: 554, enhanced: '5.7.1', text: 'Message refused: its subject is on our list' },
            reason: `subject has "${hit}"`,
          });
        const total = scored.filter(([w]) => subject.includes(w)).reduce((sum, [, n]) => sum + n, 0);
        return Promise.resolve(
          total === 0 ? { kind: 'accept' } : { kind: 'score', score: total, reason: 'subject words' },
        );
      },
    }),
  };
  return filter;
};

export default factory;
