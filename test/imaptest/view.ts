// The part of imaptest's mailbox-state tracking (src/imap-client.c, src/mailbox-state.c) whose errors
// end a scripted test: imaptest calls them input errors and drops the connection, which fails the script
// with "Unexpected disconnection". Per connection it keeps the selected mailbox's messages by sequence
// number and checks that EXISTS never shrinks the mailbox, that EXPUNGE names an existing sequence, and
// that a FETCH is a list of name/value pairs whose UID is a valid number that never changes for a
// sequence, whose FLAGS is a list of atoms with only known system flags, and whose INTERNALDATE parses
// and never changes.
//
// Deliberately NOT here: imaptest's soft state errors (logged there, not failing a script: keywords used
// before FLAGS announced them, flags another session changed, \Recent given twice) and its checks of
// ENVELOPE and BODYSTRUCTURE contents against the source mbox.
//
// RFC 9051 sections 7.4.1 (EXPUNGE), 7.3.1 (EXISTS), 7.5.2 (FETCH items), 2.3.1.1-2.3.3 (UID, flags,
// internal date).

import { atomOf, astringOf, type ImapArg } from './imap-args.ts';

interface Slot {
  uid: number;
  internalDate: string | undefined;
}

const SYSTEM_FLAGS = new Set(['\\SEEN', '\\ANSWERED', '\\FLAGGED', '\\DELETED', '\\DRAFT', '\\RECENT']);
const DATE_TIME =
  /^[ 0-9]?[0-9]-(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)-[0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} [+-][0-9]{4}$/i;

export class MailboxView {
  #slots: Slot[] = [];

  get count(): number {
    return this.#slots.length;
  }

  /** A new mailbox is being selected, or none is. */
  reset(): void {
    this.#slots = [];
  }

  /** An untagged response; returns imaptest's input error for it, if any. */
  untagged(args: readonly ImapArg[]): string | undefined {
    const first = atomOf(args[0]);
    if (first === undefined) return 'Invalid untagged input';
    if (!/^[0-9]+$/.test(first)) return undefined;
    const num = Number(first);
    const name = atomOf(args[1])?.toUpperCase();
    if (name === undefined) return 'Invalid untagged input';
    if (name === 'EXISTS') return this.#exists(num);
    if (name === 'EXPUNGE') return this.#expunge(num);
    if (name === 'FETCH') return this.#fetch(num, args[2]);
    return undefined;
  }

  #exists(count: number): string | undefined {
    const old = this.#slots.length;
    if (count < old) {
      this.#slots.length = count;
      return `Message count dropped ${old} -> ${count}`;
    }
    while (this.#slots.length < count) this.#slots.push({ uid: 0, internalDate: undefined });
    return undefined;
  }

  #expunge(seq: number): string | undefined {
    if (seq === 0) return 'Tried to expunge sequence 0';
    if (seq > this.#slots.length)
      return `Tried to expunge sequence ${seq} with only ${this.#slots.length} msgs`;
    this.#slots.splice(seq - 1, 1);
    return undefined;
  }

  #fetch(seq: number, list: ImapArg | undefined): string | undefined {
    if (list?.kind !== 'list') return "FETCH didn't return a list";
    // imaptest only tracks what it has seen EXISTS for; a FETCH beyond that is a warning there.
    const slot = this.#slots[seq - 1];
    const items = list.items;
    if (items.length % 2 !== 0) return "FETCH reply doesn't have key-value pairs";
    for (let i = 0; i < items.length; i += 2) {
      const name = atomOf(items[i])?.toUpperCase();
      const value = items[i + 1];
      if (name === 'UID') {
        const text = atomOf(value) ?? '';
        if (!/^[0-9]+$/.test(text) || Number(text) === 0 || Number(text) > 0xffffffff) {
          return `Invalid UID number ${text}`;
        }
        const uid = Number(text);
        if (slot !== undefined) {
          if (slot.uid !== 0 && slot.uid !== uid) {
            const old = slot.uid;
            slot.uid = uid;
            return `UID changed for sequence ${seq}: ${old} -> ${uid}`;
          }
          slot.uid = uid;
        }
      } else if (name === 'FLAGS') {
        if (value?.kind !== 'list') return 'FLAGS reply is not a list';
        for (const flag of value.items) {
          const atom = atomOf(flag);
          if (atom === undefined) return 'Flags list contains non-atoms.';
          if (atom.startsWith('\\') && !SYSTEM_FLAGS.has(atom.toUpperCase()))
            return `Invalid system flag: ${atom}`;
        }
      } else if (name === 'INTERNALDATE') {
        const date = astringOf(value);
        if (date === undefined || !DATE_TIME.test(date)) return `Invalid INTERNALDATE: ${date ?? 'NIL'}`;
        if (slot !== undefined) {
          if (slot.internalDate !== undefined && slot.internalDate !== date) {
            return `UID ${slot.uid}: INTERNALDATE changed ${slot.internalDate} -> ${date}`;
          }
          slot.internalDate = date;
        }
      }
    }
    return undefined;
  }
}
