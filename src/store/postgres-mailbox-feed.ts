// The change feed of the PostgreSQL mailbox store (what IMAP IDLE and NOTIFY consume): watch() per folder,
// watchFolderList() per user. Within a node, a write tells the watchers of the folders it touched after
// its commit, and resolves only once they have been told (so a session sees its own change's event before
// its command completes, as with SQLite). Across nodes, every write transaction sends pg_notify on one
// channel per schema; the notification leaves with the COMMIT and only then (PostgreSQL holds it until
// commit, drops it on rollback), and each store LISTENs on a dedicated connection, re-reading the folders
// named and telling its watchers what moved. The payload carries the sending store's id, so a store skips
// its own. A lost listening connection is reopened, and every watched folder is read again then, so a
// change missed meanwhile still shows.
// A folder event is a hint ("read changesSince"): watchers are told the folder's state as read after the
// change, at most once per distinct state, in order per folder.
// Deliberately NOT here: SQL other than reading a folder's counters (the store passes that in).

import { createHash, randomBytes } from 'node:crypto';
import pg from 'pg';
import type { PgPool } from '../db/postgres.ts';
import { quoteIdent } from '../db/postgres.ts';
import type { FolderEvent, FolderListEvent } from './mailbox-store.ts';

/** What one transaction changed, collected while it runs, told after its commit. */
export class Changes {
  /** user → folder names whose counters or existence changed. */
  readonly folders = new Map<string, Set<string>>();
  /** user → folder list events, in order. */
  readonly lists = new Map<string, FolderListEvent[]>();

  folder(user: string, ...names: string[]): void {
    const set = this.folders.get(user) ?? new Set<string>();
    for (const n of names) set.add(n);
    this.folders.set(user, set);
  }

  list(user: string, ...events: FolderListEvent[]): void {
    this.lists.set(user, [...(this.lists.get(user) ?? []), ...events]);
  }

  get empty(): boolean {
    return this.folders.size === 0 && this.lists.size === 0;
  }
}

/** One NOTIFY payload (JSON). `names: null` means every folder of the user (a payload too big to list). */
type Message =
  | {
      readonly node: string;
      readonly kind: 'folders';
      readonly user: string;
      readonly names: string[] | null;
    }
  | {
      readonly node: string;
      readonly kind: 'list';
      readonly user: string;
      readonly events: FolderListEvent[];
    };

/** PostgreSQL refuses payloads of 8000 bytes and more. */
const MAX_PAYLOAD_BYTES = 7900;
const RECONNECT_MIN_MS = 200;
const RECONNECT_MAX_MS = 10_000;

interface Watch {
  readonly user: string;
  readonly name: string;
  readonly listeners: Set<(e: FolderEvent) => void>;
  /** What the listeners were last told (or the state when watching began); null until first read. */
  last: FolderEvent | null;
  /** A change was reported before the first read ended: report the state read next, whatever it is. */
  force: boolean;
  /** A check not started yet (one more caller needs no second one). */
  queued: Promise<void> | null;
  /** The last check scheduled: checks of one folder run one after another. */
  tail: Promise<void>;
}

export interface ChangeFeedOptions {
  readonly pool: PgPool;
  /** The folder's state now, as an event ('gone' when it is missing or \Noselect). */
  readonly folderEvent: (user: string, name: string) => Promise<FolderEvent>;
  /** LISTEN for other nodes' changes (a dedicated connection); false: only this store's own writes. */
  readonly listen: boolean;
}

export class ChangeFeed {
  readonly #options: ChangeFeedOptions;
  /** This store among the nodes: its own notifications are skipped. */
  readonly #node = randomBytes(9).toString('base64url');
  readonly #channel: string;
  readonly #watches = new Map<string, Watch>();
  readonly #listWatchers = new Map<string, Set<(e: FolderListEvent) => void>>();
  #client: pg.Client | null = null;
  #reconnectMs = RECONNECT_MIN_MS;
  #reconnectTimer: NodeJS.Timeout | null = null;
  #closed = false;

  private constructor(options: ChangeFeedOptions, channel: string) {
    this.#options = options;
    this.#channel = channel;
  }

  /** The feed of the schema the pool uses; with `listen`, listening when this resolves. */
  static async open(options: ChangeFeedOptions): Promise<ChangeFeed> {
    const r = await options.pool.query<{ schema: string }>('SELECT current_schema() AS schema');
    // Channels are per database, not per schema: one schema's stores must not wake another's.
    const schema = r.rows[0]?.schema ?? 'public';
    const channel = `tern_mailbox_${createHash('sha256').update(schema).digest('hex').slice(0, 24)}`;
    const feed = new ChangeFeed(options, channel);
    if (options.listen) await feed.#connect();
    return feed;
  }

  /** The channel the payloads go to (the store's transaction sends them with pg_notify). */
  get channel(): string {
    return this.#channel;
  }

