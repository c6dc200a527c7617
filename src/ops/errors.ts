// The one error type of the operations shared by the CLI and the admin API (src/ops): written for the
// operator, with a kind the CLI turns into exit 1 and the API into an HTTP status (404, 409, 422).

export type OpErrorKind = 'not-found' | 'conflict' | 'invalid';

export class OpError extends Error {
  readonly kind: OpErrorKind;
  constructor(kind: OpErrorKind, message: string) {
    super(message);
    this.name = 'OpError';
    this.kind = kind;
  }
}
