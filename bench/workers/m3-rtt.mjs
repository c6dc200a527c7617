// M3: round trip of a small message main<->worker thread (postMessage) and parent<->child (process.send,
// 'json' and 'advanced' serialization), sequential ping-pong; plus a 64 KiB body copied / transferred.
import { Worker, isMainThread, parentPort } from 'node:worker_threads';
import { fork } from 'node:child_process';
const small = { t: 'auth.check', ip: '203.0.113.7', account: 'alice@example.org', id: 1 };
if (process.argv[2] === 'child') {
  process.on('message', (m) => process.send(m));
} else if (!isMainThread) {
  parentPort.on('message', (m) =>
    parentPort.postMessage(m, m?.buf instanceof ArrayBuffer && m.transfer ? [m.buf] : []),
  );
} else {
  const stats = (xs) => {
    xs.sort((a, b) => a - b);
    const q = (p) => +(xs[Math.floor(p * xs.length)] * 1000).toFixed(1);
    return { p50us: q(0.5), p99us: q(0.99) };
  };
  const pingpong = async (send, on, make, n) => {
    const xs = [];
    for (let i = 0; i < n; i++) {
      const m = make();
      const t = performance.now();
      await new Promise((r) => {
        on(r);
        send(m);
      });
      xs.push(performance.now() - t);
    }
    return stats(xs.slice(Math.floor(n / 10)));
  };
  const out = {};
  const w = new Worker(new URL(import.meta.url));
  const wsend = (m) => w.postMessage(m, m?.transfer ? [m.buf] : []);
  const won = (r) => w.once('message', r);
  out.thread_small = await pingpong(wsend, won, () => small, 5000);
  out.thread_64KiB_copy = await pingpong(wsend, won, () => ({ buf: new ArrayBuffer(65536) }), 2000);
  out.thread_64KiB_transfer = await pingpong(
    wsend,
    won,
    () => ({ buf: new ArrayBuffer(65536), transfer: true }),
    2000,
  );
  await w.terminate();
  for (const serialization of ['json', 'advanced']) {
    const c = fork(new URL(import.meta.url).pathname, ['child'], { serialization });
    const csend = (m) => c.send(m);
    const con = (r) => c.once('message', r);
    out[`process_${serialization}_small`] = await pingpong(csend, con, () => small, 5000);
    out[`process_${serialization}_64KiB`] = await pingpong(
      csend,
      con,
      () => (serialization === 'json' ? { b: 'x'.repeat(65536) } : { buf: Buffer.alloc(65536) }),
      1000,
    );
    c.kill();
  }
  console.log(JSON.stringify(out));
}
