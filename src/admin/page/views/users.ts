// Users: every local account with whether it can log in and the addresses it may send as; add a user,
// set a password, grant or take away send-as, delete (its stored mail is kept).

import type { UserRow } from '../../api-types.ts';
import { del, get, post, put, query } from '../api.ts';
import { confirmAction, fill, h, showError, toast, when } from '../dom.ts';

export async function usersView(root: HTMLElement): Promise<void> {
  const { users } = await get<{ users: UserRow[] }>('/api/users');
  const address = h('input', {
    name: 'address',
    placeholder: 'jürgen@example.org',
    required: true,
    'aria-label': 'address',
  });
  const password = h('input', {
    name: 'password',
    type: 'password',
    autocomplete: 'new-password',
    'aria-label': 'password',
  });
  const reload = (): Promise<void> => usersView(root);
  fill(
    root,
    h('h1', {}, 'Users'),
    h(
      'form',
      {
        class: 'inline',
        id: 'user-add',
        onsubmit: (e: Event) => {
          e.preventDefault();
          void (async () => {
            await post('/api/users', {
              address: address.value,
              ...(password.value === '' ? {} : { password: password.value }),
            });
            toast(`Added ${address.value}`);
            await reload();
          })().catch(showError);
        },
      },
      h('label', {}, 'Address', address),
      h('label', {}, 'Password (optional)', password),
      h('button', { type: 'submit', class: 'primary' }, 'Add user'),
    ),
    h(
      'div',
      { class: 'panel' },
      h(
        'table',
        { id: 'users-table' },
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            ['address', 'created', 'can log in', 'may send as', ''].map((t) => h('th', {}, t)),
          ),
        ),
        h(
          'tbody',
          {},
          users.map((u) =>
            h(
              'tr',
              { 'data-user': u.address },
              h(
                'td',
                { class: 'mono' },
                h('a', { href: `#/mailboxes/${encodeURIComponent(u.address)}` }, u.address),
              ),
              h('td', {}, when(u.created)),
              h('td', {}, u.hasPassword ? 'yes' : 'no (no password)'),
              h(
                'td',
                { class: 'mono' },
                u.sendAs.map((p) =>
                  h(
                    'span',
                    {},
                    p,
                    ' ',
                    h(
                      'button',
                      {
                        type: 'button',
                        'aria-label': `take send-as ${p} from ${u.address}`,
                        onclick: () =>
                          void del(
                            `/api/users/${encodeURIComponent(u.address)}/sendas${query({ pattern: p })}`,
                          ).then(reload, showError),
                      },
                      '×',
                    ),
                    ' ',
                  ),
                ),
              ),
              h(
                'td',
                { class: 'actions' },
                h(
                  'button',
                  {
                    type: 'button',
                    onclick: () => {
                      const pattern = prompt(`Let ${u.address} send as (local@domain or @domain):`);
                      if (pattern === null || pattern.trim() === '') return;
                      void post(`/api/users/${encodeURIComponent(u.address)}/sendas`, { pattern }).then(
                        reload,
                        showError,
                      );
                    },
                  },
                  'Send as…',
                ),
                h(
                  'button',
                  {
                    type: 'button',
                    onclick: () => {
                      const pw = prompt(`New password for ${u.address}:`);
                      if (pw === null || pw === '') return;
                      void put(`/api/users/${encodeURIComponent(u.address)}/password`, { password: pw }).then(
                        () => toast(`Password set for ${u.address}`),
                        showError,
                      );
                    },
                  },
                  'Password…',
                ),
                h(
                  'button',
                  {
                    type: 'button',
                    class: 'danger',
                    onclick: () =>
                      void (async () => {
                        if (
                          !(await confirmAction(
                            `Delete ${u.address}?`,
                            'The account goes; its stored mail is kept (adding it again gives it back).',
                            'Delete',
                          ))
                        )
                          return;
                        await del(`/api/users/${encodeURIComponent(u.address)}`);
                        toast(`Deleted ${u.address}`);
                        await reload();
                      })(),
                  },
                  'Delete',
                ),
              ),
            ),
          ),
        ),
      ),
    ),
  );
}
