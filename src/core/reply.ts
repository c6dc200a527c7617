// SMTP replies: the one catalogue of codes and texts (RFC 5321 §4.2, enhanced codes RFC 3463/RFC 2034).
// Reply text here is generic on purpose; the specifics go to the log, never to the client.
// Only the session driver writes replies; everything else returns or throws one of these.

export interface Reply {
  readonly code: number;
  /** Enhanced status code (RFC 3463) without the class digit ambiguity: "5.1.1". Empty for 220/221 banners. */
  readonly enhanced: string;
  readonly text: string;
}

export const Replies = {
  // 2xx
  ok: { code: 250, enhanced: '2.0.0', text: 'OK' },
  /** EHLO/HELO replies carry no enhanced code: clients parse the keyword lines as they are (RFC 5321 §4.1.1.1). */
  greets: { code: 250, enhanced: '', text: 'Hello' },
  senderOk: { code: 250, enhanced: '2.1.0', text: 'Sender OK' },
  recipientOk: { code: 250, enhanced: '2.1.5', text: 'Recipient OK' },
  queued: { code: 250, enhanced: '2.0.0', text: 'OK: queued' },
  chunkOk: { code: 250, enhanced: '2.0.0', text: 'Chunk received' },
  resetOk: { code: 250, enhanced: '2.0.0', text: 'Reset' },
  noopOk: { code: 250, enhanced: '2.0.0', text: 'OK' },
  bye: { code: 221, enhanced: '2.0.0', text: 'Bye' },
  cannotVrfy: {
    code: 252,
    enhanced: '2.1.5',
    text: 'Cannot VRFY user, but will accept message and attempt delivery',
  },
  help: { code: 214, enhanced: '2.0.0', text: 'See https://www.rfc-editor.org/rfc/rfc5321' },
  readyForTls: { code: 220, enhanced: '2.0.0', text: 'Ready to start TLS' },
  authSucceeded: { code: 235, enhanced: '2.7.0', text: 'Authentication successful' },
  /** A SASL challenge; the text is the base64 challenge (RFC 4954 §4), no enhanced code. */
  authChallenge: { code: 334, enhanced: '', text: '' },
  // 3xx
  startData: { code: 354, enhanced: '', text: 'End data with <CR><LF>.<CR><LF>' },
  // 4xx
  shuttingDown: { code: 421, enhanced: '4.3.2', text: 'Service shutting down, closing connection' },
  tooManyConnections: { code: 421, enhanced: '4.7.0', text: 'Too many connections, try again later' },
  tooManyConnectionsFromIp: {
    code: 421,
    enhanced: '4.7.0',
    text: 'Too many connections from your address, try again later',
  },
  commandTimeout: { code: 421, enhanced: '4.4.2', text: 'Timeout, closing connection' },
  tooManyErrors: { code: 421, enhanced: '4.7.0', text: 'Too many errors, closing connection' },
  earlyTalker: { code: 554, enhanced: '5.5.0', text: 'Protocol violation: talking before the greeting' },
  tooManyJunkCommands: {
    code: 421,
    enhanced: '4.7.0',
    text: 'Too many commands without mail, closing connection',
  },
  tooManyTransactions: { code: 421, enhanced: '4.7.0', text: 'Too many transactions, reconnect to continue' },
  localError: { code: 451, enhanced: '4.3.0', text: 'Local error in processing, try again later' },
  tooManyRecipients: { code: 452, enhanced: '4.5.3', text: 'Too many recipients' },
  insufficientStorage: { code: 452, enhanced: '4.3.1', text: 'Insufficient system storage' },
  tlsUnavailable: { code: 454, enhanced: '4.7.0', text: 'TLS not available' },
  authTemporaryFailure: { code: 454, enhanced: '4.7.0', text: 'Temporary authentication failure' },
  authLockedOut: { code: 454, enhanced: '4.7.0', text: 'Too many failed authentications, try again later' },
  tooManyAuthFailures: {
    code: 421,
    enhanced: '4.7.0',
    text: 'Too many failed authentications, closing connection',
  },
  userRateLimited: { code: 451, enhanced: '4.7.1', text: 'Sending rate limit exceeded, try again later' },
  /** RFC 7372 §3.2: SPF validation could not complete. */
  spfTempError: { code: 451, enhanced: '4.7.24', text: 'Temporary SPF validation error, try again later' },
  authDnsTempError: {
    code: 451,
    enhanced: '4.4.3',
    text: 'Temporary DNS failure during authentication checks, try again later',
  },
  // 5xx syntax and sequence
  unknownCommand: { code: 500, enhanced: '5.5.1', text: 'Command unrecognized' },
  /** EHLO or HELO on an LMTP listener (RFC 2033 §4.1: LHLO replaces them). */
  /** DELIVERBY mode R (RFC 2852 §4.1.4): the deadline passed before delivery; the DSN's status. */
  deliverByExpired: { code: 554, enhanced: '5.4.7', text: 'Delivery time expired (DELIVERBY)' },
  /** Sieve reject/ereject at delivery (RFC 5429): the DSN's status; the script's reason follows. */
  sieveRejected: { code: 550, enhanced: '5.7.1', text: "Rejected by the recipient's filter" },
  /** XCLIENT from a client not in [smtp] xclient_from (Postfix's wording). */
  xclientDenied: { code: 550, enhanced: '5.7.0', text: 'Error: insufficient authorization' },
  useLhlo: { code: 500, enhanced: '5.5.1', text: 'This is LMTP (RFC 2033): use LHLO' },
  lineTooLong: { code: 500, enhanced: '5.5.6', text: 'Line too long' },
  syntaxError: { code: 501, enhanced: '5.5.4', text: 'Syntax error in parameters or arguments' },
  badAddressSyntax: { code: 501, enhanced: '5.1.3', text: 'Bad address syntax' },
  badSenderSyntax: { code: 501, enhanced: '5.1.7', text: 'Bad sender address syntax' },
  badHeloArgument: { code: 501, enhanced: '5.5.4', text: 'Invalid domain or address literal' },
  notImplemented: { code: 502, enhanced: '5.5.1', text: 'Command not implemented' },
  badSequence: { code: 503, enhanced: '5.5.1', text: 'Bad sequence of commands' },
  needHelo: { code: 503, enhanced: '5.5.1', text: 'Send EHLO or HELO first' },
  needMail: { code: 503, enhanced: '5.5.1', text: 'Need MAIL before RCPT' },
  needRcpt: { code: 503, enhanced: '5.5.1', text: 'Need RCPT before DATA' },
  nestedMail: { code: 503, enhanced: '5.5.1', text: 'Sender already specified' },
  bdatMixed: { code: 503, enhanced: '5.5.1', text: 'DATA not allowed after BDAT' },
  badParameter: {
    code: 555,
    enhanced: '5.5.4',
    text: 'MAIL FROM/RCPT TO parameters not recognized or not implemented',
  },
  alreadyTls: { code: 503, enhanced: '5.5.1', text: 'TLS already active' },
  // 5xx content and policy
  bareLineEnding: {
    code: 550,
    enhanced: '5.6.11',
    text: 'Bare CR or LF not allowed, use CRLF line endings',
  },
  bareLineEndingCommand: { code: 500, enhanced: '5.5.2', text: 'Bare CR or LF not allowed in commands' },
  textLineTooLong: { code: 550, enhanced: '5.6.0', text: 'Message line longer than 1000 octets' },
  messageTooBig: { code: 552, enhanced: '5.3.4', text: 'Message size exceeds fixed maximum message size' },
  messageTooBigDeclared: {
    code: 552,
    enhanced: '5.3.4',
    text: 'Declared message size exceeds fixed maximum message size',
  },
  needUtf8: { code: 553, enhanced: '5.6.7', text: 'SMTPUTF8 required for non-ASCII addresses' },
  badRecipientAddress: { code: 553, enhanced: '5.1.3', text: 'Recipient address syntax not accepted' },
  noSuchUser: { code: 550, enhanced: '5.1.1', text: 'No such user here' },
  /** The user's mailbox quota has no room for the message (RFC 3463 X.2.2; local delivery's DSN). */
  mailboxFull: { code: 552, enhanced: '5.2.2', text: 'Mailbox full' },
  relayDenied: { code: 554, enhanced: '5.7.1', text: 'Relay access denied' },
  needTls: { code: 530, enhanced: '5.7.0', text: 'Must issue a STARTTLS command first' },
  /** A DNS blocklist names the client (policy/filters/dnsbl.ts adds which client and zone). */
  clientBlocked: { code: 554, enhanced: '5.7.1', text: 'Service unavailable; client blocked' },
  /** Greylisting (RFC 6647): a first attempt from this client, sender and recipient. */
  greylisted: { code: 451, enhanced: '4.7.1', text: 'Greylisted, please try again later' },
  /** A domain of the message (MAIL FROM, HELO, a link) is on a domain block list. */
  domainBlocked: { code: 554, enhanced: '5.7.1', text: 'Service unavailable; domain listed' },
  /** A spam filter (rspamd, SpamAssassin) refused the message (the text gives its score or words). */
  spamRejected: { code: 554, enhanced: '5.7.1', text: 'Message rejected as spam' },
  /** The virus scanner found something (the text names it). */
  virusFound: { code: 554, enhanced: '5.7.1', text: 'Message refused: virus found' },
  /** A filter (a milter's SMFIR_REJECT) refused, without a reply of its own. */
  filterRejected: { code: 550, enhanced: '5.7.1', text: 'Command rejected' },
  /** An inbound filter failed or took too long and its failure mode is tempfail. */
  filterTempfail: { code: 451, enhanced: '4.7.1', text: 'Service temporarily unavailable; try again later' },
  /** RFC 8689 §4.1: REQUIRETLS is offered only over TLS. */
  requireTlsNeedsTls: { code: 530, enhanced: '5.7.10', text: 'REQUIRETLS needs a TLS session' },
  authRequired: { code: 530, enhanced: '5.7.0', text: 'Authentication required' },
  /** BURL (RFC 4468 §6): the URL named nothing this user may submit (bad token, gone, not submit+). */
  burlFailed: { code: 554, enhanced: '5.6.6', text: 'IMAP URL resolution failed' },
  authFailed: { code: 535, enhanced: '5.7.8', text: 'Authentication credentials invalid' },
  authCancelled: { code: 501, enhanced: '5.7.0', text: 'Authentication cancelled' },
  authBadBase64: { code: 501, enhanced: '5.5.2', text: 'Cannot Base64-decode client response' },
  authMalformed: { code: 501, enhanced: '5.5.2', text: 'Malformed authentication response' },
  authMechanismTooWeak: { code: 534, enhanced: '5.7.9', text: 'Authentication mechanism is too weak' },
  authUnknownMechanism: { code: 504, enhanced: '5.5.4', text: 'Unrecognized authentication type' },
  authNeedsEncryption: {
    code: 538,
    enhanced: '5.7.11',
    text: 'Encryption required for requested authentication mechanism',
  },
  authAlreadyDone: { code: 503, enhanced: '5.5.1', text: 'Already authenticated' },
  authInTransaction: { code: 503, enhanced: '5.5.1', text: 'AUTH not permitted during a mail transaction' },
  authNotAvailable: { code: 503, enhanced: '5.5.1', text: 'Authentication not enabled' },
  authLineTooLong: { code: 500, enhanced: '5.5.6', text: 'Authentication exchange line is too long' },
  dmarcReject: { code: 550, enhanced: '5.7.1', text: "Rejected by the sender domain's DMARC policy" },
  senderNotOwned: { code: 553, enhanced: '5.7.1', text: 'Sender address not owned by authenticated user' },
  transactionFailed: { code: 554, enhanced: '5.0.0', text: 'Transaction failed' },
  noValidRecipients: { code: 554, enhanced: '5.5.1', text: 'No valid recipients' },
  binaryNeedsBdat: { code: 503, enhanced: '5.5.1', text: 'BODY=BINARYMIME requires BDAT' },
} as const satisfies Record<string, Reply>;

