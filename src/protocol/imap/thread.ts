// IMAP THREAD (RFC 5256 §3): ORDEREDSUBJECT (group by base subject, order by sent date) and REFERENCES
// (the Zawinski algorithm: link by Message-ID, References and In-Reply-To without loops, prune dummy
// parents, group the roots by base subject, order siblings by sent date), and the "* THREAD" response
// (RFC 5256 §4: "(2)(3 6 (4 23)(44 7 96))").
// The sent date is the Date: header's instant, the internal date when it is missing or unreadable
// (RFC 5256 §2.2, as SORT DATE reads it), so every pair of messages compares the same way; equal dates
// keep sequence order. Every step is linear or n log n in the number of messages and references; no recursion, so a
// reply chain of any length is fine.
// PURE and total. Deliberately not here: which messages are threaded (search.ts), loading them (the
// driver: threadNeeds says whether the References field must be read from the header section).

import { assertNever } from '../../core/assert-never.ts';
import { parseHeaderBlock } from '../headers.ts';
import type { EnvelopeFields } from '../mime/structure.ts';
import { casemapKey } from './collation.ts';
import { formatUntagged } from './format.ts';
import { messageIds } from './message-fields.ts';
import { baseSubjectOf, sentDateMs } from './sort.ts';

/** The algorithms THREAD offers, as the CAPABILITY list names them (THREAD=ORDEREDSUBJECT ...). */
export const threadAlgorithms = ['ORDEREDSUBJECT', 'REFERENCES'] as const;
export type ThreadAlgorithm = (typeof threadAlgorithms)[number];

export function isThreadAlgorithm(name: string): name is ThreadAlgorithm {
  return (threadAlgorithms as readonly string[]).includes(name.toUpperCase());
}

/** ORDEREDSUBJECT reads only the envelope; REFERENCES also the References field of the header section. */
export function threadNeeds(algorithm: ThreadAlgorithm): 'meta' | 'header' {
  return algorithm === 'REFERENCES' ? 'header' : 'meta';
}

/** The References field's value from a message's header section, or null when it has none. */
export function referencesField(header: Uint8Array): string | null {
  const values = parseHeaderBlock(header).filter((f) => f.name.toLowerCase() === 'references');
  return values.length === 0 ? null : values.map((f) => f.value).join(' ');
}

export interface ThreadMessage {
  /** The number the response shows: the sequence number, or the UID for UID THREAD. */
  readonly id: number;
  readonly seq: number;
  readonly internalDateMs: number;
  /** The top part's envelope (structure.root.envelope): Date, Subject, Message-ID, In-Reply-To. */
  readonly envelope: EnvelopeFields | null;
  /** The References field (referencesField), null when absent or not loaded. */
  readonly references: string | null;
}

/** A thread: a message (id) or a dummy parent (null) and its replies, oldest first. */
export interface ThreadNode {
  readonly id: number | null;
  readonly children: readonly ThreadNode[];
}

interface Prepared {
  readonly id: number;
  readonly seq: number;
  readonly dateMs: number;
  /** casemap key of the base subject. */
  readonly subject: string;
  readonly replyOrForward: boolean;
}

function prepare(m: ThreadMessage): Prepared {
  const { base, replyOrForward } = baseSubjectOf(m.envelope?.subject ?? '');
  return {
    id: m.id,
    seq: m.seq,
    dateMs: sentDateMs(m.envelope, m.internalDateMs),
    subject: casemapKey(base),
    replyOrForward,
  };
}

function byDate(a: Prepared, b: Prepared): number {
  return a.dateMs - b.dateMs || a.seq - b.seq;
}

/** The threads of `messages` under `algorithm`, in the order the response lists them. */
export function threadMessages(algorithm: ThreadAlgorithm, messages: readonly ThreadMessage[]): ThreadNode[] {
  switch (algorithm) {
    case 'ORDEREDSUBJECT':
      return orderedSubject(messages.map(prepare));
    case 'REFERENCES':
      return references(messages);
    default:
      return assertNever(algorithm);
  }
}

