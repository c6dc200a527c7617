// The IMAP driver: glues one pure ImapSession (protocol/imap/session.ts) to one connection shell and to
// the services. It turns the session's effects into writes and decisions: STARTTLS (the shell's
// upgrade), LOGIN and AUTHENTICATE (the one SASL drive, so delays, failure caps and lockouts are
// submission's), APPEND literals streamed into the store (never whole in memory), IDLE (the store's
// change feed pushes updates while the client waits), and the command handlers in server/imap/. It keeps
// what the client enabled and the selected view, sends pending updates at the points RFC 9051 §7.5.1
// allows (and between commands, as NOTIFY asks: RFC 5465 §5, server/imap/notify.ts), runs the
// autologout timer (RFC 9051 §5.4, [imap] idle_timeout_seconds), and is the only writer of tagged
// responses.
// Deliberately NOT here: sockets and TLS (the shell), the SASL exchange (sasl-drive.ts), protocol rules
// (the session), the commands' work (server/imap/*), connection limits (listeners.ts).
//
// SECURITY: input is fed to the session in arrival order and the session pauses at every command, so
// nothing is read while one runs; at STARTTLS the shell drops every byte not yet fed and the session its
// own buffer. A connection that ends without LOGOUT loses nothing: only EXPUNGE/CLOSE/MOVE remove mail.

import { assertNever } from '../core/assert-never.ts';
import type { ListenerConfig } from '../config/config.ts';
import { Events } from '../core/events.ts';
import type { Logger } from '../core/ports.ts';
import type { Connection } from '../net/connection.ts';
import { formatAuthStep, imapSaslFraming, type ImapAuthStep } from '../protocol/imap/auth-framing.ts';
import { capabilityList } from '../protocol/imap/capabilities.ts';
import type { ImapCommand } from '../protocol/imap/command.ts';
import {
  formatCapability,
  formatEnabled,
  formatTagged,
  formatUntagged,
  formatUntaggedStatus,
} from '../protocol/imap/format.ts';
import type { SelectedView } from '../protocol/imap/selected.ts';
import { ImapSession, type Effect } from '../protocol/imap/session.ts';
import { MailboxError, type FolderEvent, type ImapMailboxStore } from '../store/mailbox-store.ts';
import type { ConnectionDeps } from './connection-deps.ts';
import type { Driver, DriverFactory } from './driver.ts';
import { AppendCommand } from './imap/append.ts';
import { bad, no, ok, type Completion, type Enabled, type ImapContext } from './imap/context.ts';
import * as mailboxes from './imap/mailboxes.ts';
import * as messages from './imap/messages.ts';
import { Notifier } from './imap/notify.ts';
import { SearchContexts } from './imap/search-context.ts';
import * as urlauth from './imap/urlauth.ts';
import {
  listenerMechanisms,
  plaintextAuthAllowed,
  SaslDrive,
  type SaslEvents,
  type SaslStep,
} from './sasl-drive.ts';

/** The BYE when the selected folder is deleted or renamed elsewhere (RFC 2180 §3.2; Dovecot's words). */
const SELECTED_GONE = 'Selected mailbox was deleted or renamed, have to disconnect';

/** Above this many unfed bytes the socket is paused (literals stream through; commands are bounded). */
export const IMAP_MAX_BUFFERED_BYTES = 256 * 1024;

/** Commands before login (CAPABILITY, STARTTLS, ID, failed LOGINs...): a real client needs a handful. */
export const IMAP_MAX_BAD_COMMANDS = 20;

const IMAP_SASL_EVENTS: SaslEvents = { verify: Events.imapAuthVerify, succeeded: Events.imapAuthSucceeded };

/** imap (STARTTLS, RFC 9051 §6.2.1) and imaps (implicit TLS, RFC 8314) on the listeners. */
export const imapDriver: DriverFactory = {
  create: (shell, { id, listener, deps }) => new ImapConnection(shell, id, listener, deps),
  refusal: (reason) =>
    formatUntaggedStatus(
      'BYE',
      { kind: 'UNAVAILABLE' },
      reason === 'max-connections-per-ip'
        ? 'Too many connections from your address'
        : 'Too many connections, try again later',
    ),
  maxBufferedBytes: IMAP_MAX_BUFFERED_BYTES,
  events: { refused: Events.imapRefused, tlsFailed: Events.imapTlsFailed },
};