export type ReplyName = keyof typeof Replies;

/** The one error type that crosses into the session: it knows its reply. Unknown errors map to 451 4.3.0. */
export class ReplyError extends Error {
  readonly reply: Reply;
  constructor(reply: Reply, options?: { cause?: unknown }) {
    super(`${reply.code} ${reply.enhanced} ${reply.text}`, options);
    this.name = 'ReplyError';
    this.reply = reply;
  }
}

/** Map anything thrown to a reply: ReplyError keeps its own, the rest is a temporary local error. */
export function replyFor(err: unknown): Reply {
  if (err instanceof ReplyError) return err.reply;
  return Replies.localError;
}

/** A reply with a different text (e.g. the EHLO greeting line or a queue id); keeps code and enhanced code. */
export function withText(reply: Reply, text: string): Reply {
  return { code: reply.code, enhanced: reply.enhanced, text };
}

/**
 * Wire form of a reply, CRLF-terminated. Multiline replies use "code-" on all but the last line
 * (RFC 5321 §4.2.1). Enhanced codes go on every line when enabled (RFC 2034 §4).
 */
export function formatReply(reply: Reply, enhanced: boolean, extraLines: readonly string[] = []): string {
  const lines = [reply.text, ...extraLines];
  const prefix = enhanced && reply.enhanced !== '' ? `${reply.enhanced} ` : '';
  return lines
    .map((line, i) => `${reply.code}${i === lines.length - 1 ? ' ' : '-'}${prefix}${line}\r\n`)
    .join('');
}
