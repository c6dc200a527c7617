// The JSON shape of one trace event: `tern trace --json` and GET /api/trace print the same objects
// (time, event, queueId, source, then the step's details; a contract: fields are only added).

import type { TraceEvent } from '../trace/trace.ts';

/** `tern trace --json` and the API: one event. */
export function traceEventJson(e: TraceEvent): Record<string, unknown> {
  return {
    time: new Date(e.atMs).toISOString(),
    event: e.event,
    queueId: e.queueId,
    source: e.source,
    ...e.detail,
  };
}
