// A stand-in session thread for coordinator.test.ts and worker-pool.test.ts: it speaks the pool's
// protocol (messages.ts) with no stores, so the tests can drive the main thread's side with real
// threads, real postMessage and real transferred sockets. Commands arrive as `session` ids:
// "greet" answers the socket and ends; "hold-maildrop:<user>" takes a maildrop lock through the
// coordinator and keeps the session open; "crash" throws, ending the thread.

import { parentPort, workerData } from 'node:worker_threads';
import type { Socket } from 'node:net';
import { CoordinatorClient } from './coordinator-client.ts';
import type { FromWorker, ToWorker } from './messages.ts';

if (parentPort === null) throw new Error('fixture: must run as a worker thread');
const port = parentPort;
const post = (msg: FromWorker): void => port.postMessage(msg);
const coordinator = new CoordinatorClient((id, call) => post({ kind: 'call', id, call }));

/** Test-only requests that are not part of the pool's protocol. */
type Extra =
  | { readonly kind: 'failures'; readonly ip: string; readonly n: number }
  | { readonly kind: 'slots'; readonly user: string; readonly max: number; readonly n: number };

port.on('message', (msg: ToWorker | Extra) => {
  switch (msg.kind) {
    case 'prepare':
      post({
        kind: 'prepared',
        gen: msg.gen,
        error: msg.config.hostname === 'refuse.test' ? 'refused' : null,
      });
      return;
    case 'session':
      return session(msg.socket, msg.id);
    case 'answer':
      coordinator.settle(msg.id, msg.ok, msg.ok ? msg.value : msg.error);
      return;
    case 'stop':
      coordinator.close('stopping');
      post({ kind: 'stopped' });
      port.close();
      return;
    case 'failures':
      void Promise.all(
        Array.from({ length: msg.n }, () => Promise.resolve(coordinator.auth.recordFailure(msg.ip, null))),
      ).then((states) => port.postMessage({ kind: 'result', value: states }));
      return;
    case 'slots':
      void Promise.all(
        Array.from({ length: msg.n }, () => Promise.resolve(coordinator.slots.acquire(msg.user, msg.max))),
      ).then((granted) => port.postMessage({ kind: 'result', value: granted }));
      return;
    default:
      return;
  }
});

function session(socket: Socket, id: string): void {
  socket.on('error', () => undefined);
  if (id === 'crash') throw new Error('fixture: crash on purpose');
  if (id.startsWith('hold-maildrop:')) {
    void coordinator.maildrops.acquire(id.slice('hold-maildrop:'.length), 'INBOX').then((lock) => {
      socket.write(lock === null ? 'in-use\r\n' : 'held\r\n');
    });
    return;
  }
  // Handed sockets arrive paused (the main thread accepted them so); 'close' needs the EOF read.
  socket.resume();
  socket.end(`hello from ${id} on ${String((workerData as { index?: number } | null)?.index)}\r\n`);
  socket.on('close', () => post({ kind: 'ended', id }));
}

post({ kind: 'ready' });