export class ImapConnection implements Driver {
  readonly id: string;
  private readonly shell: Connection;
  private readonly deps: ConnectionDeps;
  private readonly store: ImapMailboxStore;
  private readonly listener: ListenerConfig;
  private readonly session: ImapSession;
  private readonly sasl: SaslDrive<ImapAuthStep>;
  private readonly log: Logger;
  private user: string | null = null;
  private view: SelectedView | null = null;
  private unwatch: (() => void) | null = null;
  /** The change feed said the selected folder changed since updates were last sent. */
  private dirty = false;
  /** The selected folder was deleted or renamed by another session. */
  private selectedGone = false;
  private readonly enabled: Enabled = { condstore: false, qresync: false, utf8: false, imap4rev2: false };
  private savedResult: readonly number[] | null = null;
  /** CONDSTORE was on when the running command began. */
  private condstoreBefore = false;
  /** RFC 5267 SEARCH/SORT RETURN (UPDATE) contexts of the selected folder. */
  private readonly contexts = new SearchContexts();
  /** The AUTHENTICATE command running (its tag), while the exchange waits for lines. */
  private authTag: string | null = null;
  /** The IDLE command running (its tag). */
  private idleTag: string | null = null;
  private append: AppendCommand | null = null;
  private shuttingDown = false;
  private busy = false;
  private readonly appendLimitBytes: number;
  /** NOTIFY (RFC 5465) once logged in. */
  private notifier: Notifier | null = null;
  /** Unsolicited updates run one at a time, and never beside a command (run() waits for them). */
  private pushChain: Promise<void> = Promise.resolve();
  private pushQueued = false;

  constructor(shell: Connection, id: string, listener: ListenerConfig, deps: ConnectionDeps) {
    this.shell = shell;
    this.id = id;
    this.listener = listener;
    this.deps = deps;
    // The composition root gives IMAP listeners a store that serves IMAP (main.ts).
    this.store = deps.store as ImapMailboxStore;
    this.log = deps.logger.child({ session: id });
    const mechanisms = listenerMechanisms(listener, deps.config);
    const plaintextAllowed = plaintextAuthAllowed(listener, shell.remoteIp);
    const imap = deps.config.imap;
    this.appendLimitBytes =
      imap.appendLimitBytes > 0 ? imap.appendLimitBytes : deps.config.limits.maxMessageBytes;
    this.session = new ImapSession({
      starttls: listener.tls === 'starttls' && deps.secureContext !== null,
      tlsActive: shell.tls !== null,
      plaintextAuth: plaintextAllowed,
      maxErrors: IMAP_MAX_BAD_COMMANDS,
      limits: { maxLineBytes: imap.maxLineBytes, maxMessageBytes: this.appendLimitBytes },
    });
    this.sasl = new SaslDrive({
      deps,
      shell,
      log: this.log,
      framing: imapSaslFraming,
      mechanisms,
      plaintextAllowed,
      events: IMAP_SASL_EVENTS,
    });
  }

  start(): void {
    this.log.event(Events.imapConnect, {
      ip: this.shell.remoteIp,
      port: this.shell.remotePort,
      service: this.listener.service,
      tls: this.shell.tls,
    });
    this.shell.start({
      data: this.onData,
      error: (err) => this.log.event(Events.imapClose, { reason: 'socket error', error: err.message }),
      tlsFailed: (error) => this.log.warn(Events.imapTlsFailed, { error }),
      closed: (reason) => this.finish(reason),
    });
    this.armIdleTimer();
    void this.run(this.session.greet(this.capabilities()));
  }

  shutdown(): void {
    this.shuttingDown = true;
    if (!this.busy) this.bye('Server shutting down');
  }

