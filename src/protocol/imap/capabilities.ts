// The capability list a client sees (RFC 9051 §7.2.2), which changes with the session: before login
// STARTTLS/LOGINDISABLED/AUTH= and what a client needs to log in; after login the extensions Tern
// implements. Only what is implemented is named here: a capability is a promise (docs/imap.md lists each
// with its RFC). Pure.

export interface CapabilityContext {
  readonly authenticated: boolean;
  readonly starttlsOffered: boolean;
  readonly loginDisabled: boolean;
  /** SASL mechanisms offered now (the SASL drive's offered()). */
  readonly mechanisms: readonly string[];
  /** COMPRESS is active: COMPRESS=DEFLATE is not offered again (RFC 4978 §3). */
  readonly compressed: boolean;
  /** APPENDLIMIT in octets (RFC 7889). */
  readonly appendLimitBytes: number;
}

/** Extensions served once logged in, in the order clients usually print them. */
export const EXTENSIONS: readonly string[] = [
  'NAMESPACE',
  'UNSELECT',
  'UIDPLUS',
  'MOVE',
  'CHILDREN',
  'LIST-EXTENDED',
  'LIST-STATUS',
  'SPECIAL-USE',
  'CREATE-SPECIAL-USE',
  'ESEARCH',
  'SEARCHRES',
  'WITHIN',
  'CONDSTORE',
  'QRESYNC',
  'MULTIAPPEND',
  'CATENATE',
  'URLAUTH',
  'URLAUTH=BINARY',
  'BINARY',
  'UTF8=ACCEPT',
  'STATUS=SIZE',
  'SAVEDATE',
  'OBJECTID',
  'PREVIEW',
  'SORT',
  'SORT=DISPLAY',
  'ESORT',
  'CONTEXT=SEARCH',
  'CONTEXT=SORT',
  'THREAD=REFERENCES',
  'THREAD=ORDEREDSUBJECT',
  'QUOTA',
  'QUOTA=RES-STORAGE',
  'QUOTA=RES-MESSAGE',
  'UNAUTHENTICATE',
  'COMPRESS=DEFLATE',
  'NOTIFY',
];

export function capabilityList(c: CapabilityContext): string[] {
  const base = ['IMAP4rev2', 'IMAP4rev1', 'SASL-IR', 'LITERAL+', 'ID', 'ENABLE', 'IDLE'];
  if (!c.authenticated) {
    const pre = [...base];
    if (c.starttlsOffered) pre.push('STARTTLS');
    if (c.loginDisabled) pre.push('LOGINDISABLED');
    for (const m of c.mechanisms) pre.push(`AUTH=${m}`);
    return pre;
  }
  const extensions = c.compressed ? EXTENSIONS.filter((e) => e !== 'COMPRESS=DEFLATE') : EXTENSIONS;
  return [...base, ...extensions, `APPENDLIMIT=${c.appendLimitBytes}`];
}
