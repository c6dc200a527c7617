// Reload (SIGHUP, `tern reload`): a new configuration snapshot, parsed and checked whole, swapped in for
// new sessions. applySnapshot() builds what the snapshot needs beyond the file (the TLS certificate and
// key read again, so a renewal is served; the client CA; the bearer-token verifier) and hands it to the
// listeners, which bind what the file adds before anything changes; any failure refuses the whole
// snapshot and the running one stays. createReloader() serializes attempts, logs each outcome, and
// writes it to <data_dir>/tern.reload, where `tern reload` reads the answer to its signal.
// What a reload does not change (the delivery worker, the stores, the resolver and the logger keep the
// snapshot they started with) is listed in RESTART_ONLY and reported when the file changes it; moving
// data_dir is refused outright (the lock, the queue and the mailboxes are there).
// Deliberately NOT here: reading the file (the caller's loader, the CLI's) and signal handling (main.ts).

import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '../config/config.ts';
import { ConfigLoadError, formatConfigErrors, lineOfKey } from '../config/load.ts';
import type { ConfigError } from '../config/load.ts';
import { Events } from '../core/events.ts';
import type { Logger } from '../core/ports.ts';
import { loadTlsMaterial, TlsMaterialError } from '../net/tls.ts';
import { createTokenVerifier, TokenVerifierConfigError } from '../net/token-verifier.ts';
import { loadFilterPlugins } from './filter-plugins.ts';
import type { ListenerChanges, ListenerDeps, RunningListeners } from './listeners.ts';
import { ListenerBindError } from './listeners.ts';

/** Config keys a reload reads but only a restart applies: the delivery side, the logger, the threads. */
export const RESTART_ONLY = [
  ['local_domains', (c: Config) => c.localDomains],
  ['recipient_delimiter', (c: Config) => c.recipientDelimiter],
  ['log', (c: Config) => c.log],
  ['dns', (c: Config) => c.dns],
  ['outbound', (c: Config) => c.outbound],
  ['queue', (c: Config) => c.queue],
  ['server', (c: Config) => c.server],
  ['trace', (c: Config) => c.trace],
  // The admin page's listeners are bound once at start; [admin]'s other keys apply at once.
  ['listeners (service = "admin")', (c: Config) => c.admin.listeners],
  ['listeners (service = "mta-sts")', (c: Config) => c.mtaStsPublish.listeners],
] as const;

/** The keys of RESTART_ONLY whose value differs between what runs and the new file. */
export function restartOnlyChanges(running: Config, next: Config): string[] {
  return RESTART_ONLY.filter(([, get]) => JSON.stringify(get(running)) !== JSON.stringify(get(next))).map(
    ([key]) => key,
  );
}

/**
 * `FILE:LINE: listeners[1].address: 127.0.0.1:2525 is in use`: the listener's place in the file, read
 * again for the line (best effort: without the file or the key, only what is known is given).
 */
export function describeListenerError(err: ListenerBindError, source: string | null): string {
  const key = `listeners[${err.index}].address`;
  if (source === null) return `${key} (a default listener): ${err.message}`;
  let line: number | null = null;
  try {
    line = lineOfKey(readFileSync(source, 'utf8'), ['listeners', err.index, 'address']);
  } catch {
    // The file went away since it was read: the key alone still says which listener.
  }
  return formatConfigErrors([{ key, line, message: err.message }], source);
}

export type ReloadResult =
  | {
      readonly ok: true;
      readonly config: Config;
      readonly changes: ListenerChanges;
      readonly restartNeeded: readonly string[];
    }
  | { readonly ok: false; readonly errors: readonly string[] };

export interface SnapshotDeps {
  /** The snapshot the server started with: the data directory and the delivery side run on it. */
  readonly startConfig: Config;
  readonly listeners: RunningListeners;
  /** What the listeners keep across reloads (queue, directory, resolver, clock, logger). */
  readonly base: Omit<ListenerDeps, 'config' | 'tls' | 'tokens'>;
  readonly logger: Logger;
  /** The certificate a reload read, for whoever else serves TLS with it (the admin listener). */
  readonly onTls?: (tls: { readonly cert: string; readonly key: string }) => void;
}

async function readClientCa(path: string | null): Promise<string | null> {
  if (path === null) return null;
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new ClientCaError(`tls.client_ca: cannot read ${JSON.stringify(path)}: ${(err as Error).message}`);
  }
}

class ClientCaError extends Error {}

/** Build what `next` needs and swap it in for new sessions, or refuse it whole with the reasons. */
export async function applySnapshot(deps: SnapshotDeps, next: Config): Promise<ReloadResult> {
  const { startConfig } = deps;
  const where = next.source ?? '(built-in defaults)';
  if (next.dataDir !== startConfig.dataDir) {
    return {
      ok: false,
      errors: [
        formatConfigErrors(
          [
            {
              key: 'data_dir',
              line: null,
              message: `changed from ${JSON.stringify(startConfig.dataDir)} to ${JSON.stringify(next.dataDir)}; a reload cannot move the data directory (its lock, queue and mailboxes stay where they are): restart tern serve`,
            },
          ],
          where,
        ),
      ],
    };
  }
  if (next.catch !== startConfig.catch) {
    // SECURITY: sessions and the delivery worker must agree; sessions that accept anything while the
    // worker delivers for real would be an open relay.
    return {
      ok: false,
      errors: [
        formatConfigErrors(
          [
            {
              key: 'catch',
              line: null,
              message: `changed from ${String(startConfig.catch)} to ${String(next.catch)}; catcher mode is switched at start only: restart tern serve`,
            },
          ],
          where,
        ),
      ],
    };
  }
  try {
    // The certificate files are read again even when their names did not change: that is a renewal.
    const tls = await loadTlsMaterial(next, deps.logger);
    const clientCa = await readClientCa(next.tls.clientCa);
    const tokens = next.auth.oauth === null ? null : await createTokenVerifier(next.auth.oauth);
    const plugins = await loadFilterPlugins(next);
    const changes = await deps.listeners.reload({
      ...deps.base,
      config: next,
      tls: { cert: tls.cert, key: tls.key, clientCa },
      tokens,
      plugins,
    });
    deps.onTls?.({ cert: tls.cert, key: tls.key });
    return { ok: true, config: next, changes, restartNeeded: restartOnlyChanges(startConfig, next) };
  } catch (err) {
    if (err instanceof ListenerBindError)
      return { ok: false, errors: [describeListenerError(err, next.source)] };
    if (
      err instanceof TlsMaterialError ||
      err instanceof TokenVerifierConfigError ||
      err instanceof ClientCaError
    ) {
      return { ok: false, errors: [`${where}: ${err.message}`] };
    }
    return { ok: false, errors: [`${where}: ${err instanceof Error ? err.message : String(err)}`] };
  }
}

