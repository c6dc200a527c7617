// Message viewer, for a queued message (#/message/queue/ID) or a stored one (#/message/mailbox/USER?id=ID):
// the envelope and recipients (queue), the Authentication-Results, then tabs for the text, the HTML, the
// header fields, the attachments and the raw source.
// SECURITY: the HTML is never put in this document. It is loaded from its own URL into an iframe with an
// empty sandbox attribute (no scripts, no forms, no same-origin access), and the server sends it with a
// CSP that blocks every script and remote load (src/admin/routes/messages.ts).

import type { ActionResult, MessageView, QueueAction, QueueDetail } from '../../api-types.ts';
import { del, get, post, query } from '../api.ts';
import { badge, bytes, confirmAction, fill, h, toast, when } from '../dom.ts';

function tabs(panels: readonly { id: string; label: string; render: () => Node }[]): HTMLElement {
  const area = h('div', { role: 'tabpanel' });
  const buttons = panels.map((p, i) =>
    h(
      'button',
      {
        type: 'button',
        role: 'tab',
        id: `tab-${p.id}`,
        'aria-selected': i === 0 ? 'true' : 'false',
        onclick: () => select(i),
        onkeydown: (e: Event) => {
          const k = (e as KeyboardEvent).key;
          if (k === 'ArrowRight') select((i + 1) % panels.length, true);
          if (k === 'ArrowLeft') select((i - 1 + panels.length) % panels.length, true);
        },
      },
      p.label,
    ),
  );
  const select = (i: number, focus = false): void => {
    buttons.forEach((b, j) => {
      b.setAttribute('aria-selected', j === i ? 'true' : 'false');
      b.tabIndex = j === i ? 0 : -1;
    });
    if (focus) buttons[i]?.focus();
    const p = panels[i];
    if (p !== undefined) {
      area.setAttribute('aria-labelledby', `tab-${p.id}`);
      fill(area, p.render());
    }
  };
  const box = h('div', {}, h('div', { class: 'tabs', role: 'tablist' }, buttons), area);
  select(0);
  return box;
}

function contentTabs(
  view: MessageView,
  base: { html: (part: string) => string; part: (part: string) => string; source: string },
): HTMLElement {
  return tabs([
    {
      id: 'text',
      label: 'Text',
      render: () =>
        view.text === null
          ? h('p', { class: 'muted' }, 'No plain-text body.')
          : h('pre', { id: 'message-text' }, view.text),
    },
    {
      id: 'html',
      label: 'HTML',
      render: () =>
        view.htmlPart === null
          ? h('p', { class: 'muted' }, 'No HTML body.')
          : h(
              'div',
              {},
              h(
                'p',
                { class: 'muted' },
                'Shown sandboxed: scripts do not run and remote images are not loaded.',
              ),
              h('iframe', {
                class: 'html',
                id: 'message-html',
                sandbox: '',
                referrerpolicy: 'no-referrer',
                title: 'HTML body of the message',
                src: base.html(view.htmlPart),
              }),
            ),
    },
    {
      id: 'headers',
      label: 'Headers',
      render: () =>
        h(
          'table',
          {},
          h(
            'tbody',
            {},
            view.headers.map((f) =>
              h('tr', {}, h('th', { class: 'mono' }, f.name), h('td', { class: 'mono' }, f.value)),
            ),
          ),
        ),
    },
    {
      id: 'attachments',
      label: `Attachments (${view.attachments.length})`,
      render: () =>
        view.attachments.length === 0
          ? h('p', { class: 'muted' }, 'No attachments.')
          : h(
              'ul',
              {},
              view.attachments.map((a) =>
                h(
                  'li',
                  {},
                  h(
                    'a',
                    { href: base.part(a.part), download: a.filename ?? `part-${a.part}` },
                    a.filename ?? `part ${a.part}`,
                  ),
                  ` ${a.contentType}, ${bytes(a.size)}`,
                ),
              ),
            ),
    },
    {
      id: 'source',
      label: 'Source',
      render: () => {
        const pre = h('pre', { id: 'message-source' }, 'Loading…');
        void fetch(base.source, { credentials: 'same-origin' })
          .then((r) => r.text())
          .then((t) => fill(pre, t));
        return h(
          'div',
          {},
          h(
            'p',
            {},
            h('a', { href: base.source, target: '_blank', rel: 'noopener' }, 'Open the raw message'),
          ),
          pre,
        );
      },
    },
  ]);
}

function summary(view: MessageView): HTMLElement {
  const verdicts = view.authenticationResults.flatMap((ar) =>
    [...ar.matchAll(/\b(spf|dkim|dmarc|arc)=([a-z]+)/g)].map((m) =>
      badge(`${m[1] ?? ''}=${m[2] ?? ''}`, m[2] ?? ''),
    ),
  );
  return h(
    'section',
    { class: 'panel' },
    h('h2', { id: 'message-subject' }, view.subject === '' ? '(no subject)' : view.subject),
    h(
      'table',
      {},
      h(
        'tbody',
        {},
        [
          ['From', view.from],
          ['To', view.to],
          ['Date', view.date],
          ['Message-ID', view.messageId],
          ['Size', bytes(view.size)],
        ].map(([k, v]) => h('tr', {}, h('th', {}, k ?? ''), h('td', { class: 'mono' }, v ?? ''))),
      ),
    ),
    h('h2', {}, 'Authentication-Results'),
    view.authenticationResults.length === 0
      ? h(
          'p',
          { class: 'muted' },
          'None (mail from this server’s own users, or from a network the checks skip).',
        )
      : h(
          'div',
          {},
          h('p', {}, verdicts),
          view.authenticationResults.map((ar) => h('pre', { class: 'muted' }, ar)),
        ),
  );
}