  private capabilities(): string[] {
    return capabilityList({
      authenticated: this.user !== null,
      starttlsOffered: this.session.starttlsOffered,
      loginDisabled: this.session.loginDisabled,
      mechanisms: this.session.loginDisabled ? [] : this.sasl.offered(),
      appendLimitBytes: this.appendLimitBytes,
      compressed: this.shell.compressed,
    });
  }

  private readonly onData = async (chunk: Uint8Array): Promise<void> => {
    await this.run(this.session.feed(chunk));
  };

  private async run(effects: Effect[]): Promise<void> {
    this.busy = true;
    try {
      await this.pushChain;
      await this.perform(effects);
    } catch (err) {
      if (
        this.view !== null &&
        err instanceof MailboxError &&
        (err.code === 'nonexistent' || err.code === 'noselect')
      ) {
        // The selected folder went away under the command (another process, or a race with our own
        // feed): RFC 2180 §3.2 allows a BYE; it is no server bug.
        this.log.event(Events.imapSelectedGone, { folder: this.view.folder });
        this.bye(SELECTED_GONE);
      } else {
        this.log.error(Events.imapInternalError, { error: String(err), stack: (err as Error).stack });
        this.bye('Internal error, closing connection', { kind: 'SERVERBUG' });
      }
    } finally {
      this.busy = false;
    }
    // Notifications that arrived while the command ran go out now that it is done (RFC 5465 §5).
    if (this.notifier?.pending === true || (this.dirty && this.pushesSelected())) this.schedulePush();
    if (this.shuttingDown && !this.shell.closed && this.idleTag === null) this.bye('Server shutting down');
  }

  /** RFC 9051 §5.4: an inactive client is logged out after at least 30 minutes. */
  private armIdleTimer(): void {
    this.shell.setTimer('idle', this.deps.config.imap.idleTimeoutMs, () => {
      this.log.warn(Events.imapTimeout, { state: this.session.state });
      this.bye('Autologout; idle for too long');
    });
  }

  private async perform(effects: Effect[]): Promise<void> {
    // A resumed command's effects join the end of the batch: the session paused at that command, so
    // nothing of this batch comes after it.
    const queue = [...effects];
    for (let i = 0; i < queue.length; i++) {
      if (this.shell.closed) return;
      queue.push(...(await this.performOne(queue[i]!)));
    }
  }

  private async performOne(effect: Effect): Promise<Effect[]> {
    switch (effect.kind) {
      case 'write':
        this.shell.write(effect.text);
        return [];
      case 'violation':
        this.log.warn(Events.imapViolation, { what: effect.what, state: this.session.state });
        return [];
      case 'close':
        this.shell.end();
        return [];
      case 'execute':
        this.armIdleTimer();
        this.log.debug(Events.imapCommand, { tag: effect.tag, command: effect.command.kind });
        return this.execute(effect.tag, effect.command);
      case 'append-literal':
        return this.appendLiteral(effect);
      case 'append-data':
        await this.append?.data(effect.chunk, effect.last);
        return [];
      case 'line':
        return this.rawLine(effect.line, effect.tooLong);
      default:
        return assertNever(effect);
    }
  }

  // --- commands -----------------------------------------------------------------------------------

  private context(): ImapContext {
    const user = this.user;
    if (user === null) throw new Error('IMAP context before login');
    const saved = {
      get: (): readonly number[] | null => this.savedResult,
      set: (v: readonly number[] | null): void => {
        this.savedResult = v;
      },
    };
    return {
      user,
      store: this.store,
      directory: this.deps.directory,
      sharedUids: this.deps.imap.sharedUids,
      log: this.log,
      enabled: this.enabled,
      nowMs: () => this.deps.clock.nowMs(),
      view: this.view,
      write: (text) => {
        this.shell.write(text);
      },
      send: (data) => this.shell.send(data),
      get savedResult() {
        return saved.get();
      },
      set savedResult(v) {
        saved.set(v);
      },
      appendLimitBytes: this.appendLimitBytes,
    };
  }

