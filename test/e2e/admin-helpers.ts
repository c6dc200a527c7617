// Helpers for the admin listener's end-to-end tests: an HTTP client that keeps the login cookie and
// sends the CSRF token as the page does, admin accounts made with the real `tern admin` command, and a
// Tern with an admin listener and a relay that never answers (so remote mail stays deferred).

import assert from 'node:assert/strict';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequestRaw } from 'node:https';
import type { Tern, TernOptions } from './harness.ts';
import { closedPort, startTern } from './harness.ts';

export interface HttpResult {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  /** The body as JSON when it is JSON, else null. */
  readonly json: unknown;
}

export class AdminClient {
  readonly base: string;
  cookie: string | null = null;
  csrf: string | null = null;
  token: string | null = null;

  constructor(port: number) {
    this.base = `http://127.0.0.1:${port}`;
  }

  async request(
    method: string,
    path: string,
    options: { body?: unknown; headers?: Record<string, string>; csrf?: boolean; auth?: boolean } = {},
  ): Promise<HttpResult> {
    const headers: Record<string, string> = { ...options.headers };
    if (options.auth !== false) {
      if (this.token !== null) headers['Authorization'] = `Bearer ${this.token}`;
      if (this.cookie !== null) headers['Cookie'] = this.cookie;
      if (options.csrf !== false && this.csrf !== null && method !== 'GET')
        headers['X-CSRF-Token'] = this.csrf;
    }
    if (options.body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(`${this.base}${path}`, {
      method,
      headers,
      redirect: 'manual',
      ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
    });
    const text = await res.text();
    const type = res.headers.get('content-type') ?? '';
    return {
      status: res.status,
      headers: res.headers,
      text,
      json: type.includes('json') ? (JSON.parse(text) as unknown) : null,
    };
  }

  get(path: string): Promise<HttpResult> {
    return this.request('GET', path);
  }

  post(path: string, body: unknown = {}): Promise<HttpResult> {
    return this.request('POST', path, { body });
  }

  /** Log in through POST /api/login and keep the cookie and CSRF token. */
  async login(name: string, password: string): Promise<HttpResult> {
    const r = await this.request('POST', '/api/login', { body: { name, password }, auth: false });
    if (r.status === 200) {
      const setCookie = r.headers.get('set-cookie') ?? '';
      this.cookie = setCookie.split(';')[0] ?? null;
      this.csrf = (r.json as { csrf: string }).csrf;
    }
    return r;
  }
}

/** A problem details answer (RFC 9457) with this status. */
export function assertProblem(r: HttpResult, status: number, type?: RegExp): void {
  assert.equal(r.status, status, `expected ${status}, got ${r.status}: ${r.text}`);
  assert.match(r.headers.get('content-type') ?? '', /^application\/problem\+json/);
  const p = r.json as { type: string; title: string; status: number; detail?: string };
  assert.equal(p.status, status);
  assert.equal(typeof p.title, 'string');
  if (type !== undefined) assert.match(p.type, type);
}

/** Add an admin with the real CLI (`tern admin add NAME --password-stdin`). */
export async function addAdmin(tern: Tern, name: string, password: string): Promise<void> {
  const r = await tern.tern(['admin', 'add', name, '--password-stdin'], `${password}\n`);
  assert.equal(r.code, 0, r.stderr);
}

/** A new API token from `tern admin token NAME`. */
export async function newToken(tern: Tern, name: string): Promise<string> {
  const r = await tern.tern(['admin', 'token', name]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim();
}

/** Tern with an admin listener; remote mail goes to a relay on a closed port and stays deferred. */
export async function startAdminTern(opts: TernOptions = {}): Promise<Tern> {
  const relay = await closedPort();
  return startTern({
    admin: opts.admin ?? true,
    ...opts,
    tables: {
      outbound: { relay: `[127.0.0.1]:${relay}`, connect_timeout_seconds: 2 },
      queue: { retry_min_seconds: 600 },
      ...opts.tables,
    },
  });
}

/** A GET with exactly these headers (Host included), through node:http. */
export function rawGet(
  port: number,
  path: string,
  headers: Record<string, string>,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port, path, method: 'GET', headers, setHost: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** One HTTPS request to the admin listener (its certificate is the self-signed one: not checked). */
export function httpsRequest(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string,
): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequestRaw(
      { host: '127.0.0.1', port, path, method, headers, rejectUnauthorized: false },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
