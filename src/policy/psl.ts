// Organizational domains (RFC 7489 §3.2) from the Public Suffix List: the public suffix of a name plus one
// label. The list is the one bundled in the `tldts` package (compiled into its code, ICANN and private
// sections, no network or file access at run time); updating it is updating that dependency.
// Both sections are used, as OpenDMARC does with the whole list file: a name under a private-section suffix
// (foo.github.io, bar.blogspot.com) belongs to a different owner than its neighbours, which is exactly
// what DMARC's relaxed alignment must not merge.
// Deliberately not here: the DMARCbis (RFC 9989 §4.10) DNS tree walk, which lives in dmarc.ts because it
// needs the resolver.
import { domainToASCII } from 'node:url';
import { getDomain, getPublicSuffix } from 'tldts';

const tldtsOptions = {
  allowPrivateDomains: true,
  // Inputs are bare domain names, never URLs; and RFC 7489 wants an answer even for names tldts finds odd
  // (underscore labels), so hostname validation is ours.
  extractHostname: false,
  validateHostname: false,
  detectIp: false,
} as const;

/**
 * The lower-case A-label form of a domain without its trailing dot (RFC 7489 §6.6.1: U-labels are
 * converted before lookups), or "" when the name cannot be converted (empty labels, bad IDNA).
 */
export function canonicalDomain(domain: string): string {
  const trimmed = domain.trim().replace(/\.$/, '');
  if (trimmed === '' || trimmed.split('.').some((label) => label === '')) return '';
  // Only non-ASCII names go through IDNA: ASCII ones are taken as they are (lower-cased), so that names
  // IDNA would refuse but DNS allows (underscore labels) keep working.
  if (/^[\x00-\x7f]*$/.test(trimmed)) return trimmed.toLowerCase();
  return domainToASCII(trimmed.toLowerCase());
}

/** The public suffix of a domain ("co.uk" for "a.example.co.uk"); an unlisted TLD is its own suffix. */
export function publicSuffix(domain: string): string {
  const name = canonicalDomain(domain);
  if (name === '') return '';
  return getPublicSuffix(name, tldtsOptions) ?? name.slice(name.lastIndexOf('.') + 1);
}

/**
 * The Organizational Domain of RFC 7489 §3.2: the public suffix plus one label. A name that is itself a
 * public suffix (or shorter) is its own organizational domain, so that DMARC still applies to it (§6.6.1:
 * public suffixes are not exempt). Returns "" for a name that is not a domain.
 */
export function organizationalDomain(domain: string): string {
  const name = canonicalDomain(domain);
  if (name === '') return '';
  return getDomain(name, tldtsOptions) ?? name;
}