  /** Write a command's completion (after updates where allowed) and read on in its state. */
  private async complete(
    tag: string,
    c: Completion,
    updates: 'all' | 'no-expunge' | 'none' = 'all',
  ): Promise<Effect[]> {
    if (updates !== 'none' && this.view !== null && c.state !== 'authenticated') {
      await this.sendUpdates(updates === 'all');
    }
    if (!this.condstoreBefore && this.enabled.condstore && this.view !== null) {
      this.condstoreBefore = true;
      this.shell.write(
        formatUntaggedStatus(
          'OK',
          { kind: 'HIGHESTMODSEQ', value: BigInt(this.view.highestModseq) },
          'Highest',
        ),
      );
    }
    this.shell.write(formatTagged(tag, c.status, c.code, c.text));
    return this.session.resume(c.state);
  }

  private async execute(tag: string, command: ImapCommand): Promise<Effect[]> {
    // A command that turns CONDSTORE on while a folder is selected is answered with the folder's
    // HIGHESTMODSEQ first (RFC 7162 §3.1); SELECT/EXAMINE say it themselves.
    this.condstoreBefore = this.enabled.condstore || command.kind === 'select' || command.kind === 'examine';
    if (this.view !== null && this.selectedGone && command.kind !== 'logout') {
      // Deleted or renamed by another session since the last command: its numbers mean nothing now.
      this.bye(SELECTED_GONE);
      return [];
    }
    switch (command.kind) {
      case 'capability':
        this.shell.write(formatCapability(this.capabilities()));
        return this.complete(tag, ok('CAPABILITY completed'));
      case 'noop':
      case 'check':
        return this.complete(tag, ok(`${command.kind.toUpperCase()} completed`));
      case 'logout':
        this.shell.write(formatUntaggedStatus('BYE', null, 'Logging out'));
        this.shell.write(formatTagged(tag, 'OK', null, 'LOGOUT completed'));
        this.session.close();
        this.shell.end();
        return [];
      case 'id':
        this.shell.write(formatUntagged(`ID ("name" "Tern" "vendor" "Tern")`));
        return this.complete(tag, ok('ID completed'), 'none');
      case 'starttls':
        return this.startTls(tag);
      case 'login':
        return this.login(tag, await this.sasl.password(command.user, command.password));
      case 'authenticate':
        this.authTag = tag;
        return this.authStep(await this.sasl.start(command.mechanism, command.initialResponse));
      case 'enable':
        return this.complete(tag, this.enable(command.capabilities), 'none');
      case 'unauthenticate':
        this.notifier?.stop();
        this.notifier = null;
        this.deselect();
        this.releaseUser();
        return this.complete(tag, ok('UNAUTHENTICATE completed', null, 'not-authenticated'), 'none');
      case 'compress':
        return this.compress(tag, command.algorithm);
      case 'idle':
        this.idleTag = tag;
        this.shell.write('+ idling\r\n');
        await this.sendUpdates(true);
        return this.session.expectLine();
      default:
        break;
    }
    const ctx = this.context();
    switch (command.kind) {
      case 'namespace':
        return this.complete(tag, mailboxes.namespace(ctx));
      case 'list':
      case 'lsub':
        return this.complete(tag, await mailboxes.list(ctx, command));
      case 'create':
        return this.complete(tag, await mailboxes.create(ctx, command));
      case 'delete':
        return this.complete(tag, await mailboxes.remove(ctx, command));
      case 'rename':
        return this.complete(tag, await mailboxes.rename(ctx, command));
      case 'subscribe':
      case 'unsubscribe':
        return this.complete(tag, await mailboxes.subscription(ctx, command));
      case 'status':
        return this.complete(tag, await mailboxes.status(ctx, command));
      case 'getquota':
      case 'getquotaroot':
      case 'setquota':
        return this.complete(tag, await mailboxes.quota(ctx, command));
      case 'notify':
        return this.complete(tag, await this.notifierOf(ctx.user).command(ctx, command));
      case 'select':
      case 'examine': {
        const hadView = this.view !== null;
        this.deselect();
        if (hadView && this.enabled.qresync)
          ctx.write(formatUntaggedStatus('OK', { kind: 'CLOSED' }, 'Previous mailbox closed'));
        const r = await mailboxes.select(ctx, command);
        if (r.view !== null) this.selectView(r.view);
        else
          return this.complete(
            tag,
            r.completion.status === 'OK' ? r.completion : { ...r.completion, state: 'authenticated' },
            'none',
          );
        this.log.event(Events.imapSelect, {
          folder: r.view.folder,
          readOnly: r.view.readOnly,
          exists: r.view.exists,
        });
        return this.complete(tag, r.completion, 'none');
      }
      case 'append': {
        // A CATENATE of URLs alone announced no literal, so nothing made an AppendCommand yet.
        const c = await (this.append ?? new AppendCommand(command.mailbox)).finish(ctx, command);
        this.append = null;
        return this.complete(tag, c);
      }
      case 'genurlauth':
        return this.complete(tag, await urlauth.genurlauth(ctx, command));
      case 'resetkey':
        return this.complete(tag, await urlauth.resetkey(ctx, command));
      case 'urlfetch':
        return this.complete(tag, await urlauth.urlfetch(ctx, command));
      case 'close':
      case 'unselect': {
        if (command.kind === 'close' && this.view !== null && !this.view.readOnly)
          await messages.closeExpunge(ctx);
        this.deselect();
        return this.complete(
          tag,
          ok(`${command.kind.toUpperCase()} completed`, null, 'authenticated'),
          'none',
        );
      }
      case 'expunge':
        return this.complete(tag, await messages.expunge(ctx, command));
      case 'fetch':
        return this.complete(tag, await messages.fetch(ctx, command), command.uid ? 'all' : 'no-expunge');
      case 'store':
        return this.complete(tag, await messages.store(ctx, command), command.uid ? 'all' : 'no-expunge');
      case 'copy':
      case 'move':
        return this.complete(
          tag,
          await messages.copyOrMove(ctx, command),
          command.uid ? 'all' : 'no-expunge',
        );
      case 'search':
      case 'sort':
      case 'thread':
        return this.complete(
          tag,
          await messages.search(ctx, command, tag, this.contexts),
          command.uid ? 'all' : 'no-expunge',
        );
      case 'cancelupdate':
        this.contexts.cancel(command.tags);
        return this.complete(tag, ok('CANCELUPDATE completed'));
      default:
        // Every other kind was answered by the first switch.
        return this.complete(tag, bad('Unexpected command'));
    }
  }

