// Message bodies in PostgreSQL: content-addressed blobs (SHA-256) stored as chunk rows of at most 256 KiB,
// streamed in and out so a 100 MiB message never sits in memory, shared by every message that holds the
// same bytes (deliverAccepted's copies, COPY, and independent deliveries of identical content), counted
// by `refs` and reclaimed by a sweep once unused for a grace period. See postgres-mailbox-schema.ts for
// the tables and why staging rows exist.
//
// Upload: a body of at most one chunk is hashed in memory and goes into the delivery's own transaction
// (one INSERT ... ON CONFLICT on the hash); a larger one is uploaded first, chunk by chunk in autocommit
// statements, into a staging row (sha256 NULL), hashing as it goes, and the delivery's transaction then
// either names the staging row by its hash or, when that content is already stored, adds references to
// the existing blob and the caller drops the staging row after the commit. An upload a crash cut short
// is a staging row the sweep removes after stagingMaxAgeMs. Download: one statement per chunk, the next
// one fetched while the current one is consumed.
// Deliberately NOT here: message rows, folders, anything that decides what a blob belongs to.

import { createHash } from 'node:crypto';
import type { PgPool } from '../db/postgres.ts';
import { pgInt } from '../db/postgres.ts';
import type { Queryable } from './postgres-mailbox-schema.ts';
import { bytesOrNull, row, rows } from './postgres-mailbox-schema.ts';

/** The largest chunk row: big enough that a 100 MiB body is 400 rows, small enough to hold a few at once. */
export const CHUNK_BYTES = 256 * 1024;

/** A body read in and hashed, not yet referenced by any message. */
export type StagedBody =
  /** At most one chunk, held in memory: it goes into the delivery's transaction. */
  | { readonly kind: 'inline'; readonly sha256: Buffer; readonly bytes: Buffer; readonly sizeBytes: number }
  /** Uploaded into the staging blob row `stagingId`. */
  | {
      readonly kind: 'staged';
      readonly sha256: Buffer;
      readonly stagingId: number;
      readonly sizeBytes: number;
    };

/**
 * Read `content` to its end, hashing it; anything over one chunk goes to a staging row as it arrives.
 * Nothing is left behind when the content or the database fails (the error is rethrown).
 */
export async function stageBody(
  pool: PgPool,
  content: AsyncIterable<Uint8Array>,
  nowMs: number,
): Promise<StagedBody> {
  const hash = createHash('sha256');
  // One buffer reused for every chunk: an INSERT has sent its parameters once it resolves.
  const buffer = Buffer.allocUnsafe(CHUNK_BYTES);
  let fill = 0;
  let sizeBytes = 0;
  let seq = 0;
  let stagingId: number | null = null;
  const flush = async (): Promise<void> => {
    stagingId ??= pgInt(
      (await row(pool, 'INSERT INTO mail_blobs (staged_ms) VALUES ($1) RETURNING id', [nowMs]))!,
      'id',
    );
    await pool.query('INSERT INTO mail_blob_chunks (blob_id, seq, data) VALUES ($1, $2, $3)', [
      stagingId,
      seq++,
      buffer.subarray(0, fill),
    ]);
    fill = 0;
  };
  try {
    for await (const chunk of content) {
      hash.update(chunk);
      sizeBytes += chunk.byteLength;
      let at = 0;
      while (at < chunk.byteLength) {
        // A full buffer is written only once more bytes come: a body of exactly one chunk stays inline.
        if (fill === CHUNK_BYTES) await flush();
        const n = Math.min(CHUNK_BYTES - fill, chunk.byteLength - at);
        buffer.set(chunk.subarray(at, at + n), fill);
        fill += n;
        at += n;
      }
    }
    const sha256 = hash.digest();
    if (stagingId === null) {
      return { kind: 'inline', sha256, bytes: Buffer.from(buffer.subarray(0, fill)), sizeBytes };
    }
    if (fill > 0) await flush();
    return { kind: 'staged', sha256, stagingId, sizeBytes };
  } catch (err) {
    if (stagingId !== null) await dropStaging(pool, stagingId).catch(() => undefined);
    throw err;
  }
}

/** Forget an upload that did not become a blob (its delivery failed, repeated, or found the content stored). */
export async function dropStaging(db: Queryable, stagingId: number): Promise<void> {
  // Only while still a staging row: one a committed delivery named by its hash is a blob now.
  await db.query('DELETE FROM mail_blobs WHERE id = $1 AND sha256 IS NULL', [stagingId]);
}

