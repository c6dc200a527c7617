// The shape every SASL server mechanism shares (RFC 4422 §3): a small state machine that turns client
// responses into steps. A step is a challenge to send, a credential question for the driver (expressed as
// data, so the mechanism never awaits anything), or the end (success or failure).
// Deliberately NOT here: the SMTP wire form (codec.ts, exchange.ts), credential storage (the directory),
// which mechanisms are offered on a connection (index.ts).

/** The mechanisms this server implements (IANA SASL registry names, upper case). */
export const MECHANISM_NAMES = [
  'SCRAM-SHA-256-PLUS',
  'SCRAM-SHA-256',
  'PLAIN',
  'LOGIN',
  'OAUTHBEARER',
  'XOAUTH2',
  'EXTERNAL',
  'CRAM-MD5',
] as const;

export type MechanismName = (typeof MECHANISM_NAMES)[number];

/** Channel-binding types SCRAM-SHA-256-PLUS accepts: RFC 9266 (TLS 1.3 and 1.2 with EMS) and RFC 5929 (TLS 1.2). */
export type ChannelBindingType = 'tls-exporter' | 'tls-unique';

/** Channel-binding data of the current TLS connection, by type; the driver computes it from the socket. */
export type ChannelBinding = { readonly [T in ChannelBindingType]?: Uint8Array };

/** What a mechanism needs from its connection. Time and randomness are inputs: the protocol layer is pure. */
export interface MechanismContext {
  /** The server's name, used in the CRAM-MD5 challenge. */
  readonly hostname: string;
  /**
   * Present exactly when SCRAM-SHA-256-PLUS is offered on this connection: a SCRAM client that says "y"
   * (it could bind but thinks we cannot) is then facing a downgrade and is refused (RFC 5802 §6).
   */
  readonly channelBinding?: ChannelBinding;
  /** Cryptographically strong random bytes (the driver passes node:crypto's randomBytes). */
  readonly random: (bytes: number) => Uint8Array;
  readonly nowMs: number;
}

/** The question a mechanism cannot answer itself; the driver asks the directory and calls resume(). */
export type VerifyRequest =
  /** PLAIN, LOGIN: check this password. The authzid, if any, was already checked equal to the username. */
  | { readonly kind: 'password'; readonly username: string; readonly password: string }
  /** SCRAM: look up the stored secrets (answer 'scram-secrets'; decoys for unknown users, see scram.ts). */
  | { readonly kind: 'scram'; readonly username: string }
  /** OAUTHBEARER, XOAUTH2: validate the bearer token; `user` is the identity the client claims, if any. */
  | {
      readonly kind: 'token';
      readonly mechanism: 'OAUTHBEARER' | 'XOAUTH2';
      readonly user: string | null;
      readonly token: string;
    }
  /** EXTERNAL: map the TLS client certificate to a user, authorized as `authzid` when one is given. */
  | { readonly kind: 'certificate'; readonly authzid: string | null }
  /** CRAM-MD5: check HMAC-MD5(secret, challenge) === digest (see cramMd5Digest in cram-md5.ts). */
  | { readonly kind: 'cram'; readonly username: string; readonly challenge: string; readonly digest: string };

/** Stored SCRAM-SHA-256 secrets of one user (RFC 5802 §3); the salted password itself is never stored. */
export interface ScramSecrets {
  readonly iterations: number;
  readonly salt: Uint8Array;
  readonly storedKey: Uint8Array;
  readonly serverKey: Uint8Array;
}

/** Error details a failed OAuth token check may return to the client (RFC 7628 §3.2.2). */
export interface OAuthError {
  /** Defaults: "invalid_token" for OAUTHBEARER, "401" for XOAUTH2. */
  readonly status?: string;
  readonly scope?: string;
  readonly openidConfiguration?: string;
}

/** The driver's answer to a VerifyRequest. */
export type VerifyAnswer =
  /** Authenticated (and authorized) as `identity`, the directory's canonical user name. */
  | { readonly kind: 'accept'; readonly identity: string }
  /** The answer to a 'scram' request: the secrets to check the proof against, and who they belong to. */
  | { readonly kind: 'scram-secrets'; readonly identity: string; readonly secrets: ScramSecrets }
  /** Wrong credentials, unknown user, invalid token, certificate not acceptable. */
  | { readonly kind: 'reject'; readonly oauth?: OAuthError }
  /** The directory could not answer now (454 4.7.0). */
  | { readonly kind: 'temporary' };

/** Why a mechanism failed; `detail` in the failure step says more, for the log only. */
export type FailureReason =
  /** The client's message does not follow the mechanism's syntax. */
  | 'malformed'
  /** Wrong password, proof, token or certificate; unknown user. */
  | 'credentials'
  /** The client asked to act as someone else (authzid differs from the authenticated identity). */
  | 'authorization'
  /** Channel-binding data differs, or the client's flags show a downgrade. */
  | 'channel-binding'
  /** The client requires something we do not implement (a SCRAM mandatory extension, a binding type). */
  | 'unsupported'
  /** The driver answered 'temporary'. */
  | 'temporary';

export type Step =
  | { readonly kind: 'challenge'; readonly data: Uint8Array }
  | { readonly kind: 'verify'; readonly request: VerifyRequest }
  /** `final` is "additional data with success" (SCRAM's v=); SMTP sends it as one more 334 (exchange.ts). */
  | { readonly kind: 'success'; readonly identity: string; readonly final?: Uint8Array }
  | { readonly kind: 'failure'; readonly reason: FailureReason; readonly detail: string };

/**
 * One authentication exchange on the server side. Call start() once, then next() after each challenge and
 * resume() after each verify, until success or failure. Bad client input never throws; calling a method
 * out of turn is a driver bug and throws.
 */
export interface Mechanism {
  readonly name: MechanismName;
  start(initialResponse: Uint8Array | null): Step;
  next(response: Uint8Array): Step;
  resume(answer: VerifyAnswer): Step;
}