  /** COMPRESS=DEFLATE (RFC 4978): the OK goes out uncompressed, everything after it compressed. */
  private compress(tag: string, algorithm: string): Effect[] {
    if (this.shell.compressed) {
      this.shell.write(formatTagged(tag, 'NO', { kind: 'COMPRESSIONACTIVE' }, 'Already compressing'));
      return this.session.resume();
    }
    if (algorithm.toUpperCase() !== 'DEFLATE') {
      this.shell.write(formatTagged(tag, 'BAD', null, `Unknown compression algorithm ${algorithm}`));
      return this.session.resume();
    }
    this.shell.write(formatTagged(tag, 'OK', null, 'DEFLATE active'));
    const dropped = this.shell.startCompression() + this.session.compressionStarted();
    if (dropped > 0)
      this.log.warn(Events.imapViolation, { what: 'bytes after COMPRESS discarded', bytes: dropped });
    return this.session.resume();
  }

  private enable(capabilities: readonly string[]): Completion {
    const done: string[] = [];
    for (const cap of capabilities) {
      const upper = cap.toUpperCase();
      if (upper === 'CONDSTORE' && !this.enabled.condstore) {
        this.enabled.condstore = true;
        done.push('CONDSTORE');
      } else if (upper === 'QRESYNC' && !this.enabled.qresync) {
        // QRESYNC implies CONDSTORE (RFC 7162 §3.2.3).
        this.enabled.qresync = true;
        this.enabled.condstore = true;
        done.push('QRESYNC');
      } else if (upper === 'UTF8=ACCEPT' && !this.enabled.utf8) {
        this.enabled.utf8 = true;
        done.push('UTF8=ACCEPT');
      } else if (upper === 'IMAP4REV2' && !this.enabled.imap4rev2) {
        this.enabled.imap4rev2 = true;
        this.enabled.utf8 = true;
        done.push('IMAP4rev2');
      }
    }
    this.shell.write(formatEnabled(done));
    return ok('ENABLE completed');
  }

