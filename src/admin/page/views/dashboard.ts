// Dashboard: messages in and out per minute, queue depth by state, delivery results by remote domain,
// authentication failures and the TLS share, from /api/stats (the counters /metrics serves), refreshed
// when live events arrive; below, the live events themselves.

import type { LiveEvent, MetricJson, Stats } from '../../api-types.ts';
import { get } from '../api.ts';
import { fill, h } from '../dom.ts';
import { onLive } from '../live.ts';
import type { Cleanup } from '../main.ts';

const SVG = 'http://www.w3.org/2000/svg';

function metric(stats: Stats, name: string): MetricJson | undefined {
  return stats.metrics.find((m) => m.name === name);
}

function sum(
  m: MetricJson | undefined,
  match: (labels: Readonly<Record<string, string | number>>) => boolean = () => true,
): number {
  return (m?.values ?? []).filter((v) => match(v.labels)).reduce((n, v) => n + v.value, 0);
}

function card(label: string, value: string | number, id: string): HTMLElement {
  return h(
    'div',
    { class: 'card', 'data-stat': id },
    h('div', { class: 'n' }, String(value)),
    h('div', { class: 'l' }, label),
  );
}

/** Bars per minute over the last hour: received (left bar) and delivered (right bar). */
function chart(stats: Stats): SVGSVGElement {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('class', 'chart');
  svg.setAttribute('viewBox', '0 0 600 160');
  svg.setAttribute('role', 'img');
  const now = Date.parse(stats.now);
  const start = now - (now % 60_000) - 59 * 60_000;
  const byMinute = new Map(stats.series.map((m) => [m.minuteMs, m]));
  let max = 1;
  for (const m of stats.series) max = Math.max(max, m.received, m.delivered);
  let total = 0;
  for (let i = 0; i < 60; i++) {
    const m = byMinute.get(start + i * 60_000);
    for (const [kind, value, dx] of [
      ['in', m?.received ?? 0, 0],
      ['out', m?.delivered ?? 0, 4.5],
    ] as const) {
      total += value;
      const height = (value / max) * 150;
      const rect = document.createElementNS(SVG, 'rect');
      rect.setAttribute('class', kind);
      rect.setAttribute('x', String(i * 10 + dx));
      rect.setAttribute('y', String(155 - height));
      rect.setAttribute('width', '4');
      rect.setAttribute('height', String(height));
      svg.appendChild(rect);
    }
  }
  svg.setAttribute(
    'aria-label',
    `messages in and out per minute over the last hour: ${total} in all, at most ${max} a minute`,
  );
  return svg;
}

