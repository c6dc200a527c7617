// Sieve at final delivery (RFC 5228): the user's active script (data/sieve.sqlite, uploaded over
// ManageSieve) run against one queued message for one user, its actions turned into a plan the worker
// carries out: the copies to store (mailbox, IMAP flags, :create), the addresses to redirect to, a reject
// reason, a vacation reply already cleared by RFC 5230's rules and memory, and the editheader edits of
// the stored copies. A script that fails to parse or run keeps the message (RFC 5228 §2.10.6): a filter
// never loses mail. Everything the language needs is given as data (protocol/sieve is pure).
// Deliberately NOT here: the language (protocol/sieve), storing and queueing (worker.ts), who has a
// script (the store).

import { randomBytes } from 'node:crypto';
import type { Config } from '../config/config.ts';
import { formatRfc5322Date } from '../core/date.ts';
import type { Envelope } from '../core/envelope.ts';
import { Events } from '../core/events.ts';
import type { Logger } from '../core/ports.ts';
import { applyFieldEdits, splitFields, type FieldEdit } from '../protocol/header-edit.ts';
import { parseHeaderBlock } from '../protocol/headers.ts';
import {
  parseSieve,
  runSieve,
  vacationAllowed,
  vacationReply,
  type SieveInput,
  type SieveScript,
} from '../protocol/sieve/index.ts';
import type { SieveScriptStore } from '../store/sieve-scripts.ts';

/** A body test reads at most this much of the message (the rest is as if absent). */
export const SIEVE_BODY_MAX_BYTES = 1024 * 1024;

/** Header edits rewrite a stored copy in memory: messages larger than this keep their header as it is. */
const MAX_EDITED_MESSAGE_BYTES = 16 * 1024 * 1024;

/** The spam threshold spamtest compares X-Tern-Filter's score with (SpamAssassin's required_score). */
const SPAM_THRESHOLD = 5;

export interface SieveStore {
  readonly mailbox: string;
  readonly flags: readonly string[];
  /** RFC 5490 :create: make the mailbox when it is missing. */
  readonly create: boolean;
}

export interface SievePlan {
  /** Copies to store; empty with no redirect is a discard. */
  readonly stores: readonly SieveStore[];
  readonly redirects: readonly string[];
  /** reject/ereject (RFC 5429): the reason the sender is told. */
  readonly reject: string | null;
  /** A vacation reply to queue from the null sender to `to` (the memory already updated). */
  readonly vacation: { readonly to: string; readonly bytes: Uint8Array } | null;
  /** editheader (RFC 5293) for every stored copy. */
  readonly headerEdits: readonly FieldEdit[];
}

export interface SieveDeliveryDeps {
  readonly scripts: SieveScriptStore;
  readonly config: Pick<Config, 'hostname' | 'sieve' | 'recipientDelimiter'>;
  readonly log: Logger;
  /** Parsed scripts by their text, so a busy user's script is parsed once. */
  readonly cache: Map<string, SieveScript | null>;
}

export interface SieveMessage {
  readonly queueId: string;
  readonly envelope: Envelope;
  /** The recipient as addressed (before alias and subaddress resolution). */
  readonly rcpt: string;
  readonly user: string;
  readonly sizeBytes: number;
  readonly nowMs: number;
  /** The message's header block. */
  readonly header: Uint8Array;
  /** The message's first `maxBytes` octets (for body tests). */
  readonly read: (maxBytes: number) => Promise<Uint8Array>;
  /** The user's mailbox names. */
  readonly mailboxes: () => Promise<ReadonlySet<string>>;
  /** The mailbox keep stores into (INBOX, or Junk when a filter quarantined the message). */
  readonly defaultMailbox: string;
}

