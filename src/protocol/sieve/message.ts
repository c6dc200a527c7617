// The message as Sieve tests see it: the header fields in order (edited in place by addheader and
// deleteheader, whose changes later tests see, RFC 5293 §3), values decoded from RFC 2047 encoded-words
// for header tests (RFC 5228 §2.7.2), addresses out of address-list fields (§5.1), address parts
// including :user / :detail (RFC 5233 §4), and which occurrence :index / :last picks (RFC 5260 §6).
// PURE. Deliberately NOT here: body texts (body.ts), the tests themselves (interpret.ts).

import { extractAddresses } from '../address-list.ts';
import { decodeEncodedWords, parseHeaderBlock } from '../headers.ts';
import type { AddressPart, FieldIndex } from './ast.ts';

export interface Field {
  readonly name: string;
  /** Unfolded, encoded-words as written. */
  readonly value: string;
}

export function readFields(headerBlock: Uint8Array): Field[] {
  return parseHeaderBlock(headerBlock).map((f) => ({ name: f.name, value: f.value }));
}

/** The fields named `name` (any case), narrowed to one by `index` when given. */
export function fieldsNamed(fields: readonly Field[], name: string, index: FieldIndex | null): Field[] {
  const lower = name.toLowerCase();
  const all = fields.filter((f) => f.name.toLowerCase() === lower);
  if (index === null) return all;
  const at = index.last ? all.length - index.index : index.index - 1;
  const one = all[at];
  return one ? [one] : [];
}

export function decodedValue(f: Field): string {
  return decodeEncodedWords(f.value);
}

/** Addresses in a field value, or nothing; a value with no "@" yields nothing. */
export function addressesOf(value: string): string[] {
  return extractAddresses(value);
}

/**
 * The `part` of `address` ("local@domain"); null when the address has no such part (no detail when
 * the local part has no separator, RFC 5233 §4). `separators`: each character may start the detail.
 */
export function addressPart(address: string, part: AddressPart, separators: string): string | null {
  if (part === 'all') return address;
  const at = address.lastIndexOf('@');
  const local = at < 0 ? address : address.slice(0, at);
  if (part === 'localpart') return local;
  if (part === 'domain') return at < 0 ? null : address.slice(at + 1);
  let cut = -1;
  for (const sep of separators) {
    const i = local.indexOf(sep);
    if (i >= 0 && (cut < 0 || i < cut)) cut = i;
  }
  if (part === 'user') return cut < 0 ? local : local.slice(0, cut);
  return cut < 0 ? null : local.slice(cut + 1);
}