function render(root: HTMLElement, stats: Stats, feed: HTMLElement): void {
  const last = stats.series.at(-1);
  const hour = stats.series.reduce(
    (a, m) => ({
      received: a.received + m.received,
      delivered: a.delivered + m.delivered,
      auth: a.auth + m.authFailures,
    }),
    { received: 0, delivered: 0, auth: 0 },
  );
  const connections = sum(metric(stats, 'tern_connections_total'));
  const tls = sum(metric(stats, 'tern_tls_handshakes_total'));
  const share = connections === 0 ? '—' : `${Math.min(100, Math.round((tls / connections) * 100))} %`;
  const q = stats.queue;
  const attempts = metric(stats, 'tern_delivery_attempts_total');
  const domains = new Map<string, Record<string, number>>();
  for (const v of attempts?.values ?? []) {
    const d = String(v.labels['domain'] ?? '');
    const row = domains.get(d) ?? {};
    row[String(v.labels['result'] ?? '')] = (row[String(v.labels['result'] ?? '')] ?? 0) + v.value;
    domains.set(d, row);
  }
  fill(
    root,
    h('h1', {}, 'Dashboard'),
    h(
      'div',
      { class: 'cards' },
      card('received this minute', last?.received ?? 0, 'received-minute'),
      card('received, last hour', hour.received, 'received-hour'),
      card('delivered, last hour', hour.delivered, 'delivered-hour'),
      card('in the queue', q.messages, 'queue-messages'),
      card('held', q.held, 'queue-held'),
      card('deferred recipients', q.recipients.deferred, 'queue-deferred'),
      card('auth failures, last hour', hour.auth, 'auth-failures'),
      card('TLS share of connections', share, 'tls-share'),
    ),
    h(
      'section',
      { class: 'panel' },
      h('h2', {}, 'Messages per minute, last hour'),
      h(
        'div',
        { class: 'legend' },
        h('span', { class: 'in' }, 'in'),
        h('span', { class: 'out' }, 'delivered'),
      ),
      chart(stats),
    ),
    h(
      'section',
      { class: 'panel' },
      h('h2', {}, 'Queue by state and age'),
      h(
        'table',
        {},
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            ['queued', 'deferred', 'delivered', 'bounced', '< 5 min', '< 1 h', '< 1 day', 'older'].map((t) =>
              h('th', {}, t),
            ),
          ),
        ),
        h(
          'tbody',
          {},
          h(
            'tr',
            {},
            [
              q.recipients.queued,
              q.recipients.deferred,
              q.recipients.delivered,
              q.recipients.bounced,
              q.pendingByAge['5m'],
              q.pendingByAge['1h'],
              q.pendingByAge['1d'],
              q.pendingByAge.older,
            ].map((n) => h('td', {}, String(n))),
          ),
        ),
      ),
    ),
    h(
      'section',
      { class: 'panel' },
      h('h2', {}, 'Delivery by remote domain'),
      domains.size === 0
        ? h('p', { class: 'muted' }, 'No deliveries since the server started.')
        : h(
            'table',
            {},
            h(
              'thead',
              {},
              h(
                'tr',
                {},
                h('th', {}, 'domain'),
                h('th', {}, 'delivered'),
                h('th', {}, 'deferred'),
                h('th', {}, 'bounced'),
                h('th', {}, 'success'),
              ),
            ),
            h(
              'tbody',
              {},
              [...domains].map(([d, r]) => {
                const ok = r['delivered'] ?? 0;
                const all = ok + (r['deferred'] ?? 0) + (r['bounced'] ?? 0);
                return h(
                  'tr',
                  {},
                  h('td', { class: 'mono' }, d),
                  h('td', {}, String(ok)),
                  h('td', {}, String(r['deferred'] ?? 0)),
                  h('td', {}, String(r['bounced'] ?? 0)),
                  h('td', {}, all === 0 ? '—' : `${Math.round((ok / all) * 100)} %`),
                );
              }),
            ),
          ),
    ),
    h('section', { class: 'panel' }, h('h2', {}, 'Live events'), feed),
  );
}

function describe(kind: string, e: LiveEvent): string {
  const f = (k: string): string => {
    const v = e[k];
    if (v === undefined || v === null) return '';
    return typeof v === 'string' ? v : JSON.stringify(v);
  };
  switch (kind) {
    case 'accepted':
      return `accepted ${f('queueId')} from <${f('sender')}> to ${f('to')} (${f('sizeBytes')} bytes)`;
    case 'delivery':
      return `${e.event} ${f('queueId')} ${f('rcpt') || f('recipients')} ${f('reply') || f('host')}`;
    case 'session':
      return `${e.event} ${f('service')} ${f('ip')} ${f('reason')}`;
    case 'auth-failure':
      return `${e.event} ${f('ip')} ${f('account') || f('admin')} ${f('mechanism') || f('reason')}`;
    case 'queue':
      return `queue ${f('action')} ${f('ids')} by ${f('admin')}`;
    default:
      return `${e.event} ${f('queueId')} ${f('kind')}`;
  }
}

export async function dashboardView(root: HTMLElement): Promise<Cleanup> {
  const feed = h('ul', { class: 'feed', 'aria-live': 'polite', id: 'live-feed' });
  fill(feed, h('li', { class: 'muted' }, 'Waiting for events…'));
  let pending: ReturnType<typeof setTimeout> | null = null;
  let gone = false;
  const refresh = async (): Promise<void> => {
    const stats = await get<Stats>('/api/stats');
    if (!gone) render(root, stats, feed);
  };
  await refresh();
  const stop = onLive((kind, e) => {
    if (feed.firstElementChild?.classList.contains('muted') === true) fill(feed);
    feed.prepend(
      h('li', { 'data-kind': kind }, `${new Date(e.time).toLocaleTimeString()}  ${describe(kind, e)}`),
    );
    while (feed.children.length > 200) feed.lastElementChild?.remove();
    pending ??= setTimeout(() => {
      pending = null;
      void refresh();
    }, 1000);
  });
  const timer = setInterval(() => void refresh(), 15_000);
  return () => {
    gone = true;
    stop();
    clearInterval(timer);
    if (pending !== null) clearTimeout(pending);
  };
}
