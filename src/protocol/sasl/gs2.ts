// The GS2 header (RFC 5801 §4) that opens SCRAM (RFC 5802 §7) and OAUTHBEARER (RFC 7628 §3.1) messages:
//   gs2-header = gs2-cbind-flag "," [ "a=" saslname ] ","
//   gs2-cbind-flag = ("p=" cb-name) / "n" / "y"
// "n": the client cannot bind; "y": it could, but believes the server cannot; "p=": it binds with cb-name.
// Pure and total.

import { decodeSaslName } from './common.ts';

export type Gs2Binding =
  { readonly kind: 'n' } | { readonly kind: 'y' } | { readonly kind: 'p'; readonly name: string };

export interface Gs2Header {
  readonly binding: Gs2Binding;
  /** The decoded authorization identity, or null when absent. */
  readonly authzid: string | null;
  /** The header exactly as sent, both commas included: SCRAM binds it into c= (RFC 5802 §7). */
  readonly raw: string;
}

export type Gs2Parse =
  | { readonly ok: true; readonly header: Gs2Header; readonly rest: string }
  | { readonly ok: false; readonly detail: string };

const CB_NAME = /^[A-Za-z0-9.-]+$/;

export function parseGs2Header(text: string): Gs2Parse {
  const firstComma = text.indexOf(',');
  const secondComma = firstComma < 0 ? -1 : text.indexOf(',', firstComma + 1);
  if (secondComma < 0) return { ok: false, detail: 'gs2 header: missing comma' };
  const flag = text.slice(0, firstComma);
  const authzField = text.slice(firstComma + 1, secondComma);

  let binding: Gs2Binding;
  if (flag === 'n' || flag === 'y') binding = { kind: flag };
  else if (flag.startsWith('p=') && CB_NAME.test(flag.slice(2))) binding = { kind: 'p', name: flag.slice(2) };
  else return { ok: false, detail: 'gs2 header: bad channel-binding flag' };

  let authzid: string | null = null;
  if (authzField !== '') {
    authzid = authzField.startsWith('a=') ? decodeSaslName(authzField.slice(2)) : null;
    if (authzid === null) return { ok: false, detail: 'gs2 header: bad authzid' };
  }
  return {
    ok: true,
    header: { binding, authzid, raw: text.slice(0, secondComma + 1) },
    rest: text.slice(secondComma + 1),
  };
}
