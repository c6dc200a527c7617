// SMTP client side: the server's EHLO reply read as capabilities (RFC 5321 §4.1.1.1, keywords from
// RFC 2920 PIPELINING, RFC 1870 SIZE, RFC 6152 8BITMIME, RFC 6531 SMTPUTF8, RFC 3030 CHUNKING and
// BINARYMIME, RFC 3461 DSN, RFC 3207 STARTTLS, RFC 4954 AUTH, RFC 2034 ENHANCEDSTATUSCODES).
// Pure and total: unknown keywords are ignored, odd ones never throw. Keywords are case-insensitive.

export interface Capabilities {
  /** False after a HELO fallback: then every extension below is off. */
  readonly esmtp: boolean;
  /** The server's name from the first line of its EHLO/HELO reply (for logs only; never trusted). */
  readonly serverName: string;
  readonly pipelining: boolean;
  /** SIZE was advertised. */
  readonly size: boolean;
  /** The fixed maximum message size; null when none was declared (SIZE alone, or SIZE 0). */
  readonly sizeLimitBytes: number | null;
  readonly eightBitMime: boolean;
  readonly smtputf8: boolean;
  readonly chunking: boolean;
  readonly binaryMime: boolean;
  readonly dsn: boolean;
  readonly startTls: boolean;
  readonly enhancedStatusCodes: boolean;
  /** RFC 8689: the server takes REQUIRETLS on MAIL FROM. */
  readonly requireTls: boolean;
  /** RFC 6710: MT-PRIORITY=n is taken on MAIL FROM. */
  readonly mtPriority?: boolean;
  /** RFC 2852: BY= is taken on MAIL FROM. */
  readonly deliverBy?: boolean;
  /** SASL mechanisms offered, upper case, in the server's order. */
  readonly authMechanisms: readonly string[];
}

export const NO_CAPABILITIES: Capabilities = {
  esmtp: false,
  serverName: '',
  pipelining: false,
  size: false,
  sizeLimitBytes: null,
  eightBitMime: false,
  smtputf8: false,
  chunking: false,
  binaryMime: false,
  dsn: false,
  startTls: false,
  enhancedStatusCodes: false,
  requireTls: false,
  authMechanisms: [],
};

/** Capabilities from the text lines of a 250 EHLO reply (first line: the server's greeting). */
export function parseEhloReply(lines: readonly string[]): Capabilities {
  const caps: { -readonly [K in keyof Capabilities]: Capabilities[K] } = {
    ...NO_CAPABILITIES,
    esmtp: true,
    serverName: (lines[0] ?? '').trim().split(/\s+/, 1)[0] ?? '',
  };
  const auth: string[] = [];
  for (const line of lines.slice(1)) {
    const words = line.trim().split(/\s+/);
    const head = (words[0] ?? '').toUpperCase();
    // Old servers wrote "AUTH=LOGIN PLAIN" (pre-RFC 4954 drafts); read it like AUTH.
    const [keyword, inline] = head.startsWith('AUTH=') ? ['AUTH', head.slice(5)] : [head, null];
    const params = words.slice(1);
    switch (keyword) {
      case 'PIPELINING':
        caps.pipelining = true;
        break;
      case 'SIZE': {
        caps.size = true;
        const n = params[0] === undefined ? NaN : Number(params[0]);
        caps.sizeLimitBytes = /^\d{1,20}$/.test(params[0] ?? '') && n > 0 ? n : null;
        break;
      }
      case '8BITMIME':
        caps.eightBitMime = true;
        break;
      case 'SMTPUTF8':
        caps.smtputf8 = true;
        break;
      case 'CHUNKING':
        caps.chunking = true;
        break;
      case 'BINARYMIME':
        caps.binaryMime = true;
        break;
      case 'DSN':
        caps.dsn = true;
        break;
      case 'STARTTLS':
        caps.startTls = true;
        break;
      case 'ENHANCEDSTATUSCODES':
        caps.enhancedStatusCodes = true;
        break;
      case 'MT-PRIORITY':
        caps.mtPriority = true;
        break;
      case 'DELIVERBY':
        caps.deliverBy = true;
        break;
      case 'REQUIRETLS':
        caps.requireTls = true;
        break;
      case 'AUTH':
        for (const m of inline === null ? params : [inline, ...params]) {
          const mech = m.toUpperCase();
          if (/^[A-Z0-9_-]{1,20}$/.test(mech) && !auth.includes(mech)) auth.push(mech);
        }
        break;
      default:
        break;
    }
  }
  caps.authMechanisms = auth;
  return caps;
}

/** After a HELO fallback: no extensions at all. */
export function heloCapabilities(lines: readonly string[]): Capabilities {
  return { ...NO_CAPABILITIES, serverName: (lines[0] ?? '').trim().split(/\s+/, 1)[0] ?? '' };
}
