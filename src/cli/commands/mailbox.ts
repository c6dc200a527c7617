// `tern mailbox list|cat`: read a local user's stored mail without POP3/IMAP. `cat` writes the message
// bytes exactly as stored (no decoding, no line-ending changes), so it can be piped to other tools.

import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import type { MessageSummary } from '../../store/mailbox-store.ts';
import { userAddress } from '../addresses.ts';
import type { Command } from '../command.ts';
import { CliError, writeLine } from '../io.ts';
import { isoTime } from '../time.ts';

/** The JSON shape of one message in `mailbox list --json` (a stable, documented contract). */
export function messageJson(m: MessageSummary): Record<string, unknown> {
  return {
    id: m.id,
    uid: m.uid,
    mailbox: m.mailbox,
    from: m.from,
    subject: m.subject,
    size: m.sizeBytes,
    date: m.date,
    flags: [...m.flags],
    internalDate: new Date(m.internalDateMs).toISOString(),
  };
}

/** One line per message: a terminal is narrow, so long fields are cut. */
function shorten(text: string, max: number): string {
  const flat = text.replace(/[\r\n\t]+/g, ' ');
  return flat.length <= max ? flat : `${flat.slice(0, max - 1)}…`;
}

export const mailboxList: Command = {
  name: 'mailbox list',
  args: 'ADDRESS [--json]',
  summary: "list a local user's stored messages",
  flags: ['json'],
  minPositionals: 1,
  maxPositionals: 1,
  readOnly: true,
  async run(ctx, args) {
    const user = userAddress(args.positionals[0]!, ctx.config().localDomains);
    const messages = await ctx.withServices(['directory', 'store'], async ({ directory, store }) => {
      if (!(await directory.listUsers()).some((u) => u.address === user)) {
        throw new CliError(`no such user: ${user}`);
      }
      return store.list(user);
    });
    const { stdout } = ctx.io;
    if (args.flags.has('json')) {
      await writeLine(stdout, JSON.stringify(messages.map(messageJson), null, 2));
      return 0;
    }
    if (messages.length === 0) {
      await writeLine(stdout, `no messages for ${user}`);
      return 0;
    }
    const idWidth = Math.max(2, ...messages.map((m) => m.id.length));
    await writeLine(
      stdout,
      `${'ID'.padEnd(idWidth)}  ${'RECEIVED'.padEnd(24)}  ${'SIZE'.padStart(9)}  FROM / SUBJECT`,
    );
    for (const m of messages) {
      const received = isoTime(m.internalDateMs);
      await writeLine(
        stdout,
        `${m.id.padEnd(idWidth)}  ${received.padEnd(24)}  ${String(m.sizeBytes).padStart(9)}  ` +
          `${shorten(m.from, 40)} / ${shorten(m.subject, 60)}`,
      );
    }
    return 0;
  },
};

export const mailboxCat: Command = {
  name: 'mailbox cat',
  args: 'ADDRESS ID',
  summary: 'write one stored message, byte for byte, to stdout',
  flags: [],
  minPositionals: 2,
  maxPositionals: 2,
  readOnly: true,
  async run(ctx, args) {
    const user = userAddress(args.positionals[0]!, ctx.config().localDomains);
    const id = args.positionals[1]!;
    await ctx.withServices(['store'], async ({ store }) => {
      const content = store.read(user, id);
      if (content === null) throw new CliError(`no message ${id} for ${user}`);
      // end: false — stdout belongs to the process, not to this command.
      await pipeline(Readable.from(content, { objectMode: false }), ctx.io.stdout, { end: false });
    });
    return 0;
  },
};

export const mailboxCommands: readonly Command[] = [mailboxList, mailboxCat];
