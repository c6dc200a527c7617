// SASL (RFC 4422) for every protocol that carries it (SMTP AUTH, POP3 AUTH, IMAP AUTHENTICATE): the
// mechanism factory, what each mechanism demands of the connection (TLS, channel binding, a client
// certificate), which ones to offer, and the parsing of the AUTH command's arguments. No registry: the
// caller names the mechanism and passes the context; a switch builds it.
// Pure and protocol-neutral: refusals are reasons, each protocol's framing turns them into its replies.
// Deliberately NOT here: the protocol's rules on when AUTH is allowed (the sessions), the credential
// checks (server/sasl-drive.ts answers VerifyRequests with the directory), configuration.

import { assertNever } from '../../core/assert-never.ts';
import { createCramMd5Mechanism } from './cram-md5.ts';
import { createAuthExchange, type AuthAction, type AuthExchange } from './exchange.ts';
import { createExternalMechanism } from './external.ts';
import { createLoginMechanism } from './login.ts';
import { MECHANISM_NAMES, type Mechanism, type MechanismContext, type MechanismName } from './mechanism.ts';
import { createOAuthBearerMechanism, createXOAuth2Mechanism } from './oauth.ts';
import { createPlainMechanism } from './plain.ts';
import { createScramMechanism } from './scram.ts';

export * from './codec.ts';
export * from './exchange.ts';
export * from './mechanism.ts';
export { cramMd5Digest, verifyCramMd5 } from './cram-md5.ts';
export {
  decoyScramSecrets,
  deriveScramSecrets,
  formatScramSecrets,
  parseScramSecrets,
  MIN_SCRAM_ITERATIONS,
  type ScramSecretsParse,
} from './scram-secrets.ts';
export { saslprep } from './saslprep.ts';

export function createMechanism(name: MechanismName, ctx: MechanismContext): Mechanism {
  switch (name) {
    case 'PLAIN':
      return createPlainMechanism();
    case 'LOGIN':
      return createLoginMechanism();
    case 'SCRAM-SHA-256':
    case 'SCRAM-SHA-256-PLUS':
      return createScramMechanism({
        plus: name === 'SCRAM-SHA-256-PLUS',
        random: ctx.random,
        ...(ctx.channelBinding === undefined ? {} : { channelBinding: ctx.channelBinding }),
      });
    case 'OAUTHBEARER':
      return createOAuthBearerMechanism();
    case 'XOAUTH2':
      return createXOAuth2Mechanism();
    case 'EXTERNAL':
      return createExternalMechanism();
    case 'CRAM-MD5':
      return createCramMd5Mechanism({ hostname: ctx.hostname, random: ctx.random, nowMs: ctx.nowMs });
    default:
      return assertNever(name);
  }
}

export interface MechanismInfo {
  readonly name: MechanismName;
  /** Sends a password or bearer token anyone on the path could read, or binds to TLS: 538 without it. */
  readonly needsTls: boolean;
  readonly needsChannelBinding: boolean;
  readonly needsClientCertificate: boolean;
}

export const MECHANISMS: Readonly<Record<MechanismName, MechanismInfo>> = {
  'SCRAM-SHA-256-PLUS': {
    name: 'SCRAM-SHA-256-PLUS',
    needsTls: true,
    needsChannelBinding: true,
    needsClientCertificate: false,
  },
  'SCRAM-SHA-256': {
    name: 'SCRAM-SHA-256',
    needsTls: false,
    needsChannelBinding: false,
    needsClientCertificate: false,
  },
  PLAIN: { name: 'PLAIN', needsTls: true, needsChannelBinding: false, needsClientCertificate: false },
  LOGIN: { name: 'LOGIN', needsTls: true, needsChannelBinding: false, needsClientCertificate: false },
  OAUTHBEARER: {
    name: 'OAUTHBEARER',
    needsTls: true,
    needsChannelBinding: false,
    needsClientCertificate: false,
  },
  XOAUTH2: { name: 'XOAUTH2', needsTls: true, needsChannelBinding: false, needsClientCertificate: false },
  EXTERNAL: { name: 'EXTERNAL', needsTls: true, needsChannelBinding: false, needsClientCertificate: true },
  // Does not expose the password on the wire; weak for other reasons, hence not in the defaults.
  'CRAM-MD5': {
    name: 'CRAM-MD5',
    needsTls: false,
    needsChannelBinding: false,
    needsClientCertificate: false,
  },
};

/**
 * Enabled when the configuration names none: the password mechanisms. SCRAM needs the user's SCRAM
 * secrets stored beside the password hash (scram-secrets.ts); OAUTHBEARER/XOAUTH2 need a token validator,
 * EXTERNAL client certificates, CRAM-MD5 a plaintext-equivalent secret.
 */
export const DEFAULT_MECHANISMS: readonly MechanismName[] = [
  'SCRAM-SHA-256-PLUS',
  'SCRAM-SHA-256',
  'PLAIN',
  'LOGIN',
];

/** What the connection offers right now. */
export interface ConnectionSecurity {
  readonly tls: boolean;
  /** Channel-binding data can be computed (TLS is up), so SCRAM-SHA-256-PLUS is possible. */
  readonly channelBinding: boolean;
  /** The client presented a certificate that verified. */
  readonly clientCertificate: boolean;
}

export function isMechanismName(name: string): name is MechanismName {
  return (MECHANISM_NAMES as readonly string[]).includes(name);
}

