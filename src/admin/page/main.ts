// The admin page: a login form, then one view per #/route, each a module in views/. Routes are hash
// fragments so the server serves one document; every view gets the element to fill and the route's
// parameters, and returns what to undo when it is left (live-event subscriptions, timers).

import type { StatusInfo } from '../api-types.ts';
import { ApiError, get, post, session, setCsrf, whenUnauthorized } from './api.ts';
import { fill, h } from './dom.ts';
import { startLive, stopLive } from './live.ts';
import { aliasesView } from './views/aliases.ts';
import { configView } from './views/config.ts';
import { dashboardView } from './views/dashboard.ts';
import { dkimView } from './views/dkim.ts';
import { domainsView } from './views/domains.ts';
import { mailboxesView } from './views/mailboxes.ts';
import { messageView } from './views/message.ts';
import { queueView } from './views/queue.ts';
import { traceView } from './views/trace.ts';
import { usersView } from './views/users.ts';

export type Cleanup = () => void;
export type View = (
  root: HTMLElement,
  params: URLSearchParams,
  path: readonly string[],
) => Promise<Cleanup | void>;

const VIEWS: Readonly<Record<string, View>> = {
  dashboard: dashboardView,
  queue: queueView,
  trace: traceView,
  message: messageView,
  mailboxes: mailboxesView,
  users: usersView,
  aliases: aliasesView,
  domains: domainsView,
  dkim: dkimView,
  config: configView,
};

const main = document.getElementById('main') as HTMLElement;
const nav = document.getElementById('nav') as HTMLElement;
const who = document.getElementById('who') as HTMLElement;
let cleanup: Cleanup | null = null;
let loggedIn = false;
/** Counts navigations: a view that finishes loading after the next one began is undone at once. */
let shown = 0;

function route(): { name: string; path: string[]; params: URLSearchParams } {
  const hash = location.hash.replace(/^#\/?/, '');
  const [pathPart = '', queryPart = ''] = hash.split('?');
  const path = pathPart
    .split('/')
    .filter((p) => p !== '')
    .map(decodeURIComponent);
  return { name: path[0] ?? 'dashboard', path: path.slice(1), params: new URLSearchParams(queryPart) };
}

async function show(): Promise<void> {
  if (!loggedIn) return;
  const mine = ++shown;
  cleanup?.();
  cleanup = null;
  const r = route();
  const view = VIEWS[r.name] ?? dashboardView;
  for (const a of nav.querySelectorAll('a')) {
    if (a.getAttribute('href') === `#/${r.name}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  // Each view fills its own element: one still loading when the next is shown fills a detached one.
  const root = h('div', { class: 'view', 'data-view': r.name }, h('p', { class: 'muted' }, 'Loading…'));
  fill(main, root);
  try {
    const done = await view(root, r.params, r.path);
    if (mine === shown) cleanup = done ?? null;
    else done?.();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return;
    fill(
      root,
      h('h1', {}, 'Something went wrong'),
      h('p', { class: 'error' }, err instanceof Error ? err.message : String(err)),
    );
  }
  if (mine === shown) main.focus({ preventScroll: true });
}

async function showLogin(): Promise<void> {
  loggedIn = false;
  cleanup?.();
  cleanup = null;
  stopLive();
  nav.hidden = true;
  fill(who);
  setCsrf(null);
  let status: StatusInfo | null = null;
  try {
    status = await get<StatusInfo>('/api/status');
  } catch {
    status = null;
  }
  const error = h('p', { class: 'error', role: 'alert' });
  const name = h('input', { name: 'name', autocomplete: 'username', required: true, autofocus: true });
  const password = h('input', {
    name: 'password',
    type: 'password',
    autocomplete: 'current-password',
    required: true,
  });
  const form = h(
    'form',
    {
      onsubmit: (e: Event) => {
        e.preventDefault();
        void (async () => {
          try {
            const r = await post<{ name: string; csrf: string }>('/api/login', {
              name: name.value,
              password: password.value,
            });
            setCsrf(r.csrf);
            await enter(r.name);
          } catch (err) {
            fill(error, err instanceof Error ? err.message : String(err));
            password.value = '';
            password.focus();
          }
        })();
      },
    },
    h('label', {}, 'Name', name),
    h('label', {}, 'Password', password),
    h('button', { class: 'primary', type: 'submit' }, 'Log in'),
    error,
  );
  fill(
    main,
    h(
      'section',
      { class: 'login card' },
      h('h1', {}, `Tern admin${status === null ? '' : ` — ${status.hostname}`}`),
      status !== null && !status.admins
        ? h(
            'p',
            { class: 'muted' },
            'No admin account exists yet. Create the first one on the server: ',
            h('code', {}, 'npx tern admin add NAME'),
          )
        : null,
      form,
    ),
  );
  name.focus();
}

async function enter(name: string): Promise<void> {
  loggedIn = true;
  nav.hidden = false;
  fill(
    who,
    h('span', {}, name),
    h(
      'button',
      {
        type: 'button',
        onclick: () => {
          void post('/api/logout').finally(() => void showLogin());
        },
      },
      'Log out',
    ),
  );
  startLive();
  // Setting the hash shows the view (hashchange); showing it here as well would start it twice.
  if (location.hash === '' || location.hash === '#') location.hash = '#/dashboard';
  else await show();
}

whenUnauthorized(() => void showLogin());
window.addEventListener('hashchange', () => void show());

void (async () => {
  const s = await session();
  if (s === null) await showLogin();
  else await enter(s.name);
})();
