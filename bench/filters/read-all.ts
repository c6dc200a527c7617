// A filter plugin for the benchmark (BENCH_TERN_FILTERS=read, bench/peers.ts): at the end of data it
// reads the whole spooled message and accepts. What it costs is what every content filter pays before
// its daemon does any work: the pipeline, the seal of the spool, one read of the message.

import type { FilterFactory } from '../../src/policy/filters/filter.ts';

const factory: FilterFactory = ({ name, timeoutMs, onFailure }) => ({
  name,
  stages: ['message'],
  timeoutMs,
  onFailure,
  open: () => ({
    async check(_stage, ctx) {
      let bytes = 0;
      for await (const chunk of ctx.message!.read()) bytes += chunk.length;
      return { kind: 'accept', reason: `read ${bytes} bytes` };
    },
  }),
});

export default factory;
