// Errors of the admin API as RFC 9457 problem details (application/problem+json): one error type the
// routes throw, one handler (server.ts) that writes it. A problem's `detail` is written for the operator;
// internal errors say only that something failed (the log has the cause).

import type { OpError } from '../ops/errors.ts';

export interface Problem {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly detail?: string;
  readonly instance?: string;
  /** Per-field validation errors (400). */
  readonly errors?: readonly { readonly field: string; readonly message: string }[];
}

/** `type` URIs name the problem kinds (RFC 9457 §3.1.1); they resolve to docs/admin.md's list. */
const TYPE_BASE = 'https://tern.invalid/problems/';

const TITLES: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  421: 'Misdirected Request',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

export class HttpProblem extends Error {
  readonly status: number;
  readonly kind: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly errors: Problem['errors'];
  constructor(
    status: number,
    kind: string,
    detail: string,
    options: { headers?: Record<string, string>; errors?: Problem['errors'] } = {},
  ) {
    super(detail);
    this.name = 'HttpProblem';
    this.status = status;
    this.kind = kind;
    this.headers = options.headers ?? {};
    this.errors = options.errors;
  }
}

export function problemOf(
  status: number,
  kind: string,
  detail: string | undefined,
  instance: string,
): Problem {
  return {
    type: `${TYPE_BASE}${kind}`,
    title: TITLES[status] ?? 'Error',
    status,
    ...(detail === undefined ? {} : { detail }),
    instance,
  };
}

const OP_STATUS = { 'not-found': 404, conflict: 409, invalid: 422 } as const;

/** OpError (src/ops) as the HTTP problem it is. */
export function fromOpError(err: OpError): HttpProblem {
  return new HttpProblem(OP_STATUS[err.kind], err.kind, err.message);
}