  // --- selection and updates ----------------------------------------------------------------------

  private selectView(view: SelectedView): void {
    this.view = view;
    this.dirty = false;
    view.beforeExpunge = (uids) => this.contexts.beforeExpunge(view, uids);
    const user = this.user!;
    this.unwatch = this.store.watch(user, view.folder, (event: FolderEvent) => this.onFolderEvent(event));
  }

  private deselect(): void {
    this.unwatch?.();
    this.unwatch = null;
    this.view = null;
    this.dirty = false;
    this.selectedGone = false;
    this.savedResult = null;
    this.contexts.clear();
  }

  private onFolderEvent(event: FolderEvent): void {
    const view = this.view;
    if (view === null) return;
    if (event.kind === 'gone') {
      // Deleted or renamed away by someone else: the client's numbers mean nothing any more. RFC 9051
      // leaves the way out to the server; like Dovecot, Tern ends the connection at the next point that
      // allows untagged data, and the client reconnects and lists again.
      this.selectedGone = true;
      this.dirty = true;
      if (this.idleTag !== null || this.pushesSelected()) this.schedulePush();
      return;
    }
    if (event.highestModseq <= view.highestModseq) return;
    this.dirty = true;
    if (this.idleTag !== null || this.pushesSelected()) this.schedulePush();
  }

  /** NOTIFY SELECTED with message events: the selected folder's changes go out between commands too. */
  private pushesSelected(): boolean {
    return this.notifier?.selected?.events.messageNew === true;
  }

  private notifierOf(user: string): Notifier {
    this.notifier ??= new Notifier({
      user,
      store: this.store,
      selectedFolder: () => this.view?.folder ?? null,
      wake: () => this.schedulePush(),
    });
    return this.notifier;
  }

  /**
   * Send updates now if no command runs (IDLE, or between commands under NOTIFY); otherwise run()
   * sends them when its command is done.
   */
  private schedulePush(): void {
    if (this.pushQueued || this.busy) return;
    this.pushQueued = true;
    this.pushChain = this.pushChain.then(async () => {
      this.pushQueued = false;
      // A command that began meanwhile sends them itself; an APPEND or AUTHENTICATE in progress waits.
      if (this.busy || this.shell.closed || this.user === null) return;
      if (this.append !== null || this.authTag !== null) return;
      try {
        const idling = this.idleTag !== null;
        if (idling || this.pushesSelected())
          // SELECTED-DELAYED holds expunges back until a command allows them (RFC 5465 §6.1).
          await this.sendUpdates(idling || this.notifier?.selected?.delayed !== true);
        if (this.user !== null && !this.shell.closed) await this.notifier?.flush(this.context());
      } catch (err) {
        this.log.error(Events.imapInternalError, { what: 'unsolicited update', error: String(err) });
      }
    });
  }

  /** The view's updates, then the ESEARCH ADDTO/REMOVEFROM they caused (RFC 5267 §4.3.2). */
  private async sendUpdates(allowExpunge: boolean): Promise<void> {
    await this.sendViewUpdates(allowExpunge);
    if (this.view !== null && this.user !== null && !this.shell.closed && this.contexts.size > 0)
      await this.contexts.refresh(this.context());
  }