// ---------------------------------------------------------------------------------------------------
// The outcome file `tern reload` waits on.

export const RELOAD_STATUS_FILE = 'tern.reload';

/** The last reload attempt of the server with `pid`; `attempt` counts from 1 per server process. */
export interface ReloadStatus {
  readonly pid: number;
  readonly attempt: number;
  readonly ok: boolean;
  readonly errors: readonly string[];
  readonly restartNeeded: readonly string[];
  readonly atMs: number;
}

export function reloadStatusPath(dataDir: string): string {
  return join(dataDir, RELOAD_STATUS_FILE);
}

export function readReloadStatus(dataDir: string): ReloadStatus | null {
  try {
    const value = JSON.parse(readFileSync(reloadStatusPath(dataDir), 'utf8')) as Partial<ReloadStatus>;
    if (typeof value.pid !== 'number' || typeof value.attempt !== 'number') return null;
    return {
      pid: value.pid,
      attempt: value.attempt,
      ok: value.ok === true,
      errors: Array.isArray(value.errors) ? value.errors.map(String) : [],
      restartNeeded: Array.isArray(value.restartNeeded) ? value.restartNeeded.map(String) : [],
      atMs: typeof value.atMs === 'number' ? value.atMs : 0,
    };
  } catch {
    return null;
  }
}

function writeReloadStatus(dataDir: string, status: ReloadStatus): void {
  const path = reloadStatusPath(dataDir);
  const tmp = `${path}.${process.pid}.tmp`;
  // Renamed into place so `tern reload` never reads half a file.
  writeFileSync(tmp, `${JSON.stringify(status)}\n`);
  renameSync(tmp, path);
}

// ---------------------------------------------------------------------------------------------------

/** A freshly read file: the snapshot and its warnings. Throws ConfigLoadError for a file with errors. */
export type SnapshotLoader = () => { config: Config; warnings: readonly ConfigError[] };

/** Log each warning of a file as it is loaded (at start and at each reload), in `FILE:LINE: key: message` form. */
export function logConfigWarnings(
  logger: Logger,
  warnings: readonly ConfigError[],
  source: string | null,
): void {
  for (const w of warnings) {
    logger.warn(Events.configWarning, {
      text: formatConfigErrors([w], source ?? '(built-in defaults)'),
      key: w.key,
      line: w.line,
      message: w.message,
    });
  }
}

export interface Reloader {
  /** Run one reload attempt (or, while one runs, one more after it); resolves when done. */
  trigger(): Promise<void>;
}

export function createReloader(options: {
  readonly load: SnapshotLoader;
  readonly apply: (next: Config) => Promise<ReloadResult>;
  readonly logger: Logger;
  /** Where the outcome file goes (the data directory). */
  readonly dataDir: string;
  readonly nowMs: () => number;
  readonly onApplied?: (result: Extract<ReloadResult, { ok: true }>) => void;
}): Reloader {
  const { logger } = options;
  let attempt = 0;
  let running: Promise<void> | null = null;
  let again = false;

  const once = async (): Promise<void> => {
    const n = ++attempt;
    let result: ReloadResult;
    try {
      const { config, warnings } = options.load();
      logConfigWarnings(logger, warnings, config.source);
      result = await options.apply(config);
    } catch (err) {
      const errors =
        err instanceof ConfigLoadError
          ? err.message.split('\n')
          : [err instanceof Error ? err.message : String(err)];
      result = { ok: false, errors };
    }
    if (result.ok) {
      logger.event(Events.configReloaded, {
        attempt: n,
        config: result.config.source,
        added: result.changes.added.map((b) => `${b.service} ${b.host}:${b.port} ${b.tls}`),
        removed: result.changes.removed.map((b) => `${b.service} ${b.host}:${b.port} ${b.tls}`),
      });
      if (result.restartNeeded.length > 0) {
        logger.warn(Events.configReloadRestartNeeded, { attempt: n, keys: result.restartNeeded });
      }
      options.onApplied?.(result);
    } else {
      logger.error(Events.configReloadRefused, { attempt: n, errors: result.errors });
    }
    try {
      writeReloadStatus(options.dataDir, {
        pid: process.pid,
        attempt: n,
        ok: result.ok,
        errors: result.ok ? [] : result.errors,
        restartNeeded: result.ok ? result.restartNeeded : [],
        atMs: options.nowMs(),
      });
    } catch (err) {
      logger.error(Events.configReloadStatusFailed, { err });
    }
  };

  return {
    trigger(): Promise<void> {
      if (running !== null) {
        again = true;
        return running;
      }
      running = (async () => {
        try {
          do {
            again = false;
            await once();
          } while (again);
        } finally {
          running = null;
        }
      })();
      return running;
    },
  };
}
