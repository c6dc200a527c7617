// A stored message, or a range of it, read into memory: for the parts FETCH and SEARCH must hold whole
// (a header section, a part to decode, a message to search). BODY[] itself streams (fetch.ts).

import type { StoredMessage } from '../../store/mailbox-store.ts';

/** The octets of what was opened, or null when it is gone; closed either way. */
export async function readStored(opened: Promise<StoredMessage | null>): Promise<Uint8Array | null> {
  const stored = await opened;
  if (stored === null) return null;
  const chunks: Uint8Array[] = [];
  try {
    for await (const chunk of stored.content) chunks.push(chunk);
  } finally {
    await stored.close();
  }
  return Buffer.concat(chunks);
}
