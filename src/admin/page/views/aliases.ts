// Aliases: where mail to an alias (or a domain's catch-all, @domain) goes; add and remove targets.

import type { AliasRow } from '../../api-types.ts';
import { del, get, post, query } from '../api.ts';
import { confirmAction, fill, h, showError, toast } from '../dom.ts';

export async function aliasesView(root: HTMLElement): Promise<void> {
  const { aliases } = await get<{ aliases: AliasRow[] }>('/api/aliases');
  const alias = h('input', {
    name: 'alias',
    placeholder: 'sales@example.org or @example.org',
    required: true,
    'aria-label': 'alias',
  });
  const target = h('input', {
    name: 'target',
    placeholder: '日本@example.org',
    required: true,
    'aria-label': 'target',
  });
  const reload = (): Promise<void> => aliasesView(root);
  fill(
    root,
    h('h1', {}, 'Aliases'),
    h(
      'form',
      {
        class: 'inline',
        id: 'alias-add',
        onsubmit: (e: Event) => {
          e.preventDefault();
          void (async () => {
            const r = await post<{ warnings: string[] }>('/api/aliases', {
              alias: alias.value,
              target: target.value,
            });
            toast(`Added ${alias.value} → ${target.value}`);
            for (const w of r.warnings) toast(w, true);
            await reload();
          })().catch(showError);
        },
      },
      h('label', {}, 'Alias', alias),
      h('label', {}, 'Target', target),
      h('button', { type: 'submit', class: 'primary' }, 'Add alias'),
    ),
    h(
      'div',
      { class: 'panel' },
      aliases.length === 0
        ? h('p', { class: 'muted' }, 'No aliases.')
        : h(
            'table',
            { id: 'aliases-table' },
            h('thead', {}, h('tr', {}, h('th', {}, 'alias'), h('th', {}, 'target'), h('th', {}, ''))),
            h(
              'tbody',
              {},
              aliases.map((a) =>
                h(
                  'tr',
                  {},
                  h('td', { class: 'mono' }, a.alias),
                  h('td', { class: 'mono' }, a.target),
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
                                `Remove ${a.alias} → ${a.target}?`,
                                'Mail to the alias stops going to this target.',
                                'Remove',
                              ))
                            )
                              return;
                            await del(`/api/aliases${query({ alias: a.alias, target: a.target })}`);
                            await reload();
                          })(),
                      },
                      'Remove',
                    ),
                  ),
                ),
              ),
            ),
          ),
    ),
  );
}