/** RFC 5256 §3 ORDEREDSUBJECT: per base subject, the oldest message with the others as its children. */
function orderedSubject(messages: Prepared[]): ThreadNode[] {
  const sorted = [...messages].sort((a, b) =>
    a.subject < b.subject ? -1 : a.subject > b.subject ? 1 : byDate(a, b),
  );
  const threads: { first: Prepared; node: ThreadNode }[] = [];
  for (let i = 0; i < sorted.length;) {
    let j = i + 1;
    while (j < sorted.length && sorted[j]!.subject === sorted[i]!.subject) j++;
    const children = sorted.slice(i + 1, j).map((m) => ({ id: m.id, children: [] }));
    threads.push({ first: sorted[i]!, node: { id: sorted[i]!.id, children } });
    i = j;
  }
  return threads.sort((a, b) => byDate(a.first, b.first)).map((t) => t.node);
}

class Container {
  msg: Prepared | null = null;
  parent: Container | null = null;
  // A Set: unlinking from a parent with thousands of replies is O(1), and insertion order is kept.
  children = new Set<Container>();
}

function link(parent: Container, child: Container): void {
  child.parent?.children.delete(child);
  child.parent = parent;
  parent.children.add(child);
}

function unlink(child: Container): void {
  child.parent?.children.delete(child);
  child.parent = null;
}

/**
 * Would making `child` a child of `parent` close a loop (child is parent or one of its ancestors)? Two
 * walks in step, up from the parent and breadth-first down from the child, and the first to finish
 * answers: a new message's container has no replies yet, so a long reply chain costs O(1) per link
 * rather than its depth (which made a 10,000-message chain quadratic).
 */
function wouldLoop(parent: Container, child: Container): boolean {
  if (parent === child) return true;
  let up = parent.parent;
  const down = [child];
  for (let i = 0; ; i++) {
    if (up === null) return false;
    if (up === child) return true;
    up = up.parent;
    const c = down[i];
    if (c === undefined) return false;
    for (const k of c.children) {
      if (k === parent) return true;
      down.push(k);
    }
  }
}

/** The message a container sorts and groups by: its own, or for a dummy its first child's. */
function representative(c: Container): Prepared | null {
  let cur: Container | undefined = c;
  while (cur !== undefined && cur.msg === null) cur = cur.children.values().next().value;
  return cur?.msg ?? null;
}

function compareContainers(a: Container, b: Container): number {
  const x = representative(a);
  const y = representative(b);
  if (x === null || y === null) return x === y ? 0 : x === null ? 1 : -1;
  return byDate(x, y);
}

function sortChildren(c: Container): void {
  if (c.children.size > 1) c.children = new Set([...c.children].sort(compareContainers));
}

/** Every container under `root`, parents before children. */
function preorder(root: Container): Container[] {
  const out: Container[] = [];
  const stack = [root];
  while (stack.length > 0) {
    const c = stack.pop()!;
    out.push(c);
    for (const child of c.children) stack.push(child);
  }
  return out;
}