/** The user's script run for this message; null when the user has no active script. */
export async function planSieve(deps: SieveDeliveryDeps, m: SieveMessage): Promise<SievePlan | null> {
  const active = await deps.scripts.getActive(m.user);
  if (active === null) return null;
  const keep: SievePlan = {
    stores: [{ mailbox: m.defaultMailbox, flags: [], create: false }],
    redirects: [],
    reject: null,
    vacation: null,
    headerEdits: [],
  };
  const log = deps.log.child({ queueId: m.queueId, user: m.user, script: active.name });
  const script = parsed(deps, active.script);
  if (script === null) {
    log.warn(Events.sieveFailed, { reason: 'the active script does not parse: kept' });
    return keep;
  }
  const body = script.requires.includes('body') ? await m.read(SIEVE_BODY_MAX_BYTES) : null;
  const input: SieveInput = {
    envelope: {
      from: m.envelope.sender,
      to: m.rcpt,
      ...(m.envelope.client.authUser === null ? {} : { auth: m.envelope.client.authUser }),
    },
    headerBlock: m.header,
    body: () => body,
    sizeBytes: m.sizeBytes,
    now: { epochMs: m.nowMs, zone: zoneOf(m.nowMs) },
    mailboxes: await m.mailboxes(),
    spam: spamOf(m.header, deps.config.hostname),
    userAddresses: [m.user, m.rcpt],
    subaddressSeparator: deps.config.recipientDelimiter === '' ? '+' : deps.config.recipientDelimiter,
  };
  const sieve = deps.config.sieve;
  const outcome = runSieve(script, input, {
    defaultMailbox: m.defaultMailbox,
    maxRedirects: sieve.maxRedirects,
    vacation: { minSeconds: sieve.vacationMinSeconds },
  });
  if (outcome.errors.length > 0) {
    log.warn(Events.sieveFailed, { reason: outcome.errors.join('; '), kept: true });
    return keep;
  }
  const stores: SieveStore[] = [];
  const redirects: string[] = [];
  let reject: string | null = null;
  let vacation: SievePlan['vacation'] = null;
  for (const a of outcome.actions) {
    switch (a.kind) {
      case 'keep':
        stores.push({ mailbox: m.defaultMailbox, flags: a.flags, create: false });
        break;
      case 'fileinto':
        stores.push({ mailbox: a.mailbox, flags: a.flags, create: a.create });
        break;
      case 'redirect':
        redirects.push(a.address);
        break;
      case 'reject':
        reject = a.reason;
        break;
      case 'discard':
        break;
      case 'vacation': {
        const verdict = vacationAllowed(input, a);
        if (!verdict.ok) {
          log.debug(Events.sieveVacation, { sent: false, why: verdict.why });
          break;
        }
        const due = await deps.scripts.vacationDue(
          m.user,
          a.handle,
          m.envelope.sender,
          m.nowMs,
          a.seconds * 1000,
        );
        if (!due) {
          log.debug(Events.sieveVacation, { sent: false, why: 'answered within the period' });
          break;
        }
        const bytes = vacationReply(input, a, {
          messageId: `<vacation.${randomBytes(9).toString('hex')}@${deps.config.hostname}>`,
          date: formatRfc5322Date(m.nowMs),
          hostname: deps.config.hostname,
        });
        vacation = { to: m.envelope.sender, bytes };
        break;
      }
    }
  }
  if (outcome.implicitKeep)
    stores.push({ mailbox: m.defaultMailbox, flags: outcome.implicitKeepFlags, create: false });
  log.event(Events.sieveRun, {
    actions: outcome.actions.map((a) => a.kind),
    implicitKeep: outcome.implicitKeep,
    stored: stores.map((s) => s.mailbox),
    ...(redirects.length === 0 ? {} : { redirects }),
    ...(reject === null ? {} : { reject }),
    ...(vacation === null ? {} : { vacation: vacation.to }),
  });
  return { stores: dedupe(stores), redirects, reject, vacation, headerEdits: outcome.headerEdits };
}

function parsed(deps: SieveDeliveryDeps, text: string): SieveScript | null {
  const hit = deps.cache.get(text);
  if (hit !== undefined) return hit;
  const r = parseSieve(text, { maxScriptBytes: deps.config.sieve.maxScriptBytes });
  const script = r.ok ? r.script : null;
  // A handful of scripts is what a worker sees in a while; a bound keeps a flood of users from growing it.
  if (deps.cache.size >= 256) deps.cache.clear();
  deps.cache.set(text, script);
  return script;
}

/** One copy per mailbox: the later flags win (RFC 5228 §2.10.3, as the language itself merges them). */
function dedupe(stores: readonly SieveStore[]): SieveStore[] {
  const byKey = new Map<string, SieveStore>();
  for (const s of stores) {
    const key = s.mailbox.toUpperCase() === 'INBOX' ? 'INBOX' : s.mailbox;
    byKey.set(key, { ...s, create: s.create || (byKey.get(key)?.create ?? false) });
  }
  return [...byKey.values()];
}

/** This host's UTC offset at that time, "+0100" (currentdate's default zone, RFC 5260 §4.2). */
function zoneOf(epochMs: number): string {
  const offset = -new Date(epochMs).getTimezoneOffset();
  const sign = offset < 0 ? '-' : '+';
  const abs = Math.abs(offset);
  return `${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}${String(abs % 60).padStart(2, '0')}`;
}

/**
 * spamtest's input (RFC 5235): the score our filters wrote in X-Tern-Filter (in our name: a sender's own
 * such fields were removed at intake), or null when no filter scored the message.
 */
function spamOf(header: Uint8Array, hostname: string): NonNullable<SieveInput['spam']> | null {
  for (const f of parseHeaderBlock(header)) {
    if (f.name.toLowerCase() !== 'x-tern-filter') continue;
    const [host] = f.value.split(';', 1);
    if (host?.trim().toLowerCase() !== hostname.toLowerCase()) continue;
    const m = /;\s*score=(-?\d+(?:\.\d+)?)\s*$/.exec(f.value);
    return { score: m === null ? 0 : Number(m[1]), threshold: SPAM_THRESHOLD };
  }
  return null;
}

/**
 * A stored copy with the script's header edits: the header block edited, the body as it was. Null when
 * the message is too large to edit in memory (it is then stored unedited, and that is logged).
 */
export async function editedMessage(
  edits: readonly FieldEdit[],
  read: (maxBytes: number) => Promise<Uint8Array>,
  sizeBytes: number,
): Promise<Uint8Array | null> {
  if (sizeBytes > MAX_EDITED_MESSAGE_BYTES) return null;
  const bytes = await read(MAX_EDITED_MESSAGE_BYTES);
  const { fields, bodyOffset, complete } = splitFields(bytes);
  if (!complete) return null;
  const head = applyFieldEdits(fields, edits).join('');
  return Buffer.concat([Buffer.from(`${head}\r\n`, 'latin1'), bytes.subarray(bodyOffset)]);
}
