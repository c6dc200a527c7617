// Answers the questions SASL mechanisms ask (src/protocol/sasl): passwords against scrypt hashes, SCRAM
// secrets, bearer tokens, TLS client certificates. Shared by all connections.
// SECURITY: an unknown user and a wrong password must look the same to the client, in reply and in time:
// unknown users cost one dummy scrypt verification (PLAIN/LOGIN) or get stable decoy SCRAM secrets.
// Deliberately NOT here: counting failures and lockouts (policy/auth-guard.ts, used by the driver).

import { createHash, randomBytes, type X509Certificate } from 'node:crypto';
import { dummyVerify, verifyPassword } from '../directory/password.ts';
import type { Directory } from '../directory/directory.ts';
import type { VerifyAnswer, VerifyRequest } from '../protocol/sasl/mechanism.ts';
import { decoyScramSecrets, parseScramSecrets } from '../protocol/sasl/scram-secrets.ts';

/** A bearer-token check (src/net/token-verifier.ts implements it); null when OAuth is not configured. */
export interface TokenCheck {
  verify(
    token: string,
    claimedUser: string | null,
  ): Promise<{ ok: true; username: string } | { ok: false; reason: string; temporary: boolean }>;
}

/** What the TLS layer knows about the client's certificate. */
export interface PeerCertificate {
  readonly x509: X509Certificate;
  /** Verified against tls.client_ca. */
  readonly authorized: boolean;
}

export interface VerifyContext {
  readonly peer: PeerCertificate | null;
}

export interface VerifyResult {
  readonly answer: VerifyAnswer;
  /** The account the attempt named (for per-account failure counting), when one was named. */
  readonly account: string | null;
  /** Log detail (never sent). */
  readonly detail: string;
}

/**
 * Catcher mode's authenticator (docs/catch.md): any name with any password (PLAIN, LOGIN) is that name;
 * mechanisms that need a secret (SCRAM, tokens, certificates) are refused. Never used outside catch mode.
 */
export const acceptAnyCredentials: Pick<Authenticator, 'verify'> = {
  verify(request: VerifyRequest): Promise<VerifyResult> {
    if (request.kind !== 'password')
      return Promise.resolve({
        answer: { kind: 'reject' },
        account: null,
        detail: 'catch mode takes passwords only',
      });
    const account = normalizeUser(request.username);
    return Promise.resolve({ answer: { kind: 'accept', identity: account }, account, detail: 'catch mode' });
  },
};

export class Authenticator {
  private readonly directory: Directory;
  private readonly tokens: TokenCheck | null;
  /** Key for decoy SCRAM salts: random per process, so decoys cannot be told from real salts offline. */
  private readonly decoyKey = randomBytes(32);

  constructor(directory: Directory, tokens: TokenCheck | null) {
    this.directory = directory;
    this.tokens = tokens;
  }

  async verify(request: VerifyRequest, ctx: VerifyContext): Promise<VerifyResult> {
    switch (request.kind) {
      case 'password': {
        const account = normalizeUser(request.username);
        const creds = await this.directory.getCredentials(account);
        if (creds?.passwordHash == null) {
          await dummyVerify(request.password);
          return { answer: { kind: 'reject' }, account, detail: 'unknown user or no password' };
        }
        const ok = await verifyPassword(request.password, creds.passwordHash);
        return ok
          ? { answer: { kind: 'accept', identity: account }, account, detail: 'password ok' }
          : { answer: { kind: 'reject' }, account, detail: 'wrong password' };
      }
      case 'scram': {
        const account = normalizeUser(request.username);
        const creds = await this.directory.getCredentials(account);
        const parsed = creds?.scram ? parseScramSecrets(creds.scram) : null;
        if (parsed?.ok) {
          return {
            answer: { kind: 'scram-secrets', identity: account, secrets: parsed.value },
            account,
            detail: 'scram secrets',
          };
        }
        // Unknown user (or one without SCRAM secrets): the exchange continues with decoys and fails at the proof.
        return {
          answer: {
            kind: 'scram-secrets',
            identity: account,
            secrets: decoyScramSecrets(this.decoyKey, account),
          },
          account,
          detail: 'scram decoy',
        };
      }
      case 'token': {
        const claimed = request.user === null ? null : normalizeUser(request.user);
        if (!this.tokens)
          return { answer: { kind: 'reject' }, account: claimed, detail: 'oauth not configured' };
        const verdict = await this.tokens.verify(request.token, claimed);
        if (!verdict.ok) {
          return verdict.temporary
            ? { answer: { kind: 'temporary' }, account: claimed, detail: verdict.reason }
            : {
                answer: { kind: 'reject', oauth: { status: 'invalid_token' } },
                account: claimed,
                detail: verdict.reason,
              };
        }
        const account = normalizeUser(verdict.username);
        const users = await this.directory.listUsers();
        if (!users.some((u) => u.address === account)) {
          return {
            answer: { kind: 'reject', oauth: { status: 'invalid_token' } },
            account,
            detail: 'token for an unknown user',
          };
        }
        return { answer: { kind: 'accept', identity: account }, account, detail: 'token ok' };
      }
      case 'certificate': {
        const authzid = request.authzid === null ? null : normalizeUser(request.authzid);
        const user = await this.certificateUser(ctx.peer);
        if (user === null)
          return { answer: { kind: 'reject' }, account: authzid, detail: 'no acceptable client certificate' };
        if (authzid !== null && authzid !== user) {
          return {
            answer: { kind: 'reject' },
            account: authzid,
            detail: `certificate is ${user}, not ${authzid}`,
          };
        }
        return { answer: { kind: 'accept', identity: user }, account: user, detail: 'client certificate' };
      }
      case 'cram':
        // XXX: CRAM-MD5 needs a plaintext-equivalent secret; Tern stores none, so it cannot succeed.
        return {
          answer: { kind: 'reject' },
          account: normalizeUser(request.username),
          detail: 'CRAM-MD5 has no stored secret',
        };
      default:
        return request satisfies never;
    }
  }

  /** A certificate maps to a user by its SHA-256 fingerprint, or — when CA-verified — by its e-mail name. */
  private async certificateUser(peer: PeerCertificate | null): Promise<string | null> {
    if (!peer) return null;
    const fingerprint = createHash('sha256').update(peer.x509.raw).digest('hex');
    const mapped = await this.directory.findUserByCertificate(fingerprint);
    if (mapped !== null) return mapped;
    if (!peer.authorized) return null;
    const emails = certificateEmails(peer.x509);
    const users = new Set((await this.directory.listUsers()).map((u) => u.address));
    return emails.map(normalizeUser).find((e) => users.has(e)) ?? null;
  }
}

export function normalizeUser(name: string): string {
  return name.normalize('NFC').trim().toLowerCase();
}

/** rfc822Name SANs, then the subject's emailAddress. */
function certificateEmails(cert: X509Certificate): string[] {
  const out: string[] = [];
  for (const part of (cert.subjectAltName ?? '').split(/,\s*/)) {
    if (part.startsWith('email:')) out.push(part.slice(6));
  }
  const m = /(?:^|\n)emailAddress=([^\n]+)/.exec(cert.subject);
  if (m) out.push(m[1]!);
  return out;
}