async function queueMessage(root: HTMLElement, id: string): Promise<void> {
  const [detail, view] = await Promise.all([
    get<QueueDetail>(`/api/queue/${encodeURIComponent(id)}`),
    get<MessageView>(`/api/queue/${encodeURIComponent(id)}/view`),
  ]);
  const base = `/api/queue/${encodeURIComponent(id)}`;
  const act = async (action: QueueAction, label: string, why: string): Promise<void> => {
    if (!(await confirmAction(`${label} message ${id}?`, why, label))) return;
    const r = await post<ActionResult>(`${base}/${action}`);
    toast(`${label}: done${r.recipients === undefined ? '' : ` (${r.recipients} recipients)`}`);
    if (action === 'delete') location.hash = '#/queue';
    else await queueMessage(root, id);
  };
  const c = detail.client;
  fill(
    root,
    h('h1', {}, 'Queued message ', h('span', { class: 'mono' }, id), ' ', detail.held ? badge('held') : null),
    h(
      'div',
      { class: 'actions' },
      detail.held
        ? h(
            'button',
            {
              type: 'button',
              'data-action': 'release',
              onclick: () => void act('release', 'Release', 'It is delivered again.'),
            },
            'Release',
          )
        : h(
            'button',
            {
              type: 'button',
              'data-action': 'hold',
              onclick: () => void act('hold', 'Hold', 'It stays in the queue until released.'),
            },
            'Hold',
          ),
      h(
        'button',
        {
          type: 'button',
          'data-action': 'flush',
          onclick: () => void act('flush', 'Retry now', 'Deferred recipients are tried at once.'),
        },
        'Retry now',
      ),
      h(
        'button',
        {
          type: 'button',
          'data-action': 'bounce',
          onclick: () => void act('bounce', 'Bounce', 'Pending recipients fail; the sender gets a DSN.'),
        },
        'Bounce',
      ),
      h(
        'button',
        {
          type: 'button',
          class: 'danger',
          'data-action': 'delete',
          onclick: () =>
            void act('delete', 'Delete', 'Removed without telling anybody. This cannot be undone.'),
        },
        'Delete',
      ),
      h('a', { href: `#/trace?queueId=${encodeURIComponent(id)}` }, 'Trace'),
    ),
    h(
      'section',
      { class: 'panel' },
      h('h2', {}, 'Envelope'),
      h(
        'p',
        { class: 'mono' },
        `from <${detail.sender}> · arrived ${when(detail.arrival)} · ${c.hostname ?? ''} [${c.ip}] helo=${c.helo} · ${c.service}` +
          `${c.tls === null ? ' · no TLS' : ` · ${c.tls.version}`}${c.authUser === null ? '' : ` · auth ${c.authUser}`}`,
      ),
      h(
        'table',
        {},
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            ['recipient', 'state', 'tries', 'next try', 'last reply'].map((t) => h('th', {}, t)),
          ),
        ),
        h(
          'tbody',
          {},
          detail.recipients.map((r) =>
            h(
              'tr',
              {},
              h('td', { class: 'mono' }, r.address),
              h('td', {}, badge(r.status)),
              h('td', {}, String(r.attempts)),
              h('td', {}, r.status === 'queued' || r.status === 'deferred' ? when(r.nextAttempt) : ''),
              h(
                'td',
                { class: 'mono' },
                [r.lastReply ?? '', r.remoteMta === null ? '' : ` (${r.remoteMta})`].join(''),
              ),
            ),
          ),
        ),
      ),
    ),
    summary(view),
    contentTabs(view, {
      html: (p) => `${base}/html/${p}`,
      part: (p) => `${base}/parts/${p}`,
      source: `${base}/source`,
    }),
  );
}

async function storedMessage(root: HTMLElement, user: string, id: string): Promise<void> {
  const base = `/api/mailboxes/${encodeURIComponent(user)}/message`;
  const view = await get<MessageView>(`${base}${query({ id })}`);
  fill(
    root,
    h('h1', {}, 'Message ', h('span', { class: 'mono' }, id), ' of ', h('span', { class: 'mono' }, user)),
    h(
      'div',
      { class: 'actions' },
      h('a', { href: `#/mailboxes/${encodeURIComponent(user)}` }, '← Mailbox'),
      h(
        'button',
        {
          type: 'button',
          class: 'danger',
          onclick: () =>
            void (async () => {
              if (
                !(await confirmAction(
                  'Delete this message?',
                  `It is expunged from ${user}'s mailbox. This cannot be undone.`,
                  'Delete',
                ))
              )
                return;
              await del(`${base}${query({ id })}`);
              toast('Message deleted');
              location.hash = `#/mailboxes/${encodeURIComponent(user)}`;
            })(),
        },
        'Delete',
      ),
    ),
    summary(view),
    contentTabs(view, {
      html: (p) => `${base}/html${query({ id, part: p })}`,
      part: (p) => `${base}/part${query({ id, part: p })}`,
      source: `${base}/source${query({ id })}`,
    }),
  );
}

export async function messageView(
  root: HTMLElement,
  params: URLSearchParams,
  path: readonly string[],
): Promise<void> {
  const [source, key] = path;
  if (source === 'queue' && key !== undefined) return queueMessage(root, key);
  const id = params.get('id');
  if (source === 'mailbox' && key !== undefined && id !== null) return storedMessage(root, key, id);
  fill(root, h('h1', {}, 'No such message'), h('p', {}, h('a', { href: '#/queue' }, 'Back to the queue')));
}
