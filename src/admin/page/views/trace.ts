// Message trace: one timeline per message — received from whom over what TLS and AUTH, the SPF, DKIM,
// DMARC and ARC verdicts, queued, each delivery attempt with the remote host, TLS and reply, DSNs, the
// mailbox it was stored in, and what an operator did — searched by queue id, Message-ID, sender,
// recipient and time, like `tern trace`.

import type { TraceEvent, TraceResult } from '../../api-types.ts';
import { get, query } from '../api.ts';
import { badge, fill, h, when } from '../dom.ts';
import { onLive } from '../live.ts';
import type { Cleanup } from '../main.ts';

/** The details worth showing, in a stable order (the CLI's text shows the same). */
const SHOWN = [
  'sender',
  'to',
  'rcpt',
  'ip',
  'rdns',
  'helo',
  'tls',
  'user',
  'spf',
  'dkim',
  'arc',
  'dmarc',
  'host',
  'address',
  'reply',
  'status',
  'mailbox',
  'uid',
  'filter',
  'verdict',
  'score',
  'stage',
  'reason',
  'newQueueId',
  'fromQueueId',
  'nextAttempt',
  'messageId',
  'admin',
  'kind',
];

const KIND: Readonly<Record<string, string>> = {
  received: 'pass',
  delivered: 'delivered',
  deferred: 'deferred',
  bounced: 'bounced',
  'failed-attempt': 'deferred',
  held: 'held',
};

function detail(e: TraceEvent): string {
  const parts: string[] = [];
  for (const key of SHOWN) {
    const v = e[key];
    if (v === undefined || v === null || (Array.isArray(v) && v.length === 0)) continue;
    parts.push(
      `${key}=${Array.isArray(v) ? v.map(String).join(',') : typeof v === 'string' ? v : JSON.stringify(v)}`,
    );
  }
  return parts.join('  ');
}

function toIso(local: string): string | undefined {
  if (local === '') return undefined;
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

export async function traceView(root: HTMLElement, params: URLSearchParams): Promise<Cleanup> {
  const field = (name: string, label: string, type = 'text'): HTMLInputElement =>
    h('input', { name, type, value: params.get(name) ?? '', 'aria-label': label });
  const queueId = field('queueId', 'queue id');
  const messageId = field('messageId', 'Message-ID');
  const from = field('from', 'sender');
  const to = field('to', 'recipient');
  const since = field('since', 'since', 'datetime-local');
  const until = field('until', 'until', 'datetime-local');
  const results = h('div', { id: 'trace-results' });
  let gone = false;

  const search = async (): Promise<void> => {
    const r = await get<TraceResult>(
      `/api/trace${query({
        queueId: queueId.value.trim(),
        messageId: messageId.value.trim(),
        from: from.value.trim(),
        to: to.value.trim(),
        since: toIso(since.value),
        until: toIso(until.value),
        limit: 50,
      })}`,
    );
    if (gone) return;
    fill(
      results,
      r.messages.length === 0
        ? h('p', { class: 'muted' }, 'No trace of such a message (kept for [trace] retention_days).')
        : r.messages.map((m) =>
            h(
              'section',
              { class: 'panel', 'data-queue-id': m.queueId },
              h(
                'h2',
                {},
                h('span', { class: 'mono' }, m.queueId),
                ' ',
                h('a', { href: `#/message/queue/${encodeURIComponent(m.queueId)}` }, 'in the queue?'),
              ),
              h(
                'ol',
                { class: 'timeline' },
                m.events.map((e) =>
                  h(
                    'li',
                    { 'data-event': e.event },
                    h('span', { class: 'when' }, when(e.time)),
                    ' ',
                    badge(e.event, KIND[e.event] ?? ''),
                    ' ',
                    h('span', { class: 'mono' }, detail(e)),
                  ),
                ),
              ),
            ),
          ),
    );
  };

  fill(
    root,
    h('h1', {}, 'Message trace'),
    h(
      'form',
      {
        class: 'filters',
        onsubmit: (e: Event) => {
          e.preventDefault();
          void search();
        },
      },
      h('label', {}, 'Queue id', queueId),
      h('label', {}, 'Message-ID', messageId),
      h('label', {}, 'Sender', from),
      h('label', {}, 'Recipient', to),
      h('label', {}, 'Since', since),
      h('label', {}, 'Until', until),
      h('button', { type: 'submit', class: 'primary' }, 'Search'),
    ),
    results,
  );
  await search();
  // A message being followed gets its new steps as they happen.
  let pending: ReturnType<typeof setTimeout> | null = null;
  const stop = onLive((kind, e) => {
    if (kind !== 'accepted' && kind !== 'delivery' && kind !== 'dsn' && kind !== 'queue') return;
    const id = queueId.value.trim();
    if (id !== '' && e['queueId'] !== id && !JSON.stringify(e['ids'] ?? '').includes(id)) return;
    pending ??= setTimeout(() => {
      pending = null;
      void search();
    }, 700);
  });
  return () => {
    gone = true;
    stop();
    if (pending !== null) clearTimeout(pending);
  };
}
