// M1b: with SO_REUSEPORT, what happens to connections queued on a listener that closes (reload/drain)?
// 2 worker threads listen; the client opens 3000 connections (40 at a time, no waiting for accept);
// after 500 worker 0 closes its listener. Count client-side errors (reset/refused) vs completed.
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import net from 'node:net';
import { readFileSync } from 'node:fs';
if (!isMainThread) {
  const server = net.createServer((s) => {
    s.on('error', () => {});
    setTimeout(() => s.end('220 hi\r\n'), 1);
  });
  server.listen({ host: '127.0.0.1', port: workerData.port, reusePort: true, backlog: 1024 }, () =>
    parentPort.postMessage('ready'),
  );
  parentPort.on('message', () => server.close());
} else {
  let migrate = 'n/a';
  try {
    migrate = readFileSync('/proc/sys/net/ipv4/tcp_migrate_req', 'utf8').trim();
  } catch {}
  const probe = net.createServer();
  await new Promise((r) => probe.listen(0, '127.0.0.1', r));
  const port = probe.address().port;
  await new Promise((r) => probe.close(r));
  const ws = [0, 1].map(() => new Worker(new URL(import.meta.url), { workerData: { port } }));
  await Promise.all(ws.map((w) => new Promise((r) => w.once('message', r))));
  const total = 3000;
  let started = 0,
    done = 0,
    ok = 0;
  const errs = {};
  await new Promise((resolve) => {
    const one = () => {
      if (started >= total) return;
      started++;
      if (started === 500) ws[0].postMessage('close');
      const c = net.connect(port, '127.0.0.1');
      let got = false;
      c.on('data', () => (got = true));
      c.on('error', (e) => (errs[e.code] = (errs[e.code] ?? 0) + 1));
      c.on('close', () => {
        if (got) ok++;
        done++;
        if (done === total) resolve();
        else one();
      });
    };
    for (let i = 0; i < 40; i++) one();
  });
  console.log(JSON.stringify({ tcp_migrate_req: migrate, total, greeted: ok, errors: errs }));
  ws.forEach((w) => w.terminate());
}
