// DKIM keys: every signing key with the TXT record to publish; make a key (RSA or Ed25519) or delete one.

import type { DkimKeyRow } from '../../api-types.ts';
import { del, get, post } from '../api.ts';
import { confirmAction, fill, h, showError, toast, when } from '../dom.ts';

export async function dkimView(root: HTMLElement): Promise<void> {
  const { keys } = await get<{ keys: DkimKeyRow[] }>('/api/dkim');
  const domain = h('input', {
    name: 'domain',
    placeholder: 'example.org',
    required: true,
    'aria-label': 'domain',
  });
  const selector = h('input', {
    name: 'selector',
    placeholder: 's1',
    required: true,
    'aria-label': 'selector',
  });
  const algorithm = h(
    'select',
    { name: 'algorithm', 'aria-label': 'algorithm' },
    h('option', { value: 'rsa' }, 'RSA 2048'),
    h('option', { value: 'ed25519' }, 'Ed25519'),
  );
  const reload = (): Promise<void> => dkimView(root);
  fill(
    root,
    h('h1', {}, 'DKIM keys'),
    h(
      'form',
      {
        class: 'inline',
        onsubmit: (e: Event) => {
          e.preventDefault();
          void (async () => {
            const k = await post<DkimKeyRow>('/api/dkim', {
              domain: domain.value,
              selector: selector.value,
              algorithm: algorithm.value,
            });
            toast(`Made ${k.selector}._domainkey.${k.domain}: publish its record`);
            await reload();
          })().catch(showError);
        },
      },
      h('label', {}, 'Domain', domain),
      h('label', {}, 'Selector', selector),
      h('label', {}, 'Algorithm', algorithm),
      h('button', { type: 'submit', class: 'primary' }, 'Make key'),
    ),
    h(
      'div',
      { class: 'panel' },
      keys.length === 0
        ? h('p', { class: 'muted' }, 'No DKIM keys: outbound mail is not signed.')
        : h(
            'table',
            {},
            h(
              'thead',
              {},
              h(
                'tr',
                {},
                ['DNS name', 'algorithm', 'created', 'TXT value', ''].map((t) => h('th', {}, t)),
              ),
            ),
            h(
              'tbody',
              {},
              keys.map((k) =>
                h(
                  'tr',
                  {},
                  h('td', { class: 'mono' }, k.dnsName),
                  h('td', {}, k.algorithm),
                  h('td', {}, when(k.created)),
                  h('td', { class: 'mono' }, k.value),
                  h(
                    'td',
                    {},
                    h(
                      'button',
                      {
                        type: 'button',
                        class: 'danger',
                        onclick: () =>
                          void (async () => {
                            if (
                              !(await confirmAction(
                                `Delete ${k.dnsName}?`,
                                'Mail is no longer signed with it; withdraw its DNS record some days later.',
                                'Delete',
                              ))
                            )
                              return;
                            await del(
                              `/api/dkim/${encodeURIComponent(k.domain)}/${encodeURIComponent(k.selector)}`,
                            );
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
