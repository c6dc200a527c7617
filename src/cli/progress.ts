// A one-line progress bar on stderr for long CLI jobs (`mailbox import|export`): messages, bytes, rate
// and, when the total is known, a bar and a percentage. Only on a terminal: on a pipe or file it writes
// nothing, so logs and scripts see only the summary line. Redrawn at most every 100 ms.
// Deliberately not here: ETA guesses, colours, several lines. No RFC: ANSI `ESC [ K` clears the line.

import type { Writable } from 'node:stream';
import type { Clock } from '../core/ports.ts';

const REDRAW_MS = 100;
const BAR_WIDTH = 20;

/** 1234567 → "1.2 MB" (decimal units, as disk sizes are given). */
export function formatBytes(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

export class Progress {
  readonly #stream: Writable;
  readonly #clock: Clock;
  readonly #verb: string;
  readonly #startMs: number;
  readonly #enabled: boolean;
  #totalBytes: number | null;
  #messages = 0;
  #bytes = 0;
  #lastDrawMs = -Infinity;
  #drawn = false;

  readonly #unit: string;

  constructor(options: {
    stream: Writable;
    clock: Clock;
    verb: string;
    totalBytes?: number | null;
    /** What add() counts: "messages" unless said otherwise. */
    unit?: string;
  }) {
    this.#unit = options.unit ?? 'messages';
    this.#stream = options.stream;
    this.#clock = options.clock;
    this.#verb = options.verb;
    this.#totalBytes = options.totalBytes ?? null;
    this.#startMs = options.clock.nowMs();
    this.#enabled = (options.stream as { isTTY?: boolean }).isTTY === true;
  }

  setTotalBytes(bytes: number): void {
    this.#totalBytes = bytes;
  }

  /** Count finished messages and bytes; redraws when it is time. */
  add(messages: number, bytes: number): void {
    this.#messages += messages;
    this.#bytes += bytes;
    if (!this.#enabled) return;
    const now = this.#clock.nowMs();
    if (now - this.#lastDrawMs < REDRAW_MS) return;
    this.#lastDrawMs = now;
    this.#stream.write(`\r\x1b[K${this.line(now)}`);
    this.#drawn = true;
  }

  /** The text of the bar at `nowMs` (without the terminal's control characters). */
  line(nowMs: number): string {
    const seconds = Math.max((nowMs - this.#startMs) / 1000, 0.001);
    const perSecond = this.#unit === 'messages' ? 'msg/s' : `${this.#unit}/s`;
    const rate = `${formatBytes(this.#bytes / seconds)}/s, ${Math.round(this.#messages / seconds)} ${perSecond}`;
    const counts = `${this.#messages} ${this.#unit}, ${formatBytes(this.#bytes)}`;
    if (this.#totalBytes === null || this.#totalBytes <= 0) return `${this.#verb}: ${counts} (${rate})`;
    const share = Math.min(this.#bytes / this.#totalBytes, 1);
    const filled = Math.round(share * BAR_WIDTH);
    const bar = `[${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}]`;
    return `${this.#verb} ${bar} ${(share * 100).toFixed(0).padStart(3)}%  ${counts} (${rate})`;
  }

  /** Clear the bar so the summary line starts on a clean line. */
  finish(): void {
    if (this.#drawn) this.#stream.write('\r\x1b[K');
    this.#drawn = false;
  }
}
