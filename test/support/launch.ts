// The Node flags the `tern` command runs with (the shebang of bin/tern.mjs, the same as `npm start`),
// so test servers, the soak and the bench run Tern's process as users do.

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export function ternNodeFlags(): string[] {
  const shebang = readFileSync(join(ROOT, 'bin', 'tern.mjs'), 'utf8').split('\n', 1)[0] ?? '';
  const m = /^#!\/usr\/bin\/env -S node(?: (.*))?$/.exec(shebang);
  return m?.[1]?.split(/\s+/).filter((f) => f.length > 0) ?? [];
}
