// Configuration: the snapshot in force (secrets redacted) and a reload button (as SIGHUP).

import { get, post } from '../api.ts';
import { fill, h, showError, toast } from '../dom.ts';

export async function configView(root: HTMLElement): Promise<void> {
  const config = await get<Record<string, unknown>>('/api/config');
  fill(
    root,
    h('h1', {}, 'Configuration'),
    h(
      'div',
      { class: 'actions' },
      h(
        'button',
        {
          type: 'button',
          onclick: () =>
            void post<{ ok: boolean; errors: string[]; restartNeeded: string[] }>('/api/reload').then((r) => {
              toast(
                r.ok
                  ? `Reloaded${r.restartNeeded.length > 0 ? `; restart needed for ${r.restartNeeded.join(', ')}` : ''}`
                  : `Reload refused: ${r.errors.join('; ')}`,
                !r.ok,
              );
              void configView(root);
            }, showError),
        },
        'Reload the configuration file',
      ),
    ),
    h(
      'p',
      { class: 'muted' },
      `From ${typeof config['source'] === 'string' ? config['source'] : 'the embedded defaults'}; secrets are shown as [redacted].`,
    ),
    h('div', { class: 'panel' }, h('pre', { id: 'config-json' }, JSON.stringify(config, null, 2))),
  );
}
