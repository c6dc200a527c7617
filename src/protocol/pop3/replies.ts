// POP3 replies: the one catalogue of status lines (RFC 1939 §3), with the response codes of RFC 2449 §8
// (IN-USE, LOGIN-DELAY) and RFC 3206 (SYS/TEMP, SYS/PERM, AUTH), and the formatter that turns a reply
// (and the lines of a multi-line response) into wire bytes.
// Texts are generic on purpose: the specifics go to the log, never to the client. Replies whose text
// carries numbers (STAT, LIST, UIDL, RETR) are built by the small functions at the end from the session's
// own counters; nothing a client sent is ever echoed.
// Deliberately NOT here: byte-stuffing of message content (message-stream.ts) and SASL challenges, which
// the session writes as "+ <base64>" (RFC 5034 §4) from the text the SASL drive gives it.

/** RFC 2449 §8 and RFC 3206 response codes; sent in brackets after "-ERR" (RESP-CODES capability). */
export type RespCode = 'IN-USE' | 'LOGIN-DELAY' | 'SYS/TEMP' | 'SYS/PERM' | 'AUTH';

export interface Pop3Reply {
  readonly ok: boolean;
  readonly code: RespCode | null;
  readonly text: string;
}

const ok = (text: string): Pop3Reply => ({ ok: true, code: null, text });
const err = (text: string, code: RespCode | null = null): Pop3Reply => ({ ok: false, code, text });

export const Pop3Replies = {
  // Connection
  greeting: ok('POP3 server ready'),
  bye: ok('Bye'),
  tooManyConnections: err('Too many connections, try again later', 'SYS/TEMP'),
  tooManyConnectionsFromIp: err('Too many connections from your address, try again later', 'SYS/TEMP'),
  shuttingDown: err('Server shutting down', 'SYS/TEMP'),
  /** RFC 1939 §3: the autologout timer; the session ends without the UPDATE state. */
  idleTimeout: err('Idle for too long, closing connection'),
  tooManyErrors: err('Too many errors, closing connection'),
  tooManyJunkCommands: err('Too many commands without logging in, closing connection'),
  localError: err('Local error in processing, try again later', 'SYS/TEMP'),

  // Syntax and sequence
  unknownCommand: err('Unknown command'),
  badSequence: err('Command not valid in this state'),
  syntaxError: err('Syntax error in arguments'),
  lineTooLong: err('Line too long'),
  notUtf8: err('Command is not valid UTF-8'),

  // AUTHORIZATION
  capabilities: ok('Capability list follows'),
  userOk: ok('Send PASS'),
  needUser: err('USER first'),
  /** Plaintext login refused before TLS; [AUTH] as Dovecot sends it (RFC 3206 §4: a credentials matter). */
  loginNeedsTls: err('Plaintext authentication disallowed without TLS', 'AUTH'),
  apopDisabled: err('APOP not available'),
  loginFailed: err('Authentication failed', 'AUTH'),
  loginTemporaryFailure: err('Temporary authentication failure, try again later', 'SYS/TEMP'),
  loginLockedOut: err('Too many failed authentications, try again later', 'SYS/TEMP'),
  tooManyAuthFailures: err('Too many failed authentications, closing connection', 'SYS/TEMP'),
  authMechanisms: ok('Mechanisms follow'),
  authUnknownMechanism: err('Unrecognized authentication mechanism'),
  authNeedsTls: err('Encryption required for this authentication mechanism', 'AUTH'),
  authCancelled: err('Authentication cancelled'),
  authLineTooLong: err('Authentication exchange line is too long'),
  authBadBase64: err('Cannot decode client response'),
  authSucceeded: ok('Logged in'),
  beginTls: ok('Begin TLS negotiation'),
  tlsActive: err('Command not permitted when TLS active'),
  tlsUnavailable: err('TLS not available'),
  utf8Enabled: ok('UTF8 enabled'),
  /** RFC 2449 §8.1 IN-USE: another session holds the maildrop lock. */
  maildropInUse: err('Maildrop is locked by another session', 'IN-USE'),
  maildropUnavailable: err('Unable to open maildrop, try again later', 'SYS/TEMP'),

  // TRANSACTION
  noSuchMessage: err('No such message'),
  alreadyDeleted: err('Message already deleted'),
  badMessageNumber: err('Invalid message number'),
  deleted: ok('Message marked for deletion'),
  noop: ok('OK'),
  uidlFollows: ok('Unique-ID listing follows'),
  messageFollows: ok('Message follows'),
  messageUnavailable: err('Unable to read message, try again later', 'SYS/TEMP'),

  // UPDATE
  updated: ok('Bye'),
  updateFailed: err('Some deleted messages not removed, try again later', 'SYS/TEMP'),
} as const satisfies Record<string, Pop3Reply>;

/** STAT (RFC 1939 §5): exactly "+OK <count> <octets>", which clients parse. */
export function statReply(count: number, octets: number): Pop3Reply {
  return ok(`${count} ${octets}`);
}

/** LIST without argument, RSET and the login reply: the maildrop's visible size. */
export function maildropReply(count: number, octets: number): Pop3Reply {
  return ok(`${count} messages (${octets} octets)`);
}

/** LIST n and UIDL n: "+OK <n> <size>" / "+OK <n> <uid>" (RFC 1939 §5, §7). */
export function scanReply(number: number, value: number | string): Pop3Reply {
  return ok(`${number} ${value}`);
}

/** RETR: "+OK <size> octets" (RFC 1939 §5 example); the size is the stored one, before byte-stuffing. */
export function retrReply(sizeBytes: number): Pop3Reply {
  return ok(`${sizeBytes} octets`);
}

const encoder = new TextEncoder();

/** The status line without CRLF: "+OK text" or "-ERR [CODE] text". */
export function formatStatusLine(reply: Pop3Reply): string {
  if (reply.ok) return reply.text === '' ? '+OK' : `+OK ${reply.text}`;
  const code = reply.code === null ? '' : `[${reply.code}] `;
  return `-ERR ${code}${reply.text}`;
}

/**
 * Wire bytes for a reply; with `lines` a multi-line response (RFC 1939 §3): each line byte-stuffed
 * (a leading "." doubled), then ".". Lines come from the session (capability names, "n size", "n uid"),
 * never from a message: message content goes through message-stream.ts.
 */
export function formatReply(reply: Pop3Reply, lines?: readonly string[]): Uint8Array {
  let text = `${formatStatusLine(reply)}\r\n`;
  if (lines !== undefined) {
    for (const line of lines) text += line.startsWith('.') ? `.${line}\r\n` : `${line}\r\n`;
    text += '.\r\n';
  }
  return encoder.encode(text);
}

/** A SASL continuation (RFC 5034 §4): "+ " and the base64 challenge, which may be empty. */
export function formatChallenge(challenge: string): Uint8Array {
  return encoder.encode(`+ ${challenge}\r\n`);
}