/**
 * In the delivery's transaction: the id of the blob holding `body`, with `refs` more references. When the
 * content was stored already its staging row stays unused: the caller drops it after the transaction in
 * any case (dropStaging leaves a staging row alone once it has become a blob). A concurrent commit of the
 * same new content makes this fail with 23505; the transaction is retried and then finds that blob.
 */
export async function attachBlob(tx: Queryable, body: StagedBody, refs: number): Promise<number> {
  if (body.kind === 'inline') {
    const r = await row(
      tx,
      `INSERT INTO mail_blobs (sha256, size_bytes, refs) VALUES ($1, $2, $3)
       ON CONFLICT (sha256) DO UPDATE SET refs = mail_blobs.refs + excluded.refs, orphaned_ms = NULL
       RETURNING id, (xmax = 0) AS inserted`,
      [body.sha256, body.sizeBytes, refs],
    );
    const blobId = pgInt(r!, 'id');
    if (r!['inserted'] === true && body.sizeBytes > 0) {
      await tx.query('INSERT INTO mail_blob_chunks (blob_id, seq, data) VALUES ($1, 0, $2)', [
        blobId,
        body.bytes,
      ]);
    }
    return blobId;
  }
  const existing = await row(
    tx,
    'UPDATE mail_blobs SET refs = refs + $2, orphaned_ms = NULL WHERE sha256 = $1 RETURNING id',
    [body.sha256, refs],
  );
  if (existing !== null) return pgInt(existing, 'id');
  const named = await row(
    tx,
    `UPDATE mail_blobs SET sha256 = $2, size_bytes = $3, refs = $4, staged_ms = NULL
     WHERE id = $1 AND sha256 IS NULL RETURNING id`,
    [body.stagingId, body.sha256, body.sizeBytes, refs],
  );
  if (named === null)
    throw new Error('mailbox store: an uploaded body vanished before its delivery committed');
  return body.stagingId;
}

/** In a transaction: `count` more references to each blob (COPY). */
export async function addRefs(tx: Queryable, counts: ReadonlyMap<number, number>): Promise<void> {
  if (counts.size === 0) return;
  await tx.query(
    `UPDATE mail_blobs b SET refs = b.refs + d.n, orphaned_ms = NULL
     FROM unnest($1::bigint[], $2::int[]) AS d(id, n) WHERE b.id = d.id`,
    [[...counts.keys()], [...counts.values()]],
  );
}

/**
 * In a transaction: `count` fewer references to each blob; a blob left with none is orphaned from now
 * (the sweep deletes it after the grace period). Returns how many were orphaned.
 */
export async function releaseRefs(
  tx: Queryable,
  counts: ReadonlyMap<number, number>,
  nowMs: number,
): Promise<number> {
  if (counts.size === 0) return 0;
  const released = await rows(
    tx,
    `UPDATE mail_blobs b SET refs = b.refs - d.n,
       orphaned_ms = CASE WHEN b.refs - d.n = 0 THEN $3::bigint ELSE b.orphaned_ms END
     FROM unnest($1::bigint[], $2::int[]) AS d(id, n) WHERE b.id = d.id RETURNING b.refs`,
    [[...counts.keys()], [...counts.values()], nowMs],
  );
  return released.filter((r) => pgInt(r, 'refs') === 0).length;
}

/** Blob ids of removed message rows, counted. */
export function countBlobs(removed: readonly { readonly blobId: number }[]): Map<number, number> {
  const counts = new Map<number, number>();
  for (const { blobId } of removed) counts.set(blobId, (counts.get(blobId) ?? 0) + 1);
  return counts;
}

/**
 * Delete blobs unused since before `orphanedBeforeMs` and staging rows older than `stagedBeforeMs`, a
 * batch at a time; returns how many went. Safe beside deliveries on other nodes: the DELETE re-checks
 * `refs = 0` on the row a concurrent delivery may have just referenced again (and waits for its lock).
 */