/**
 * Why a mechanism named in AUTH cannot be used: not offered here (SMTP 504, POP3/IMAP -ERR/NO), needs TLS
 * first (SMTP 538, IMAP [PRIVACYREQUIRED]), or the arguments are not AUTH syntax.
 */
export type MechanismRefusal = 'unknown-mechanism' | 'needs-tls' | 'syntax';

/** Why `name` cannot be used on this connection; null when it can. */
export function mechanismRefusal(
  name: MechanismName,
  enabled: readonly MechanismName[],
  connection: ConnectionSecurity,
): MechanismRefusal | null {
  const mechanism = MECHANISMS[name];
  if (!enabled.includes(name)) return 'unknown-mechanism';
  if (mechanism.needsTls && !connection.tls) return 'needs-tls';
  if (mechanism.needsChannelBinding && !connection.channelBinding) return 'unknown-mechanism';
  if (mechanism.needsClientCertificate && !connection.clientCertificate) return 'unknown-mechanism';
  return null;
}

/**
 * What to offer now of the configured mechanisms (strings: configuration may name ones the session
 * just passes through): nothing before TLS unless plaintext AUTH is allowed there (loopback, by option),
 * and never the TLS-bound ones (-PLUS, EXTERNAL) in clear. RFC 4954 §4, RFC 5034 §4, RFC 9051 §6.2.2.
 */
export function offeredMechanisms(
  configured: readonly string[],
  state: { readonly tls: boolean; readonly plaintextAllowed: boolean },
): string[] {
  if (configured.length === 0 || (!state.tls && !state.plaintextAllowed)) return [];
  return state.tls ? [...configured] : configured.filter((m) => !m.endsWith('-PLUS') && m !== 'EXTERNAL');
}

/**
 * The mechanisms to advertise (EHLO AUTH, CAPA SASL, CAPABILITY AUTH=), strongest first. Before TLS the plaintext ones are left out
 * (RFC 4954 §4 and §15: clients must not send passwords in clear; we do not invite them to).
 */
export function advertisedMechanisms(
  enabled: readonly MechanismName[],
  connection: ConnectionSecurity,
): MechanismName[] {
  return MECHANISM_NAMES.filter((name) => mechanismRefusal(name, enabled, connection) === null);
}

export interface AuthArguments {
  /** Upper-cased; may name a mechanism we do not know (then 504). */
  readonly mechanism: string;
  /** The initial response as sent (base64 or "="), or null. */
  readonly initialResponse: string | null;
}

export type AuthArgumentsParse =
  { readonly ok: true; readonly value: AuthArguments } | { readonly ok: false; readonly refusal: 'syntax' };

// RFC 4954 §4 / RFC 4422 §3.1: sasl-mech = 1*20(UPPER-ALPHA / DIGIT / "-" / "_"), case-insensitive on the wire.
const MECHANISM_SYNTAX = /^[A-Za-z0-9_-]{1,20}$/;

/** Parse the text after "AUTH ": `mechanism [SP initial-response]`. */
export function parseAuthArguments(args: string): AuthArgumentsParse {
  const parts = args.split(' ');
  const [mechanism = '', initialResponse, ...extra] = parts;
  if (!MECHANISM_SYNTAX.test(mechanism) || extra.length > 0 || initialResponse === '') {
    return { ok: false, refusal: 'syntax' };
  }
  return {
    ok: true,
    value: { mechanism: mechanism.toUpperCase(), initialResponse: initialResponse ?? null },
  };
}

export interface BeginAuthOptions {
  readonly enabled: readonly MechanismName[];
  readonly connection: ConnectionSecurity;
  readonly context: MechanismContext;
}

export type BeginAuth =
  | { readonly ok: true; readonly exchange: AuthExchange; readonly action: AuthAction }
  | { readonly ok: false; readonly refusal: MechanismRefusal };

/**
 * Everything AUTH's arguments decide, in RFC 4954 order: syntax, mechanism offered here, encryption;
 * then the exchange is created and started with the initial response, if any.
 */
export function beginAuth(args: string, options: BeginAuthOptions): BeginAuth {
  const parsed = parseAuthArguments(args);
  if (!parsed.ok) return parsed;
  const { mechanism: name, initialResponse } = parsed.value;
  if (!isMechanismName(name)) return { ok: false, refusal: 'unknown-mechanism' };
  const refusal = mechanismRefusal(name, options.enabled, options.connection);
  if (refusal !== null) return { ok: false, refusal };
  // A SCRAM client answering "y" is refused as a downgrade only if -PLUS really is on offer (scram.ts),
  // so the binding data reaches the mechanism only then.
  const plusOffered = mechanismRefusal('SCRAM-SHA-256-PLUS', options.enabled, options.connection) === null;
  const { channelBinding, ...rest } = options.context;
  const context = plusOffered && channelBinding !== undefined ? { ...rest, channelBinding } : rest;
  return { ok: true, ...startAuthExchange(name, initialResponse, context) };
}

/**
 * For a session that already parsed AUTH and checked the mechanism is offered: create the exchange and
 * start it. Pass context.channelBinding only where SCRAM-SHA-256-PLUS is advertised on this connection.
 */
export function startAuthExchange(
  name: MechanismName,
  initialResponse: string | null,
  context: MechanismContext,
): { readonly exchange: AuthExchange; readonly action: AuthAction } {
  const exchange = createAuthExchange(createMechanism(name, context));
  return { exchange, action: exchange.begin(initialResponse) };
}
