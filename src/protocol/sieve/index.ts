// The Sieve module's public face (RFC 5228 and the extensions in SIEVE_EXTENSIONS): parseSieve for
// ManageSieve uploads and delivery, runSieve at delivery, and the vacation helpers. PURE throughout.
// Deliberately NOT here: storing scripts, ManageSieve, carrying out actions (callers in server/ and
// delivery/).

export type { SieveAction } from './actions.ts';
export type { SieveError, SievePosition, SieveScript } from './ast.ts';
export {
  runSieve,
  type RunOptions,
  type SieveInput,
  type SieveOutcome,
  type VacationLimits,
} from './interpret.ts';
export {
  vacationAllowed,
  vacationReply,
  type ReplyOptions,
  type VacationAction,
  type VacationVerdict,
} from './vacation.ts';
export { SIEVE_EXTENSIONS, parseSieve, type ParseOptions, type ParseResult } from './validate.ts';
