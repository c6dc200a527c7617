// Talking to the admin API: JSON in and out, the session's CSRF token on every change, RFC 9457
// problems turned into errors that carry their detail.

import type { Problem, SessionInfo } from '../api-types.ts';

let csrf: string | null = null;

export function setCsrf(token: string | null): void {
  csrf = token;
}

export class ApiError extends Error {
  readonly status: number;
  readonly problem: Problem | null;
  constructor(status: number, problem: Problem | null) {
    super(problem?.detail ?? problem?.title ?? `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

/** Called when the API says the login is gone (401): the page shows the login form. */
let onUnauthorized: () => void = () => undefined;
export function whenUnauthorized(fn: () => void): void {
  onUnauthorized = fn;
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && csrf !== null) headers['X-CSRF-Token'] = csrf;
  const res = await fetch(path, {
    method,
    headers,
    credentials: 'same-origin',
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const type = res.headers.get('Content-Type') ?? '';
  const data: unknown = type.includes('json') ? await res.json() : await res.text();
  if (!res.ok) {
    const problem = typeof data === 'object' && data !== null ? (data as Problem) : null;
    if (res.status === 401 && !path.endsWith('/login')) onUnauthorized();
    throw new ApiError(res.status, problem);
  }
  return data as T;
}

export const get = <T>(path: string): Promise<T> => api<T>('GET', path);
export const post = <T>(path: string, body: unknown = {}): Promise<T> => api<T>('POST', path, body);
export const put = <T>(path: string, body: unknown): Promise<T> => api<T>('PUT', path, body);
export const del = <T>(path: string): Promise<T> => api<T>('DELETE', path);

export async function session(): Promise<SessionInfo | null> {
  try {
    const s = await get<SessionInfo>('/api/session');
    setCsrf(s.csrf);
    return s;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return null;
    throw err;
  }
}

/** A query string from the fields that have a value. */
export function query(
  params: Readonly<Record<string, string | number | boolean | undefined | null>>,
): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params))
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s === '' ? '' : `?${s}`;
}