  /** Untagged EXPUNGE/EXISTS/FETCH for what changed since the view was last brought up to date. */
  private async sendViewUpdates(allowExpunge: boolean): Promise<void> {
    const view = this.view;
    const user = this.user;
    if (view === null || user === null) return;
    if (!this.dirty) {
      // Expunges held back during an earlier FETCH/STORE/SEARCH go out at the first point that allows them.
      if (allowExpunge && view.hasPendingExpunges) {
        const empty = { highestModseq: view.highestModseq, changed: [], vanished: [] };
        for (const line of view.applyChanges(empty, true, this.enabled)) this.shell.write(line);
      }
      return;
    }
    this.dirty = false;
    if (this.selectedGone) {
      this.bye(SELECTED_GONE);
      return;
    }
    let changes;
    try {
      changes = await this.store.changesSince(user, view.folder, view.highestModseq);
    } catch {
      // Gone: RFC 9051 leaves it to the server; the client learns at its next command's NO.
      return;
    }
    if (changes.uidValidity !== view.uidValidity || this.view !== view) return;
    const arrived = changes.changed.some((m) => m.uid > view.maxUid);
    // New mail is \Recent to the first session that learns of it (RFC 3501 §2.3.2).
    const claimed =
      arrived && view.showRecent && !view.readOnly ? await this.store.claimRecent(user, view.folder) : null;
    const maxUidBefore = view.maxUid;
    const lines = view.applyChanges(changes, allowExpunge, this.enabled);
    if (claimed !== null) {
      view.markRecent(claimed.from, claimed.to);
      const exists = lines.findIndex((l) => / EXISTS\r\n$/.test(l));
      if (exists >= 0) lines.splice(exists + 1, 0, formatUntagged(`${view.recentCount} RECENT`));
    }
    for (const line of lines) this.shell.write(line);
    // NOTIFY's MessageNew fetch attributes follow the EXISTS (RFC 5465 §5.2).
    const fetch = this.notifier?.selected?.events.fetch ?? null;
    if (fetch !== null && view.maxUid > maxUidBefore) {
      const items = fetch.some((i) => i.kind === 'uid') ? fetch : [...fetch, { kind: 'uid' as const }];
      await messages.fetch(this.context(), {
        kind: 'fetch',
        uid: true,
        set: { kind: 'set', ranges: [{ from: maxUidBefore + 1, to: view.maxUid }] },
        macro: null,
        items,
        changedSince: null,
        vanished: false,
      });
    }
  }

  // --- raw lines: IDLE's DONE and AUTHENTICATE responses ------------------------------------------

  private async rawLine(bytes: Uint8Array, tooLong: boolean): Promise<Effect[]> {
    const line = new TextDecoder().decode(bytes);
    if (this.idleTag !== null) {
      const tag = this.idleTag;
      this.idleTag = null;
      this.armIdleTimer();
      if (tooLong) return this.complete(tag, bad('Line too long, expected DONE', { kind: 'TOOBIG' }), 'none');
      if (line.toUpperCase() !== 'DONE') return this.complete(tag, bad('Expected DONE'), 'none');
      return this.complete(tag, ok('IDLE terminated'));
    }
    if (this.authTag !== null && tooLong) {
      // The exchange ends here; the SASL drive starts afresh at the next AUTHENTICATE.
      const tag = this.authTag;
      this.authTag = null;
      this.shell.write(formatAuthStep(tag, imapSaslFraming.failure('line-too-long')));
      return this.session.resume();
    }
    if (this.authTag !== null) return this.authStep(await this.sasl.line(line));
    return this.session.resume();
  }

  // --- STARTTLS and logins ------------------------------------------------------------------------

  private async startTls(tag: string): Promise<Effect[]> {
    this.shell.write(formatTagged(tag, 'OK', null, 'Begin TLS negotiation now'));
    const result = await this.shell.startTls();
    const dropped = this.session.tlsStarted() + result.discardedBytes;
    // SECURITY: bytes sent after STARTTLS before the handshake are never read as commands.
    if (dropped > 0)
      this.log.warn(Events.imapViolation, { what: 'bytes after STARTTLS discarded', bytes: dropped });
    if (!result.ok) return [];
    this.log.event(Events.imapTls, { ...result.tls });
    this.armIdleTimer();
    return this.session.resume();
  }

