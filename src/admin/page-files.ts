// The admin page's files (page/): HTML, CSS and TypeScript modules, read once at start. The browser gets
// the TypeScript with its types stripped (amaro, Node's own type stripper: the code is the same text with
// the annotations blanked, so line and column numbers match the source). No bundler, no build step, no
// file outside page/ is ever served.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { transformSync } from 'amaro';

const ROOT = join(import.meta.dirname, 'page');

const TYPES: Readonly<Record<string, string>> = {
  '.ts': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

export interface PageFile {
  readonly body: string;
  readonly contentType: string;
}

export class PageFiles {
  readonly #files = new Map<string, PageFile>();
  readonly #index: string;

  constructor(root = ROOT) {
    this.#index = readFileSync(join(root, 'index.html'), 'utf8');
    for (const entry of readdirSync(root, { recursive: true, withFileTypes: true })) {
      if (!entry.isFile()) continue;
      const dot = entry.name.lastIndexOf('.');
      const type = TYPES[entry.name.slice(dot)];
      if (type === undefined || entry.name.endsWith('.test.ts')) continue;
      const full = join(entry.parentPath, entry.name);
      const rel = full
        .slice(root.length + 1)
        .split('\\')
        .join('/');
      const text = readFileSync(full, 'utf8');
      const body = entry.name.endsWith('.ts') ? transformSync(text, { mode: 'strip-only' }).code : text;
      this.#files.set(rel, { body, contentType: type });
    }
  }

  index(): string {
    return this.#index;
  }

  /** A file by its path under page/ (as the page's imports name it), or null. */
  get(path: string): PageFile | null {
    return this.#files.get(path) ?? null;
  }
}
