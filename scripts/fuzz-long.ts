// The long fuzz run: every property of test/reliability/properties.ts with 10^6 inputs (by default), in
// chunks of 10^4 with their own seeds so progress shows and any failure can be replayed alone. CI runs
// the same properties with a few thousand inputs (test/reliability/fuzz.test.ts); this is for a machine
// with time, and its summary goes to docs/reliability.md.
//
//   npx node scripts/fuzz-long.ts                      # 10^6 inputs per property
//   npx node scripts/fuzz-long.ts --runs 100000 --only session
//   npx node scripts/fuzz-long.ts --seed 12345 --runs 10000 --only "DATA and BDAT"   # replay a chunk
//   npx node scripts/fuzz-long.ts --json fuzz-result.json
//
// Exit status 1 when a property fails.
// Deliberately NOT here: the properties themselves (properties.ts), anything with sockets.

import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import fc from 'fast-check';
import { FUZZ_TARGETS } from '../test/reliability/properties.ts';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '1000000' },
    chunk: { type: 'string', default: '10000' },
    seed: { type: 'string' },
    only: { type: 'string' },
    json: { type: 'string' },
  },
});

const runs = Number(values.runs);
const chunk = Math.min(Number(values.chunk), runs);
const baseSeed = values.seed === undefined ? Date.now() & 0x7fffffff : Number(values.seed);
const targets = FUZZ_TARGETS.filter(
  (t) => values.only === undefined || t.name.toLowerCase().includes(values.only.toLowerCase()),
);

interface Result {
  readonly name: string;
  readonly runs: number;
  readonly seconds: number;
  readonly failure: { readonly seed: number; readonly counterexample: string; readonly error: string } | null;
}

const results: Result[] = [];
console.log(
  `fuzz-long: ${targets.length} properties × ${runs} inputs, base seed ${baseSeed}, node ${process.version}`,
);
for (const t of targets) {
  const started = performance.now();
  let done = 0;
  let failure: Result['failure'] = null;
  for (let i = 0; done < runs; i++) {
    const n = Math.min(chunk, runs - done);
    const seed = (baseSeed + i * 7919) & 0x7fffffff;
    const details = t.check(n, seed);
    done += details.numRuns;
    if (details.failed) {
      failure = {
        seed,
        counterexample: fc.stringify(details.counterexample),
        error:
          details.errorInstance instanceof Error
            ? details.errorInstance.message
            : String(details.errorInstance),
      };
      break;
    }
    if (i % 10 === 9) process.stdout.write(`  ${t.name}: ${done}/${runs}\r`);
  }
  const seconds = (performance.now() - started) / 1000;
  results.push({ name: t.name, runs: done, seconds, failure });
  const verdict = failure === null ? 'ok' : 'FAILED';
  console.log(`${verdict.padEnd(6)} ${t.name}: ${done} inputs in ${seconds.toFixed(1)} s`);
  if (failure !== null) {
    console.log(
      `       replay: --seed ${failure.seed} --runs ${chunk} --only ${JSON.stringify(t.name.slice(0, 40))}`,
    );
    console.log(`       ${failure.error}`);
    console.log(`       counterexample: ${failure.counterexample.slice(0, 2000)}`);
  }
}
if (values.json !== undefined) {
  writeFileSync(
    values.json,
    JSON.stringify({ baseSeed, runsPerProperty: runs, node: process.version, results }, null, 2),
  );
}
const failed = results.filter((r) => r.failure !== null);
console.log(`fuzz-long: ${results.length - failed.length}/${results.length} properties hold`);
process.exitCode = failed.length > 0 ? 1 : 0;
