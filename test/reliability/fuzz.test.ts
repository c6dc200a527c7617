// The fuzz properties of properties.ts, short: a few thousand inputs each (TERN_FUZZ_RUNS to change), a
// fresh seed every run, printed with any failure so it can be replayed (scripts/fuzz-long.ts --seed).
// The long run (10^6 inputs each) is scripts/fuzz-long.ts; its last result is in docs/reliability.md.

import { describe, test } from 'node:test';
import fc from 'fast-check';
import { FUZZ_TARGETS, type FuzzTarget } from './properties.ts';

const RUNS = Number(process.env['TERN_FUZZ_RUNS'] ?? 3000);

function run(t: FuzzTarget): () => void {
  // Expensive properties get fewer inputs, so the whole file stays within seconds.
  const runs = Math.max(50, Math.round(RUNS / Math.sqrt(t.weight)));
  return () => {
    const details = t.check(runs);
    if (details.failed) {
      const cause =
        details.errorInstance instanceof Error
          ? details.errorInstance.message
          : String(details.errorInstance);
      throw new Error(`${fc.defaultReportMessage(details) ?? 'property failed'}\nError: ${cause}`);
    }
  };
}

describe('fuzzing (fast-check, short run)', () => {
  for (const t of FUZZ_TARGETS) test(t.name, run(t));
});
