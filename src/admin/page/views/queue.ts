// Queue: every queued message with each recipient's state, attempts, last reply and next try; filters by
// state, sender, recipient and domain; hold, release, flush, bounce and delete for the messages ticked
// (each after a confirmation). Refreshed as live events say the queue changed.

import type { ActionResult, QueueAction, QueueList, QueueMessage } from '../../api-types.ts';
import { get, post, query } from '../api.ts';
import { badge, bytes, confirmAction, fill, h, toast, when } from '../dom.ts';
import { onLive } from '../live.ts';
import type { Cleanup } from '../main.ts';

const ACTIONS: readonly { action: QueueAction; label: string; why: string }[] = [
  { action: 'hold', label: 'Hold', why: 'They stay in the queue, undelivered, until released.' },
  { action: 'release', label: 'Release', why: 'Held messages are delivered again.' },
  { action: 'flush', label: 'Retry now', why: 'Deferred recipients are tried at once.' },
  { action: 'bounce', label: 'Bounce', why: 'Pending recipients fail and each sender gets a DSN.' },
  {
    action: 'delete',
    label: 'Delete',
    why: 'They are removed without telling anybody. This cannot be undone.',
  },
];

function stateOf(m: QueueMessage): string {
  if (m.held) return 'held';
  if (m.recipients.some((r) => r.status === 'deferred')) return 'deferred';
  if (m.recipients.some((r) => r.status === 'queued')) return 'queued';
  return 'done';
}

export async function queueView(root: HTMLElement, params: URLSearchParams): Promise<Cleanup> {
  const state = h(
    'select',
    { name: 'state' },
    ['all', 'pending', 'queued', 'deferred', 'held'].map((s) =>
      h('option', { value: s, selected: params.get('state') === s }, s),
    ),
  );
  const sender = h('input', {
    name: 'sender',
    value: params.get('sender') ?? '',
    placeholder: 'part of an address',
  });
  const recipient = h('input', {
    name: 'recipient',
    value: params.get('recipient') ?? '',
    placeholder: 'part of an address',
  });
  const domain = h('input', {
    name: 'domain',
    value: params.get('domain') ?? '',
    placeholder: 'example.org',
  });
  const body = h('tbody');
  const count = h('p', { class: 'muted', id: 'queue-count' });
  const selected = new Set<string>();
  const buttons: HTMLButtonElement[] = [];
  let gone = false;

  const load = async (): Promise<void> => {
    const list = await get<QueueList>(
      `/api/queue${query({ state: state.value, sender: sender.value, recipient: recipient.value, domain: domain.value, limit: 500 })}`,
    );
    if (gone) return;
    fill(
      count,
      `${list.total} message${list.total === 1 ? '' : 's'}${list.total > list.messages.length ? ` (first ${list.messages.length} shown)` : ''}`,
    );
    for (const id of [...selected]) if (!list.messages.some((m) => m.id === id)) selected.delete(id);
    fill(
      body,
      list.messages.length === 0
        ? h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'The queue is empty.'))
        : list.messages.map((m) =>
            h(
              'tr',
              { 'data-id': m.id },
              h(
                'td',
                {},
                h('input', {
                  type: 'checkbox',
                  'aria-label': `select ${m.id}`,
                  checked: selected.has(m.id),
                  onchange: (e: Event) => {
                    if ((e.target as HTMLInputElement).checked) selected.add(m.id);
                    else selected.delete(m.id);
                    update();
                  },
                }),
              ),
              h(
                'td',
                { class: 'mono' },
                h('a', { href: `#/message/queue/${encodeURIComponent(m.id)}` }, m.id),
              ),
              h('td', { class: 'mono' }, m.sender === '' ? '<>' : m.sender),
              h(
                'td',
                { class: 'wide' },
                when(m.arrival),
                h('br'),
                h('span', { class: 'muted' }, bytes(m.size)),
              ),
              h('td', {}, badge(stateOf(m), stateOf(m))),
              h(
                'td',
                {},
                h(
                  'table',
                  {},
                  m.recipients.map((r) =>
                    h(
                      'tr',
                      {},
                      h('td', { class: 'mono' }, r.address),
                      h('td', {}, badge(r.status)),
                      h('td', { class: 'muted' }, `${r.attempts} tr${r.attempts === 1 ? 'y' : 'ies'}`),
                      h(
                        'td',
                        { class: 'wide muted' },
                        r.status === 'queued' || r.status === 'deferred' ? `next ${when(r.nextAttempt)}` : '',
                      ),
                      h('td', { class: 'mono wide' }, r.lastReply ?? ''),
                    ),
                  ),
                ),
              ),
            ),
          ),
    );
    update();
  };

  const update = (): void => {
    for (const b of buttons) b.disabled = selected.size === 0;
  };

  const act = async (action: QueueAction, label: string, why: string): Promise<void> => {
    const ids = [...selected];
    if (ids.length === 0) return;
    const ok = await confirmAction(
      `${label} ${ids.length} message${ids.length === 1 ? '' : 's'}?`,
      why,
      label,
    );
    if (!ok) return;
    const { results } = await post<{ results: ActionResult[] }>('/api/queue/actions', { action, ids });
    const failed = results.filter((r) => !r.ok);
    toast(
      `${label}: ${results.length - failed.length} done${failed.length > 0 ? `, ${failed.length} failed: ${failed[0]?.error ?? ''}` : ''}`,
      failed.length > 0,
    );
    selected.clear();
    await load();
  };

  for (const a of ACTIONS) {
    buttons.push(
      h(
        'button',
        {
          type: 'button',
          class: a.action === 'delete' ? 'danger' : '',
          'data-action': a.action,
          onclick: () => void act(a.action, a.label, a.why),
        },
        a.label,
      ),
    );
  }

  fill(
    root,
    h('h1', {}, 'Queue'),
    h(
      'form',
      {
        class: 'filters',
        onsubmit: (e: Event) => {
          e.preventDefault();
          void load();
        },
      },
      h('label', {}, 'State', state),
      h('label', {}, 'Sender', sender),
      h('label', {}, 'Recipient', recipient),
      h('label', {}, 'Domain', domain),
      h('button', { type: 'submit', class: 'primary' }, 'Filter'),
    ),
    h(
      'div',
      { class: 'actions', role: 'toolbar', 'aria-label': 'Actions on the selected messages' },
      buttons,
    ),
    count,
    h(
      'div',
      { class: 'panel' },
      h(
        'table',
        { id: 'queue-table' },
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            h('th', {}, ''),
            h('th', {}, 'queue id'),
            h('th', {}, 'sender'),
            h('th', { class: 'wide' }, 'arrived'),
            h('th', {}, 'state'),
            h('th', {}, 'recipients: state, tries, next try, last reply'),
          ),
        ),
        body,
      ),
    ),
  );
  await load();
  let pending: ReturnType<typeof setTimeout> | null = null;
  const stop = onLive((kind) => {
    if (kind !== 'accepted' && kind !== 'delivery' && kind !== 'queue') return;
    pending ??= setTimeout(() => {
      pending = null;
      void load();
    }, 500);
  });
  return () => {
    gone = true;
    stop();
    if (pending !== null) clearTimeout(pending);
  };
}
