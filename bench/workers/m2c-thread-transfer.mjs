// M2c: Node 24 moves a fresh TCP net.Socket to a worker thread (postMessage(msg, [socket])). Main thread
// accepts with pauseOnConnect, counts per IP, transfers round-robin to N worker threads that greet.
// Client in a separate process. Measures main-thread CPU per connection and connect->first byte latency,
// against worker threads accepting themselves with reusePort. Usage: node m2c-thread-transfer.mjs <threads> <connections>
import { fork } from 'node:child_process';
import { Worker, isMainThread, parentPort } from 'node:worker_threads';
import net from 'node:net';

async function runClient(port, n, conc) {
  const lat = [];
  let started = 0,
    done = 0;
  await new Promise((resolve) => {
    const one = () => {
      if (started >= n) return;
      started++;
      const t = performance.now();
      let first = true;
      const c = net.connect(port, '127.0.0.1');
      c.on('data', () => {
        if (first) {
          lat.push(performance.now() - t);
          first = false;
        }
      });
      c.on('error', () => {});
      c.on('close', () => {
        done++;
        if (done === n) resolve();
        else one();
      });
    };
    for (let i = 0; i < conc; i++) one();
  });
  lat.sort((a, b) => a - b);
  const q = (p) => +lat[Math.min(lat.length - 1, Math.floor(p * lat.length))].toFixed(3);
  return { p50: q(0.5), p99: q(0.99) };
}
if (process.argv[2] === 'client') {
  process.on('message', async (m) => process.send(await runClient(m.port, m.n, m.conc)));
} else if (!isMainThread) {
  parentPort.on('message', (m) => {
    if (m.t === 'conn') {
      const s = m.socket;
      s.on('error', () => {});
      s.on('close', () => parentPort.postMessage({ closed: m.ip }));
      s.resume();
      s.end('220 hi\r\n');
    } else if (m.t === 'listen') {
      const srv = net.createServer((s) => {
        s.on('error', () => {});
        s.end('220 hi\r\n');
      });
      srv.listen({ host: '127.0.0.1', port: m.port, reusePort: true, backlog: 1024 }, () =>
        parentPort.postMessage({ ready: true }),
      );
    }
  });
} else {
  const nT = Number(process.argv[2] ?? 2),
    total = Number(process.argv[3] ?? 2000);
  const once = (c) => new Promise((r) => c.once('message', r));
  const cl = fork(new URL(import.meta.url).pathname, ['client']);
  const client = (port, n, conc) => {
    const p = once(cl);
    cl.send({ port, n, conc });
    return p;
  };
  const cpu = async (fn) => {
    const c0 = process.cpuUsage();
    const t0 = process.threadCpuUsage();
    const r = await fn();
    const c = process.cpuUsage(c0);
    const t = process.threadCpuUsage(t0);
    return {
      ...r,
      processCpuUsPerConn: +((c.user + c.system) / total).toFixed(1),
      mainThreadCpuUsPerConn: +((t.user + t.system) / total).toFixed(1),
    };
  };
  const ws = Array.from({ length: nT }, () => new Worker(new URL(import.meta.url)));
  const out = {};
  {
    const perIp = new Map();
    let rr = 0;
    for (const w of ws)
      w.on('message', (m) => {
        if (m.closed) {
          const n = perIp.get(m.closed) - 1;
          n ? perIp.set(m.closed, n) : perIp.delete(m.closed);
        }
      });
    const srv = net.createServer({ pauseOnConnect: true }, (s) => {
      const ip = s.remoteAddress;
      perIp.set(ip, (perIp.get(ip) ?? 0) + 1);
      ws[rr++ % nT].postMessage({ t: 'conn', ip, socket: s }, [s]);
    });
    await new Promise((r) => srv.listen({ port: 0, host: '127.0.0.1', backlog: 1024 }, r));
    const port = srv.address().port;
    await client(port, 200, 10);
    out.transfer_seq = await client(port, 300, 1);
    out.transfer_c20 = await cpu(() => client(port, total, 20));
    await new Promise((r) => setTimeout(r, 200));
    out.transfer_perIpLeftOpen = [...perIp.values()].reduce((a, b) => a + b, 0);
    await new Promise((r) => srv.close(r));
  }
  {
    const probe = net.createServer();
    await new Promise((r) => probe.listen(0, '127.0.0.1', r));
    const port = probe.address().port;
    await new Promise((r) => probe.close(r));
    for (const w of ws) {
      w.postMessage({ t: 'listen', port });
      await once(w);
    }
    await client(port, 200, 10);
    out.reuseport_seq = await client(port, 300, 1);
    out.reuseport_c20 = await cpu(() => client(port, total, 20));
  }
  console.log(JSON.stringify(out));
  cl.kill();
  for (const w of ws) w.terminate();
}
