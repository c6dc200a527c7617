// The worker thread behind checkpointer.ts: one SQLite connection per database file, each running
// PASSIVE checkpoints when asked, so copying the WAL into the database file and its two fsyncs never
// block the event loop. synchronous=NORMAL makes a checkpoint fsync the WAL before copying and the
// database file after, which is what makes the WAL safe to reuse afterwards.

import { parentPort } from 'node:worker_threads';
import { DatabaseSync } from 'node:sqlite';

export type CheckpointRequest =
  | { readonly kind: 'checkpoint'; readonly id: number; readonly path: string }
  | { readonly kind: 'forget'; readonly path: string };

export type CheckpointReply =
  | { readonly id: number; readonly ok: true; readonly busy: boolean; readonly walFrames: number }
  | { readonly id: number; readonly ok: false; readonly error: string };

const port = parentPort;
if (port === null) throw new Error('checkpoint-worker: must run as a worker thread');
const connections = new Map<string, DatabaseSync>();

function connection(path: string): DatabaseSync {
  let db = connections.get(path);
  if (db === undefined) {
    db = new DatabaseSync(path, { timeout: 5000 });
    db.exec('PRAGMA synchronous = NORMAL');
    db.exec('PRAGMA wal_autocheckpoint = 0');
    connections.set(path, db);
  }
  return db;
}

port.on('message', (msg: CheckpointRequest) => {
  if (msg.kind === 'forget') {
    connections.get(msg.path)?.close();
    connections.delete(msg.path);
    return;
  }
  let reply: CheckpointReply;
  try {
    const row = connection(msg.path).prepare('PRAGMA wal_checkpoint(PASSIVE)').get();
    reply = {
      id: msg.id,
      ok: true,
      busy: row?.['busy'] === 1,
      walFrames: Number(row?.['log'] ?? 0),
    };
  } catch (err) {
    reply = { id: msg.id, ok: false, error: err instanceof Error ? err.message : String(err) };
  }
  port.postMessage(reply);
});