  /** pg_notify payloads for a transaction's changes. */
  payloads(changes: Changes): string[] {
    const out: string[] = [];
    for (const [user, names] of changes.folders) {
      const full: Message = { node: this.#node, kind: 'folders', user, names: [...names] };
      const text = JSON.stringify(full);
      out.push(
        Buffer.byteLength(text) <= MAX_PAYLOAD_BYTES
          ? text
          : JSON.stringify({ ...full, names: null } satisfies Message),
      );
    }
    for (const [user, events] of changes.lists) {
      const all = JSON.stringify({ node: this.#node, kind: 'list', user, events } satisfies Message);
      if (Buffer.byteLength(all) <= MAX_PAYLOAD_BYTES) out.push(all);
      // One event is at most two names of 1,000 bytes: it always fits alone.
      else
        for (const e of events)
          out.push(JSON.stringify({ node: this.#node, kind: 'list', user, events: [e] }));
    }
    return out;
  }

  /** After this store's durable commit: tell the local watchers; resolves once they have been told. */
  async committed(changes: Changes): Promise<void> {
    for (const [user, events] of changes.lists) this.#tellList(user, events);
    const checks: Promise<void>[] = [];
    for (const [user, names] of changes.folders)
      for (const name of names) {
        const w = this.#watches.get(watchKey(user, name));
        if (w !== undefined) checks.push(this.#changed(w));
      }
    await Promise.all(checks);
  }

  watch(user: string, name: string, listener: (event: FolderEvent) => void): () => void {
    const key = watchKey(user, name);
    let w = this.#watches.get(key);
    if (w === undefined) {
      w = {
        user,
        name,
        listeners: new Set(),
        last: null,
        force: false,
        queued: null,
        tail: Promise.resolve(),
      };
      this.#watches.set(key, w);
      // The state now, to compare the next change with.
      void this.#check(w);
    }
    w.listeners.add(listener);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const now = this.#watches.get(key);
      now?.listeners.delete(listener);
      if (now !== undefined && now.listeners.size === 0) this.#watches.delete(key);
    };
  }

  watchFolderList(user: string, listener: (event: FolderListEvent) => void): () => void {
    let set = this.#listWatchers.get(user);
    if (set === undefined) {
      set = new Set();
      this.#listWatchers.set(user, set);
    }
    set.add(listener);
    return () => {
      const now = this.#listWatchers.get(user);
      now?.delete(listener);
      if (now?.size === 0) this.#listWatchers.delete(user);
    };
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#reconnectTimer !== null) clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = null;
    this.#watches.clear();
    this.#listWatchers.clear();
    const client = this.#client;
    this.#client = null;
    if (client !== null) await client.end().catch(() => undefined);
  }

  /** A change was committed: a watch whose first read is still running reports whatever it reads next. */
  #changed(w: Watch): Promise<void> {
    if (w.last === null) w.force = true;
    return this.#check(w);
  }

  /** Read the folder and tell the listeners if it moved; resolves once a read begun after the call ended. */
  #check(w: Watch): Promise<void> {
    if (w.queued !== null) return w.queued;
    const run = w.tail.then(async () => {
      w.queued = null;
      await this.#run(w);
    });
    const settled = run.catch(() => undefined);
    w.queued = settled;
    w.tail = settled;
    return settled;
  }

  async #run(w: Watch): Promise<void> {
    if (this.#closed || this.#watches.get(watchKey(w.user, w.name)) !== w) return;
    let now: FolderEvent;
    try {
      now = await this.#options.folderEvent(w.user, w.name);
    } catch {
      // XXX: the store has no logger; the next change (or reconnect) reads the folder again.
      return;
    }
    const first = w.last === null;
    const moved = !first && JSON.stringify(now) !== JSON.stringify(w.last);
    const tell = moved || w.force;
    w.last = now;
    w.force = false;
    if (!tell) return;
    for (const listener of [...w.listeners]) {
      try {
        listener(now);
      } catch {
        // XXX: a listener's bug must not stop the others; sessions catch their own errors.
      }
    }
  }

  #tellList(user: string, events: readonly FolderListEvent[]): void {
    const set = this.#listWatchers.get(user);
    if (set === undefined) return;
    for (const event of events)
      for (const listener of [...set]) {
        try {
          listener(event);
        } catch {
          // XXX: a listener's bug must not stop the others; sessions catch their own errors.
        }
      }
  }

  #heard(payload: string | undefined): void {
    if (this.#closed || payload === undefined) return;
    let msg: Message;
    try {
      msg = JSON.parse(payload) as Message;
    } catch {
      return;
    }
    if (msg.node === this.#node) return;
    if (msg.kind === 'list') {
      this.#tellList(msg.user, msg.events);
      return;
    }
    for (const w of this.#watches.values()) {
      if (w.user === msg.user && (msg.names === null || msg.names.includes(w.name))) void this.#changed(w);
    }
  }

  /** Open the listening connection; on failure (open() excepted) try again with a growing delay. */
  async #connect(): Promise<void> {
    const client = new pg.Client(this.#options.pool.options);
    client.on('notification', (n) => this.#heard(n.payload));
    // A dropped connection is an 'error' and then 'end': handled once, by reconnecting.
    client.on('error', () => undefined);
    client.on('end', () => {
      if (this.#client !== client) return;
      this.#client = null;
      this.#reconnectLater();
    });
    await client.connect();
    try {
      await client.query(`LISTEN ${quoteIdent(this.#channel)}`);
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
    if (this.#closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.#client = client;
    this.#reconnectMs = RECONNECT_MIN_MS;
  }

  #reconnectLater(): void {
    if (this.#closed || this.#reconnectTimer !== null) return;
    const delay = this.#reconnectMs;
    this.#reconnectMs = Math.min(this.#reconnectMs * 2, RECONNECT_MAX_MS);
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = null;
      this.#connect().then(
        // Whatever changed while nobody listened shows as a difference now.
        () => {
          for (const w of this.#watches.values()) void this.#check(w);
        },
        () => this.#reconnectLater(),
      );
    }, delay);
    this.#reconnectTimer.unref();
  }
}

function watchKey(user: string, name: string): string {
  return JSON.stringify([user, name]);
}
