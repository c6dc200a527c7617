// Addresses out of an RFC 5322 address-list header value (From:, Sender:, To:), for policy checks such
// as "the From: belongs to the authenticated user". Handles display names, quoted strings, comments,
// groups and angle addresses; obsolete routes inside angle brackets are dropped. Pure and total: returns
// what it can find; a value with no parseable address returns [].

export function extractAddresses(value: string): string[] {
  const out: string[] = [];
  let bare = ''; // text outside angle brackets (a bare addr-spec, or a display name)
  let angle: string | null = null; // the last <...> content of this mailbox
  let inAngle = false;
  const flush = (): void => {
    const candidate = (angle ?? bare).replace(/\s+/g, '').replace(/^@[^:]*:/, ''); // drop obs-route
    if (candidate.includes('@')) out.push(candidate);
    bare = '';
    angle = null;
  };
  for (let i = 0; i < value.length; i++) {
    const ch = value[i]!;
    if (ch === '"') {
      let q = '"';
      for (i++; i < value.length && value[i] !== '"'; i++) {
        if (value[i] === '\\' && i + 1 < value.length) q += value[i++];
        q += value[i];
      }
      q += '"';
      if (inAngle) angle += q;
      else bare += q;
    } else if (ch === '(' && !inAngle) {
      for (let depth = 1; depth > 0 && ++i < value.length;) {
        if (value[i] === '\\') i++;
        else if (value[i] === '(') depth++;
        else if (value[i] === ')') depth--;
      }
    } else if (ch === '<' && !inAngle) {
      inAngle = true;
      angle = '';
    } else if (ch === '>' && inAngle) {
      inAngle = false;
    } else if (inAngle) {
      angle += ch;
    } else if (ch === ':' && !bare.includes('@')) {
      bare = ''; // a group's display name
    } else if (ch === ',' || ch === ';') {
      flush();
    } else {
      bare += ch;
    }
  }
  flush();
  return out;
}
