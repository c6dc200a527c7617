// SEARCH, SORT and THREAD: XXX until the pure evaluators land.
import { no, type CommandOf, type Completion, type ImapContext } from './context.ts';

export function search(
  _ctx: ImapContext,
  _cmd: CommandOf<'search'> | CommandOf<'sort'> | CommandOf<'thread'>,
): Promise<Completion> {
  return Promise.resolve(no('not yet'));
}
