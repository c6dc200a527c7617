// Evaluating Sieve tests at run time: what each one compares (header values decoded, addresses and
// their parts, envelope, body texts, date parts, flags, the spam score) and the match against the keys.
// RFC 5228 §5, RFC 5229 §5 (string), RFC 5232 §4 (hasflag), RFC 5173 (body), RFC 5260 (date,
// currentdate, :index), RFC 5490 §3.1 (mailboxexists), RFC 5235 (spamtest, spamtestplus).
// PURE. Deliberately NOT here: the run's state (interpret.ts owns it and lends it as a TestHost).

import { assertNever } from '../../core/assert-never.ts';
import type { BodyTransform, MatchSpec, Test, ZoneSpec } from './ast.ts';
import { dateTextOf, datePart, parseDateTime, parseZone, type ZonedTime } from './date.ts';
import { parseFlags } from './flags.ts';
import { addressPart, addressesOf, decodedValue, fieldsNamed, type Field } from './message.ts';
import type { SieveInput } from './interpret.ts';

/** What a test needs from the run. */
export interface TestHost {
  readonly input: SieveInput;
  readonly fields: readonly Field[];
  expand(text: string): string;
  /** Match and keep the match variables; keys are expanded unless `expanded`. */
  match(spec: MatchSpec, values: readonly string[], keys: readonly string[], expanded?: boolean): boolean;
  /** The texts a body test compares (RFC 5173 §5), or null when the body is not there. */
  bodyTexts(transform: BodyTransform): readonly string[] | null;
  flagsOf(variable: string | null): readonly string[];
}

/**
 * Pigeonhole's scale (ext-spamvirustest-common.c), so both servers agree on a message: the score over
 * the threshold, clamped to 0..1, gives 1..10 (or 0..100 with :percent); "0" means not tested.
 */
export function spamValue(spam: SieveInput['spam'], percent: boolean): string {
  if (!spam || !(spam.threshold > 0) || !Number.isFinite(spam.score)) return '0';
  const ratio = Math.min(Math.max(spam.score / spam.threshold, 0), 1);
  return String(Math.trunc(percent ? ratio * 100 + 0.001 : ratio * 9 + 1.001));
}

function zoneOffset(host: TestHost, zone: ZoneSpec, original: number): number | null {
  switch (zone.kind) {
    case 'local':
      return parseZone(host.input.now.zone) ?? 0;
    case 'original':
      return original;
    case 'zone':
      return parseZone(host.expand(zone.zone));
  }
}

function datePartOf(t: ZonedTime, part: string): string[] {
  const v = datePart(t, part);
  return v === null ? [] : [v];
}

export function evaluateTest(host: TestHost, t: Test): boolean {
  const names = (list: readonly string[]): string[] => list.map((n) => host.expand(n));
  const separators = host.input.subaddressSeparator ?? '+';
  switch (t.kind) {
    case 'true':
      return true;
    case 'false':
      return false;
    case 'not':
      return !evaluateTest(host, t.test);
    case 'allof':
      return t.tests.every((s) => evaluateTest(host, s));
    case 'anyof':
      return t.tests.some((s) => evaluateTest(host, s));
    case 'header': {
      const values = names(t.headers).flatMap((h) => fieldsNamed(host.fields, h, t.index).map(decodedValue));
      return host.match(t.match, values, t.keys);
    }
    case 'address': {
      const values: string[] = [];
      for (const h of names(t.headers)) {
        for (const f of fieldsNamed(host.fields, h, t.index)) {
          for (const a of addressesOf(f.value)) {
            const part = addressPart(a, t.part, separators);
            if (part !== null) values.push(part);
          }
        }
      }
      return host.match(t.match, values, t.keys);
    }
    case 'envelope': {
      const values: string[] = [];
      for (const p of names(t.parts)) {
        const lower = p.toLowerCase();
        const address =
          lower === 'from' ? host.input.envelope.from : lower === 'to' ? host.input.envelope.to : null;
        if (address === null) continue;
        // The null sender has no parts but the empty whole (RFC 5228 §5.4).
        if (address === '') {
          if (t.part === 'all') values.push('');
          continue;
        }
        const part = addressPart(address, t.part, separators);
        if (part !== null) values.push(part);
      }
      return host.match(t.match, values, t.keys);
    }
    case 'exists':
      return names(t.headers).every((h) => fieldsNamed(host.fields, h, null).length > 0);
    case 'size':
      return t.over ? host.input.sizeBytes > t.limit : host.input.sizeBytes < t.limit;
    case 'string': {
      const sources = names(t.sources);
      // RFC 5229 §5: :count counts the strings that are not empty.
      return host.match(
        t.match,
        t.match.type.kind === 'count' ? sources.filter((s) => s !== '') : sources,
        t.keys,
      );
    }
    case 'hasflag': {
      const flags =
        t.variables === null
          ? host.flagsOf(null)
          : names(t.variables).flatMap((v) => host.flagsOf(v.toLowerCase()));
      const keys = t.flags.flatMap((k) => host.expand(k).split(/[ \t\r\n]+/)).filter((k) => k !== '');
      return host.match(t.match, parseFlags(flags), keys, true);
    }
    case 'body': {
      const transform =
        t.transform.kind === 'content'
          ? { kind: 'content' as const, types: names(t.transform.types) }
          : t.transform;
      const texts = host.bodyTexts(transform);
      return texts !== null && host.match(t.match, texts, t.keys);
    }
    case 'date': {
      const header = host.expand(t.header);
      const field = fieldsNamed(host.fields, header, t.index ?? { index: 1, last: false })[0];
      const parsed = field ? parseDateTime(dateTextOf(header, field.value)) : null;
      if (!parsed) return host.match(t.match, [], t.keys);
      const offset = zoneOffset(host, t.zone, parsed.offsetMinutes);
      if (offset === null) return false;
      const values = datePartOf({ epochMs: parsed.epochMs, offsetMinutes: offset }, host.expand(t.datePart));
      return host.match(t.match, values, t.keys);
    }
    case 'currentdate': {
      const offset = zoneOffset(host, t.zone, 0);
      if (offset === null) return false;
      const values = datePartOf(
        { epochMs: host.input.now.epochMs, offsetMinutes: offset },
        host.expand(t.datePart),
      );
      return host.match(t.match, values, t.keys);
    }
    case 'mailboxexists':
      return names(t.mailboxes).every(
        (m) => host.input.mailboxes.has(m) || (m.toUpperCase() === 'INBOX' && hasInbox(host)),
      );
    case 'spamtest':
      return host.match(t.match, [spamValue(host.input.spam, t.percent)], [t.value]);
    default:
      return assertNever(t);
  }
}

function hasInbox(host: TestHost): boolean {
  for (const m of host.input.mailboxes) if (m.toUpperCase() === 'INBOX') return true;
  return false;
}
