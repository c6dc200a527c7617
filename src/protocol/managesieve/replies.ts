// ManageSieve responses: the one catalogue of status lines (RFC 5804 §1.2), with the response codes of
// §1.3 where a client acts on them (NONEXISTENT, ALREADYEXISTS, ACTIVE, QUOTA/MAXSCRIPTS, QUOTA/MAXSIZE,
// TRYLATER, ENCRYPT-NEEDED, WARNINGS, TAG). Texts are generic on purpose: the specifics go to the log.
// Two kinds of text come from elsewhere and are built by the functions at the end: a Sieve validator's
// message about the client's own script, and the tag NOOP echoes (RFC 5804 §2.13 requires the echo).
// Pure. Deliberately NOT here: wire formatting (format.ts), the SASL failures' mapping (auth-framing.ts).

import type { SieveResponse, SieveResponseCode } from './format.ts';

const ok = (text: string, code: SieveResponseCode | null = null): SieveResponse => ({
  status: 'OK',
  code,
  text,
});
const no = (text: string, code: SieveResponseCode | null = null): SieveResponse => ({
  status: 'NO',
  code,
  text,
});
const bye = (text: string): SieveResponse => ({ status: 'BYE', code: null, text });

export const SieveReplies = {
  // Connection
  greeting: ok('Tern ManageSieve ready'),
  capabilities: ok('Capability completed'),
  /** RFC 5804 §2.2: the capabilities are sent again once TLS is up, ending with this OK. */
  tlsCapabilities: ok('TLS negotiation successful'),
  logout: ok('Logout completed'),
  noop: ok('Done'),
  tooManyErrors: bye('Too many errors, closing connection'),
  tooManyCommandsBeforeAuth: bye('Too many commands without authenticating, closing connection'),
  /** A literal so large (or so malformed) that reading past it is not worth it. */
  literalTooLarge: bye('Literal too large, closing connection'),
  tooManyAuthFailures: bye('Too many failed authentications, closing connection'),
  idleTimeout: bye('Idle for too long, closing connection'),
  shuttingDown: bye('Server shutting down'),
  tooManyConnections: bye('Too many connections, try again later'),
  tooManyConnectionsFromIp: bye('Too many connections from your address, try again later'),
  localError: bye('Local error in processing, try again later'),

  // Syntax and sequence
  unknownCommand: no('Unknown command'),
  syntaxError: no('Syntax error in arguments'),
  lineTooLong: no('Command line too long'),
  stringTooLong: no('String too long'),
  notUtf8: no('Command is not valid UTF-8'),
  invalidName: no('Invalid script name'),
  authenticateFirst: no('Authenticate first'),
  alreadyAuthenticated: no('Already authenticated'),
  notAuthenticated: no('Not authenticated'),
  starttlsAfterAuth: no('STARTTLS is only allowed before authentication'),
  tlsActive: no('TLS is already active'),
  tlsUnavailable: no('TLS not available'),

  // STARTTLS, AUTHENTICATE, UNAUTHENTICATE
  beginTls: ok('Begin TLS negotiation'),
  authSucceeded: ok('Authentication successful'),
  authFailed: no('Authentication failed'),
  authTemporaryFailure: no('Temporary authentication failure, try again later', 'TRYLATER'),
  authLockedOut: no('Too many failed authentications, try again later', 'TRYLATER'),
  authUnknownMechanism: no('Unsupported authentication mechanism'),
  authNeedsTls: no('Encryption required for this authentication mechanism', 'ENCRYPT-NEEDED'),
  authCancelled: no('Authentication cancelled'),
  authMalformed: no('Malformed authentication response'),
  authLineTooLong: no('Authentication response too long'),
  authSyntax: no('Syntax error in AUTHENTICATE arguments'),
  authBadSequence: no('Bad sequence of commands'),
  unauthenticated: ok('Unauthenticate completed'),

  // Scripts
  haveSpace: ok('Putscript would succeed'),
  stored: ok('Script stored'),
  listed: ok('Listscripts completed'),
  activated: ok('Script activated'),
  deactivated: ok('Active script deactivated'),
  got: ok('Getscript completed'),
  deleted: ok('Script deleted'),
  renamed: ok('Script renamed'),
  scriptValid: ok('Script is valid'),
  scriptNotUtf8: no('Script is not valid UTF-8 text'),
  scriptUncheckable: no('Script could not be checked'),
  nonexistent: no('Script does not exist', 'NONEXISTENT'),
  alreadyExists: no('A script with that name already exists', 'ALREADYEXISTS'),
  active: no('Script is active', 'ACTIVE'),
  tooManyScripts: no('Too many scripts', 'QUOTA/MAXSCRIPTS'),
  scriptTooLarge: no('Script is too large', 'QUOTA/MAXSIZE'),
  storeTemporaryFailure: no('Temporary failure, try again later', 'TRYLATER'),
} as const satisfies Record<string, SieveResponse>;

/** NOOP with a string: `OK (TAG "x") "Done"` (RFC 5804 §2.13). */
export function taggedNoop(tag: string): SieveResponse {
  return { ...SieveReplies.noop, code: 'TAG', codeArg: tag };
}

/** PUTSCRIPT / CHECKSCRIPT of an invalid script: the validator's message, e.g. "line 3 column 5: ...". */
export function invalidScript(message: string): SieveResponse {
  return no(message === '' ? 'Invalid script' : message);
}

/** A valid script the validator warned about: OK (WARNINGS) "..." (RFC 5804 §1.3). */
export function withWarnings(reply: SieveResponse, warnings: string): SieveResponse {
  return { ...reply, code: 'WARNINGS', text: warnings };
}
