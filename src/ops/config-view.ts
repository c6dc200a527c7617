// The effective configuration as JSON for people to read (GET /api/config, the admin page): every key of
// the snapshot in force, Maps as objects, and every secret (passwords, shared secrets) replaced by
// "[redacted]" so the page and its screenshots never show one.

import type { Config } from '../config/config.ts';

export const REDACTED = '[redacted]';

const SECRET_KEY = /secret|password|passwd/i;

function view(value: unknown, key: string): unknown {
  if (typeof value === 'string' && SECRET_KEY.test(key)) return REDACTED;
  if (value instanceof Map) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of value as Map<unknown, unknown>) out[String(k)] = view(v, String(k));
    return out;
  }
  if (Array.isArray(value)) return value.map((v) => view(v, key));
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = view(v, k);
    return out;
  }
  return value;
}

export function configView(config: Config): Record<string, unknown> {
  return view(config, '') as Record<string, unknown>;
}