export async function sweepBlobs(
  pool: PgPool,
  orphanedBeforeMs: number,
  stagedBeforeMs: number,
): Promise<number> {
  let removed = 0;
  const candidates = await rows(
    pool,
    `(SELECT id FROM mail_blobs WHERE refs = 0 AND sha256 IS NOT NULL AND orphaned_ms <= $1 LIMIT 200)
     UNION ALL
     (SELECT id FROM mail_blobs WHERE sha256 IS NULL AND staged_ms <= $2 LIMIT 200)`,
    [orphanedBeforeMs, stagedBeforeMs],
  );
  for (const c of candidates) {
    // One statement per blob: a blob whose count drifted (the foreign key refuses) must not stop the rest.
    const r = await pool
      .query(
        `DELETE FROM mail_blobs WHERE id = $1 AND refs = 0
           AND ((sha256 IS NOT NULL AND orphaned_ms <= $2) OR (sha256 IS NULL AND staged_ms <= $3))`,
        [pgInt(c, 'id'), orphanedBeforeMs, stagedBeforeMs],
      )
      .catch(() => null);
    removed += r?.rowCount ?? 0;
  }
  return removed;
}

/** What a reader needs of one stored message: its head, its blob, and the blob's bytes when small. */
export interface BodyRef {
  readonly head: Buffer | null;
  readonly blobId: number;
  readonly blobBytes: number;
  /** The whole blob when it is one chunk (read with the message row, so an expunge cannot cut it short). */
  readonly small: Buffer | null;
}

/** The select-list a reader's query adds for toBodyRef (`m` the message, `b` its blob, `c` chunk 0). */
export const BODY_COLUMNS = `m.head, m.blob_id, b.size_bytes AS blob_bytes,
  CASE WHEN b.size_bytes <= ${CHUNK_BYTES} THEN c.data END AS small`;
/** The joins BODY_COLUMNS reads from. */
export const BODY_JOINS = `JOIN mail_blobs b ON b.id = m.blob_id
  LEFT JOIN mail_blob_chunks c ON c.blob_id = m.blob_id AND c.seq = 0 AND b.size_bytes <= ${CHUNK_BYTES}`;

export function toBodyRef(r: Record<string, unknown>): BodyRef {
  const blobBytes = pgInt(r, 'blob_bytes');
  return {
    head: bytesOrNull(r, 'head'),
    blobId: pgInt(r, 'blob_id'),
    blobBytes,
    small: blobBytes <= CHUNK_BYTES ? (bytesOrNull(r, 'small') ?? Buffer.alloc(0)) : null,
  };
}

/** Bytes [start, end) of head ‖ blob, clamped by the caller; large blobs are read chunk by chunk. */
export async function* readBody(
  pool: PgPool,
  ref: BodyRef,
  start: number,
  end: number,
): AsyncGenerator<Buffer> {
  const headBytes = ref.head?.byteLength ?? 0;
  if (ref.head !== null && start < headBytes) {
    const upTo = Math.min(end, headBytes);
    if (upTo > start) yield ref.head.subarray(start, upTo);
  }
  const from = Math.max(start, headBytes) - headBytes;
  const to = end - headBytes;
  if (to <= from) return;
  if (ref.small !== null) {
    yield ref.small.subarray(from, to);
    return;
  }
  yield* readChunks(pool, ref.blobId, from, to);
}

async function* readChunks(pool: PgPool, blobId: number, start: number, end: number): AsyncGenerator<Buffer> {
  const first = Math.floor(start / CHUNK_BYTES);
  const last = Math.floor((end - 1) / CHUNK_BYTES);
  const fetch = async (seq: number): Promise<Buffer> => {
    const base = seq * CHUNK_BYTES;
    const from = Math.max(start, base) - base;
    const to = Math.min(end, base + CHUNK_BYTES) - base;
    const r = await row(
      pool,
      'SELECT substring(data FROM $3 FOR $4) AS data FROM mail_blob_chunks WHERE blob_id = $1 AND seq = $2',
      [blobId, seq, from + 1, to - from],
    );
    const data = r === null ? null : bytesOrNull(r, 'data');
    if (data === null || data.byteLength !== to - from) {
      throw new Error(`mailbox store: body ${blobId} is short at chunk ${seq} (reclaimed while read?)`);
    }
    return data;
  };
  let next: Promise<Buffer> | null = fetch(first);
  try {
    for (let seq = first; seq <= last; seq++) {
      const current: Promise<Buffer> = next!;
      next = seq < last ? fetch(seq + 1) : null;
      yield await current;
    }
  } finally {
    // A reader that stops early leaves one fetch in flight: its failure is nobody's concern.
    next?.catch(() => undefined);
  }
}
