// Who is asking, for every admin API request: an API token (`Authorization: Bearer tern_…`, from
// `tern admin token`) or the page's login session (an HttpOnly, SameSite=Strict cookie). Logins are
// rate-limited by the same AuthGuard as SMTP AUTH, IMAP and POP3 (per client IP and per account), and
// every state change made with a cookie must carry the session's CSRF token in X-CSRF-Token (a token in
// a header no other site can set; SameSite=Strict is the second lock). Bearer requests need no CSRF
// token: a browser never adds that header on its own.
// Deliberately NOT here: account storage (directory/admin-accounts.ts), routes' own rules.

import { timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Events } from '../core/events.ts';
import type { Logger } from '../core/ports.ts';
import type { SqliteAdminAccounts } from '../directory/admin-accounts.ts';
import { dummyVerify, verifyPassword } from '../directory/password.ts';
import type { AuthLimits } from '../policy/auth-guard.ts';
import { HttpProblem } from './problem.ts';

export const SESSION_COOKIE = 'tern_admin';

export interface Principal {
  readonly name: string;
  readonly via: 'session' | 'token';
  /** The session's id (cookie value) and CSRF token; absent for a bearer token. */
  readonly session?: { readonly id: string; readonly csrf: string };
}

export interface AdminAuthDeps {
  readonly accounts: SqliteAdminAccounts;
  /** The AuthGuard in force (a reload may replace it). */
  readonly guard: () => AuthLimits;
  readonly sessionIdleMs: () => number;
  readonly logger: Logger;
  readonly onLogin?: (ok: boolean) => void;
}

/** The value of one cookie in a Cookie header (RFC 6265 §5.4), or null. */
export function cookieValue(header: string | undefined, name: string): string | null {
  if (header === undefined) return null;
  for (const pair of header.split(';')) {
    const eq = pair.indexOf('=');
    if (eq < 0) continue;
    if (pair.slice(0, eq).trim() === name) return pair.slice(eq + 1).trim();
  }
  return null;
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export class AdminAuth {
  readonly #deps: AdminAuthDeps;
  /** A request's principal, once checked (the onRequest hook checks before any validation). */
  readonly #checked = new WeakMap<FastifyRequest, Principal>();

  constructor(deps: AdminAuthDeps) {
    this.#deps = deps;
  }

  /** The principal of a request, or null when it carries no valid credentials. */
  principal(request: FastifyRequest): Principal | null {
    const auth = request.headers.authorization;
    if (auth !== undefined) {
      const m = /^Bearer\s+(\S+)$/i.exec(auth);
      const name = m === null ? null : this.#deps.accounts.verifyToken(m[1]!);
      if (name === null)
        throw new HttpProblem(401, 'bad-token', 'the bearer token is not valid', this.#challenge());
      return { name, via: 'token' };
    }
    const id = cookieValue(request.headers.cookie, SESSION_COOKIE);
    if (id === null || id === '') return null;
    const session = this.#deps.accounts.session(id, this.#deps.sessionIdleMs());
    return session === null
      ? null
      : { name: session.name, via: 'session', session: { id, csrf: session.csrf } };
  }

  #challenge(): { headers: Record<string, string> } {
    return { headers: { 'WWW-Authenticate': 'Bearer realm="tern-admin"' } };
  }

  /** The principal, or 401; for a state change with a cookie, the CSRF token too (403 without it). */
  require(request: FastifyRequest): Principal {
    const known = this.#checked.get(request);
    if (known !== undefined) return known;
    const p = this.principal(request);
    if (p === null)
      throw new HttpProblem(401, 'login-required', 'log in, or send an API token', this.#challenge());
    if (p.session !== undefined && !SAFE_METHODS.has(request.method)) {
      const sent = request.headers['x-csrf-token'];
      if (typeof sent !== 'string' || !sameSecret(sent, p.session.csrf)) {
        this.#deps.logger.warn(Events.adminRefused, {
          ip: request.ip,
          admin: p.name,
          reason: 'csrf',
          method: request.method,
          path: request.url,
        });
        throw new HttpProblem(
          403,
          'csrf',
          'the X-CSRF-Token header is missing or does not match the session',
        );
      }
    }
    return p;
  }

  /** POST /api/login: the cookie and the session's CSRF token, or 401/429. */
  async login(
    request: FastifyRequest,
    reply: FastifyReply,
    name: string,
    password: string,
    secure: boolean,
  ): Promise<{ name: string; csrf: string }> {
    const ip = request.ip;
    const account = `admin:${name.normalize('NFC')}`;
    const guard = this.#deps.guard();
    const lock = await guard.check(ip, account);
    if (lock.locked) {
      const retry = Math.max(1, Math.ceil((lock.untilMs - Date.now()) / 1000));
      this.#deps.logger.warn(Events.adminLoginFailed, { ip, admin: name, reason: 'locked', by: lock.by });
      this.#deps.onLogin?.(false);
      throw new HttpProblem(429, 'locked', 'too many failed logins: try again later', {
        headers: { 'Retry-After': String(retry) },
      });
    }
    const stored = this.#deps.accounts.passwordHash(name.normalize('NFC'));
    const ok = stored === null ? await dummyVerify(password) : await verifyPassword(password, stored);
    if (!ok) {
      await guard.recordFailure(ip, account);
      this.#deps.logger.warn(Events.adminLoginFailed, { ip, admin: name, reason: 'credentials' });
      this.#deps.onLogin?.(false);
      throw new HttpProblem(401, 'bad-credentials', 'wrong name or password');
    }
    await guard.recordSuccess(ip);
    const normalized = name.normalize('NFC');
    const session = this.#deps.accounts.createSession(normalized, this.#deps.sessionIdleMs());
    reply.header('Set-Cookie', this.#cookie(session.id, secure, null));
    this.#deps.logger.event(Events.adminLogin, { ip, admin: normalized });
    this.#deps.onLogin?.(true);
    return { name: normalized, csrf: session.csrf };
  }

  logout(request: FastifyRequest, reply: FastifyReply, p: Principal, secure: boolean): void {
    if (p.session !== undefined) this.#deps.accounts.endSession(p.session.id);
    reply.header('Set-Cookie', this.#cookie('', secure, 0));
    this.#deps.logger.event(Events.adminLogout, { ip: request.ip, admin: p.name });
  }

  #cookie(value: string, secure: boolean, maxAge: number | null): string {
    const parts = [`${SESSION_COOKIE}=${value}`, 'Path=/', 'HttpOnly', 'SameSite=Strict'];
    if (secure) parts.push('Secure');
    if (maxAge !== null) parts.push(`Max-Age=${maxAge}`);
    return parts.join('; ');
  }
}