/** RFC 5256 §3 REFERENCES, steps 1-6. */
function references(messages: readonly ThreadMessage[]): ThreadNode[] {
  const byId = new Map<string, Container>();
  const all: Container[] = [];
  const containerFor = (id: string): Container => {
    let c = byId.get(id);
    if (c === undefined) {
      c = new Container();
      byId.set(id, c);
      all.push(c);
    }
    return c;
  };
  const ordered = [...messages].sort((a, b) => a.seq - b.seq);
  for (const m of ordered) {
    // (1) The message's container: by its Message-ID, a fresh one when it has none or a duplicate.
    const id = messageIds(m.envelope?.messageId ?? null)[0];
    const existing = id === undefined ? undefined : byId.get(id);
    let cur: Container;
    if (id !== undefined && (existing === undefined || existing.msg === null)) cur = containerFor(id);
    else {
      cur = new Container();
      all.push(cur);
    }
    cur.msg = prepare(m);
    let refs = messageIds(m.references);
    if (refs.length === 0) refs = messageIds(m.envelope?.inReplyTo ?? null).slice(0, 1);
    // (1A) Link the references in order; an existing parent link stays, a loop is never made.
    for (let i = 0; i + 1 < refs.length; i++) {
      const parent = containerFor(refs[i]!);
      const child = containerFor(refs[i + 1]!);
      if (child.parent === null && !wouldLoop(parent, child)) link(parent, child);
    }
    // (1B) The last reference is the parent, replacing a link made from a truncated References field.
    const last = refs.at(-1);
    if (last === undefined) unlink(cur);
    else {
      const parent = containerFor(last);
      if (!wouldLoop(parent, cur)) link(parent, cur);
      else unlink(cur);
    }
  }
  // (2) The root set.
  const root = new Container();
  for (const c of all) if (c.parent === null) link(root, c);
  // (3) Prune dummies, children before parents: an empty one goes; one with children is replaced by
  // them, except at the top level where only a single child is promoted.
  const nodes = preorder(root);
  for (let i = nodes.length - 1; i > 0; i--) {
    const c = nodes[i]!;
    if (c.msg !== null) continue;
    const parent = c.parent!;
    if (c.children.size === 0) unlink(c);
    else if (parent !== root || c.children.size === 1) {
      for (const child of [...c.children]) link(parent, child);
      unlink(c);
    }
  }
  // (4) Sort the root set by sent date (a dummy by its oldest child).
  for (const c of root.children) if (c.msg === null) sortChildren(c);
  sortChildren(root);
  // (5) Group the roots by base subject.
  const subjects = new Map<string, Container>();
  for (const c of root.children) {
    const m = representative(c);
    if (m === null || m.subject === '') continue;
    const old = subjects.get(m.subject);
    if (
      old === undefined ||
      (c.msg === null && old.msg !== null) ||
      (old.msg !== null && old.msg.replyOrForward && c.msg !== null && !c.msg.replyOrForward)
    )
      subjects.set(m.subject, c);
  }
  for (const c of [...root.children]) {
    if (c.parent !== root) continue; // already grouped under another root
    const m = representative(c);
    if (m === null || m.subject === '') continue;
    const t = subjects.get(m.subject)!;
    if (t === c) continue;
    if (t.msg === null && c.msg === null) {
      for (const child of [...c.children]) link(t, child);
      unlink(c);
    } else if (t.msg === null) link(t, c);
    else if (c.msg === null) {
      link(c, t);
      subjects.set(m.subject, c);
    } else if (c.msg.replyOrForward && !t.msg.replyOrForward) link(t, c);
    else {
      const dummy = new Container();
      link(root, dummy);
      link(dummy, t);
      link(dummy, c);
      subjects.set(m.subject, dummy);
    }
  }
  // (6) Sort every set of siblings by sent date, the deepest first so a dummy's first child is known.
  const after = preorder(root);
  for (let i = after.length - 1; i >= 0; i--) sortChildren(after[i]!);
  return freeze(root).children as ThreadNode[];
}

/** The container tree as ThreadNodes, built bottom-up without recursion. */
function freeze(root: Container): ThreadNode {
  const nodes = preorder(root);
  const built = new Map<Container, ThreadNode>();
  for (let i = nodes.length - 1; i >= 0; i--) {
    const c = nodes[i]!;
    built.set(c, { id: c.msg?.id ?? null, children: [...c.children].map((k) => built.get(k)!) });
  }
  return built.get(root)!;
}

/**
 * "* THREAD (2)(3 6 (4 23)(44 7 96))\r\n" (RFC 5256 §4): a chain of single replies is a list of numbers,
 * a message with several replies ends in one parenthesized list per reply, a dummy parent shows only its
 * replies' lists.
 */
export function formatThreadResponse(threads: readonly ThreadNode[]): string {
  let out = 'THREAD';
  const stack: (string | ThreadNode)[] = [];
  for (let i = threads.length - 1; i >= 0; i--) stack.push(threads[i]!);
  if (threads.length > 0) out += ' ';
  while (stack.length > 0) {
    const item = stack.pop()!;
    if (typeof item === 'string') {
      out += item;
      continue;
    }
    const ids: number[] = [];
    let cur = item;
    for (;;) {
      if (cur.id !== null) ids.push(cur.id);
      if (cur.children.length !== 1) break;
      cur = cur.children[0]!;
    }
    if (ids.length === 0 && cur.children.length === 0) continue; // an empty dummy: nothing to show
    out += `(${ids.join(' ')}${ids.length > 0 && cur.children.length > 1 ? ' ' : ''}`;
    stack.push(')');
    for (let i = cur.children.length - 1; i >= 0; i--) stack.push(cur.children[i]!);
  }
  return formatUntagged(out);
}
