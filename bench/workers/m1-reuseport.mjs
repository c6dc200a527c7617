// M1: worker_threads each listening on the same port with reusePort: true; how evenly does the kernel
// spread N short loopback connections? Usage: node m1-reuseport.mjs <listeners> <connections> [threads|procs]
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { fork } from 'node:child_process';
import net from 'node:net';

if (!isMainThread || process.argv[2] === 'child') {
  const port = isMainThread ? Number(process.argv[3]) : workerData.port;
  const send = (m) => (isMainThread ? process.send(m) : parentPort.postMessage(m));
  const onMsg = (fn) => (isMainThread ? process.on('message', fn) : parentPort.on('message', fn));
  let accepted = 0;
  const server = net.createServer((s) => {
    accepted++;
    s.end('220 hi\r\n');
    s.on('error', () => {});
  });
  server.on('error', (e) => send({ error: e.code }));
  server.listen({ host: '127.0.0.1', port, reusePort: true, backlog: 1024 }, () =>
    send({ ready: server.address().port }),
  );
  onMsg((m) => {
    if (m === 'count') {
      send({ accepted });
      server.close();
      if (isMainThread) process.disconnect();
    }
  });
} else {
  const n = Number(process.argv[2] ?? 2);
  const total = Number(process.argv[3] ?? 2000);
  const mode = process.argv[4] ?? 'threads';
  // Pick a free port first (port 0 with reusePort would give each listener its own port).
  const probe = net.createServer();
  await new Promise((r) => probe.listen(0, '127.0.0.1', r));
  const port = probe.address().port;
  await new Promise((r) => probe.close(r));
  const ws = [];
  for (let i = 0; i < n; i++) {
    const w =
      mode === 'threads'
        ? new Worker(new URL(import.meta.url), { workerData: { port } })
        : fork(new URL(import.meta.url).pathname, ['child', String(port)]);
    const next = () => new Promise((r) => w.once('message', r));
    w.next = next;
    const m = await next();
    if (m.error) {
      console.log(`listener ${i}: listen failed ${m.error}`);
      process.exit(1);
    }
    ws.push(w);
  }
  const t0 = performance.now();
  let done = 0,
    started = 0;
  const CONC = 20;
  await new Promise((resolve) => {
    const one = () => {
      if (started >= total) return;
      started++;
      const c = net.connect(port, '127.0.0.1');
      c.on('data', () => {});
      c.on('error', () => {});
      c.on('close', () => {
        done++;
        if (done === total) resolve();
        else one();
      });
    };
    for (let i = 0; i < CONC; i++) one();
  });
  const ms = performance.now() - t0;
  const counts = [];
  for (const w of ws) {
    const p = w.next();
    w.postMessage ? w.postMessage('count') : w.send('count');
    counts.push((await p).accepted);
  }
  const mean = total / n;
  const maxDev = Math.max(...counts.map((c) => Math.abs(c - mean) / mean));
  console.log(
    JSON.stringify({
      mode,
      listeners: n,
      connections: total,
      counts,
      maxDeviationPct: +(maxDev * 100).toFixed(1),
      ms: Math.round(ms),
    }),
  );
  for (const w of ws) w.terminate?.();
}
