// The page's one EventSource on /api/events: views subscribe by event kind while they are shown.

import type { LiveEvent } from '../api-types.ts';

type Listener = (kind: string, data: LiveEvent) => void;

const KINDS = ['session', 'accepted', 'delivery', 'dsn', 'auth-failure', 'queue'] as const;
const listeners = new Set<Listener>();
let source: EventSource | null = null;

export function startLive(): void {
  if (source !== null) return;
  source = new EventSource('/api/events');
  for (const kind of KINDS) {
    source.addEventListener(kind, (e) => {
      const data = JSON.parse((e as MessageEvent<string>).data) as LiveEvent;
      for (const l of listeners) l(kind, data);
    });
  }
  source.addEventListener('open', () => document.body.setAttribute('data-live', 'open'));
  source.addEventListener('error', () => document.body.setAttribute('data-live', 'reconnecting'));
}

export function stopLive(): void {
  source?.close();
  source = null;
  document.body.removeAttribute('data-live');
}

/** Listen until the returned function is called (a view calls it when it is left). */
export function onLive(fn: Listener): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}
