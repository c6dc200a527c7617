// Mailboxes: pick a user, see their folders with counts, list a folder's messages, open one in the viewer.

import type { FolderRow, MailboxMessage, UserRow } from '../../api-types.ts';
import { get, query } from '../api.ts';
import { bytes, fill, h, when } from '../dom.ts';

export async function mailboxesView(
  root: HTMLElement,
  params: URLSearchParams,
  path: readonly string[],
): Promise<void> {
  const user = path[0];
  if (user === undefined) {
    const [{ users }, caught] = await Promise.all([
      get<{ users: UserRow[] }>('/api/users'),
      get<{ catch: boolean; recipients: { user: string; messages: number }[] }>('/api/catch/recipients'),
    ]);
    const link = (address: string): HTMLElement =>
      h('a', { class: 'mono', href: `#/mailboxes/${encodeURIComponent(address)}` }, address);
    // Catcher mode keeps mail for recipients that are not users (docs/catch.md).
    const known = new Set(users.map((u) => u.address));
    const others = caught.recipients.filter((r) => !known.has(r.user));
    fill(
      root,
      h('h1', {}, 'Mailboxes'),
      h(
        'ul',
        {},
        users.map((u) => h('li', {}, link(u.address))),
      ),
      ...(others.length === 0
        ? []
        : [
            h('h2', {}, caught.catch ? 'Caught mail (catcher mode)' : 'Other mailboxes'),
            h(
              'ul',
              {},
              others.map((r) => h('li', {}, link(r.user), ` ${r.messages}`)),
            ),
          ]),
    );
    return;
  }
  const folder = params.get('folder') ?? 'INBOX';
  const [{ folders }, list] = await Promise.all([
    get<{ folders: FolderRow[] }>(`/api/mailboxes/${encodeURIComponent(user)}/folders`),
    get<{ total: number; messages: MailboxMessage[] }>(
      `/api/mailboxes/${encodeURIComponent(user)}/messages${query({ folder, limit: 200 })}`,
    ),
  ]);
  fill(
    root,
    h('h1', {}, 'Mailbox of ', h('span', { class: 'mono' }, user)),
    h(
      'nav',
      { class: 'actions', 'aria-label': 'Folders' },
      folders
        .filter((f) => f.selectable)
        .map((f) =>
          h(
            'a',
            {
              href: `#/mailboxes/${encodeURIComponent(user)}?folder=${encodeURIComponent(f.name)}`,
              ...(f.name === folder ? { 'aria-current': 'page' } : {}),
            },
            `${f.name} (${f.messages}${f.unseen > 0 ? `, ${f.unseen} unseen` : ''})`,
          ),
        ),
    ),
    h(
      'div',
      { class: 'panel' },
      list.messages.length === 0
        ? h('p', { class: 'muted' }, `${folder} is empty.`)
        : h(
            'table',
            { id: 'mailbox-table' },
            h(
              'thead',
              {},
              h(
                'tr',
                {},
                ['from', 'subject', 'date', 'size', 'flags'].map((t) => h('th', {}, t)),
              ),
            ),
            h(
              'tbody',
              {},
              list.messages.map((m) =>
                h(
                  'tr',
                  {},
                  h('td', { class: 'mono' }, m.from),
                  h(
                    'td',
                    {},
                    h(
                      'a',
                      {
                        href: `#/message/mailbox/${encodeURIComponent(user)}?id=${encodeURIComponent(m.id)}`,
                      },
                      m.subject === '' ? '(no subject)' : m.subject,
                    ),
                  ),
                  h('td', {}, when(m.internalDate)),
                  h('td', {}, bytes(m.size)),
                  h('td', { class: 'mono muted' }, m.flags.join(' ')),
                ),
              ),
            ),
          ),
    ),
  );
}
