// Building the page's DOM without HTML strings: every text goes in through textContent, so nothing a
// message, an address or a log line contains is ever parsed as markup.

type Child = Node | string | number | null | undefined | false;
type Attrs = Readonly<Record<string, string | number | boolean | null | undefined | ((e: Event) => void)>>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: readonly (Child | readonly Child[])[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (typeof v === 'function') el.addEventListener(k.replace(/^on/, ''), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el: Node, children: readonly (Child | readonly Child[])[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (typeof c === 'string') el.appendChild(document.createTextNode(c));
    else if (typeof c === 'number') el.appendChild(document.createTextNode(String(c)));
    else if (c instanceof Node) el.appendChild(c);
    else append(el, c);
  }
}

/** Replace what an element holds. */
export function fill(el: Element, ...children: readonly (Child | readonly Child[])[]): void {
  el.replaceChildren();
  append(el, children);
}

export function badge(text: string, kind: string = text): HTMLSpanElement {
  return h('span', { class: `badge ${kind}` }, text);
}

export function when(iso: string | null | undefined): string {
  if (iso === null || iso === undefined || iso === '') return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** A short message at the corner of the screen (role=status: screen readers hear it). */
export function toast(text: string, bad = false): void {
  const box = document.getElementById('toast');
  if (box === null) return;
  const item = h('div', bad ? { class: 'bad' } : {}, text);
  box.appendChild(item);
  setTimeout(() => item.remove(), bad ? 8000 : 4000);
}

/** A failed API call, said as a toast (the API's problem detail when it gave one). */
export function showError(err: unknown): void {
  toast(err instanceof Error ? err.message : String(err), true);
}

/** Ask before doing something that cannot be undone: a modal dialog, Enter confirms, Escape cancels. */
export function confirmAction(question: string, detail: string, action: string): Promise<boolean> {
  return new Promise((resolve) => {
    const dialog = h(
      'dialog',
      { 'aria-labelledby': 'confirm-title' },
      h('h2', { id: 'confirm-title' }, question),
      h('p', { class: 'muted' }, detail),
      h(
        'form',
        { method: 'dialog', class: 'actions' },
        h('button', { value: 'cancel', type: 'submit' }, 'Cancel'),
        h('button', { value: 'ok', type: 'submit', class: 'primary', 'data-confirm': 'ok' }, action),
      ),
    );
    dialog.addEventListener('close', () => {
      resolve(dialog.returnValue === 'ok');
      dialog.remove();
    });
    document.body.appendChild(dialog);
    dialog.showModal();
    dialog.querySelector<HTMLButtonElement>('[data-confirm]')?.focus();
  });
}