  private async login(tag: string, step: SaslStep<ImapAuthStep> | null): Promise<Effect[]> {
    if (step === null) return [];
    if (step.kind === 'challenge') {
      // A password login is PLAIN with its response given: it never asks for more.
      return this.complete(tag, no('Authentication failed', { kind: 'AUTHENTICATIONFAILED' }), 'none');
    }
    if (step.kind === 'failure') {
      this.shell.write(formatAuthStep(tag, step.out));
      if (step.close) return this.closeAfterFailures();
      return this.session.resume();
    }
    return this.loggedIn(tag, step.identity);
  }

  private async authStep(step: SaslStep<ImapAuthStep> | null): Promise<Effect[]> {
    const tag = this.authTag;
    if (step === null || tag === null) return [];
    if (step.kind === 'challenge') {
      this.shell.write(formatAuthStep(tag, step.out));
      return this.session.expectLine();
    }
    this.authTag = null;
    if (step.kind === 'failure') {
      this.shell.write(formatAuthStep(tag, step.out));
      if (step.close) return this.closeAfterFailures();
      return this.session.resume();
    }
    return this.loggedIn(tag, step.identity);
  }

  private closeAfterFailures(): Effect[] {
    this.bye('Too many failed authentications');
    return [];
  }

  private async loggedIn(tag: string, identity: string): Promise<Effect[]> {
    const user = identity.toLowerCase();
    const slots = this.deps.imap.userSlots;
    if (!(await slots.acquire(user, this.deps.config.imap.maxConnectionsPerUser))) {
      this.shell.write(formatTagged(tag, 'NO', { kind: 'LIMIT' }, 'Too many connections for this user'));
      return this.session.resume();
    }
    // The connection may have ended while the slot was being granted: nothing would give it back.
    if (this.shell.closed) {
      slots.release(user);
      return [];
    }
    this.user = user;
    await this.store.ensureDefaults(user);
    // RFC 9051 §7.1: the capabilities change at login; send them with the OK.
    this.shell.write(
      formatTagged(tag, 'OK', { kind: 'CAPABILITY', capabilities: this.capabilities() }, 'Logged in'),
    );
    return this.session.resume('authenticated');
  }

  private releaseUser(): void {
    const user = this.user;
    if (user === null) return;
    this.user = null;
    this.deps.imap.userSlots.release(user);
  }

  // --- APPEND -------------------------------------------------------------------------------------

  private async appendLiteral(e: Extract<Effect, { kind: 'append-literal' }>): Promise<Effect[]> {
    const ctx = this.context();
    if (e.index === 0) this.append = new AppendCommand(e.mailbox);
    const append = this.append;
    if (append === null)
      return this.session.refuseLiteral(e.tag, formatTagged(e.tag, 'BAD', null, 'APPEND out of order'));
    const refusal = await append.begin(ctx, e);
    if (refusal !== null) {
      this.append = null;
      await append.abort(ctx);
      return this.session.refuseLiteral(
        e.tag,
        formatTagged(e.tag, refusal.status, refusal.code, refusal.text),
      );
    }
    return this.session.acceptLiteral(e.sync);
  }

  // --- closing ------------------------------------------------------------------------------------

  private bye(text: string, code: Parameters<typeof formatUntaggedStatus>[1] = null): void {
    this.session.close();
    this.shell.end(formatUntaggedStatus('BYE', code, text));
  }

  private finish(reason: string): void {
    this.session.close();
    this.notifier?.stop();
    this.notifier = null;
    this.unwatch?.();
    this.unwatch = null;
    const append = this.append;
    this.append = null;
    const aborting = append !== null && this.user !== null ? append.abort(this.context()) : null;
    this.releaseUser();
    if (aborting === null) {
      this.log.event(Events.imapClose, { reason });
      return;
    }
    // Logged once nothing of the cut-short APPEND is left in the store.
    void aborting.then(
      () => this.log.event(Events.imapClose, { reason, appendAborted: true }),
      (err: unknown) =>
        this.log.error(Events.imapInternalError, { what: 'abort append', error: String(err) }),
    );
  }
}
