// Domains: each local domain with the DNS records it needs (MX, SPF, DKIM, DMARC, MTA-STS, TLS-RPT) and,
// on request, whether DNS publishes them (asked through the server's own resolver).

import type { DomainInfo } from '../../api-types.ts';
import { get } from '../api.ts';
import { badge, fill, h } from '../dom.ts';

export async function domainsView(root: HTMLElement, params: URLSearchParams): Promise<void> {
  const check = params.get('check') === '1';
  const r = await get<{ hostname: string; domains: DomainInfo[] }>(
    `/api/domains${check ? '?check=true' : ''}`,
  );
  fill(
    root,
    h('h1', {}, 'Domains'),
    h(
      'p',
      {},
      `This server is ${r.hostname}. `,
      check
        ? h('a', { href: '#/domains' }, 'Hide the DNS check')
        : h('a', { href: '#/domains?check=1', id: 'dns-check' }, 'Check what DNS publishes'),
    ),
    r.domains.map((d) =>
      h(
        'section',
        { class: 'panel', 'data-domain': d.domain },
        h('h2', {}, d.domain, ' ', d.dkimKeys === 0 ? badge('no DKIM key', 'missing') : null),
        h(
          'table',
          {},
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              ['name', 'type', 'value to publish', check ? 'DNS' : 'what for'].map((t) => h('th', {}, t)),
            ),
          ),
          h(
            'tbody',
            {},
            d.records.map((rec) =>
              h(
                'tr',
                {},
                h('td', { class: 'mono' }, rec.name),
                h('td', {}, rec.type),
                h('td', { class: 'mono' }, rec.value),
                h(
                  'td',
                  {},
                  check && rec.dns !== undefined
                    ? [
                        badge(rec.dns.status),
                        rec.dns.found.length > 0
                          ? h('div', { class: 'mono muted' }, rec.dns.found.join(' | '))
                          : null,
                      ]
                    : rec.purpose,
                ),
              ),
            ),
          ),
        ),
        h('details', {}, h('summary', {}, 'MTA-STS policy file'), h('pre', {}, d.mtaStsPolicy)),
      ),
    ),
  );
}
