// M2: handle passing. Primary net.Server({pauseOnConnect}) counts per IP and hands each socket to a child
// process (child.send(msg, socket)); the child greets. Measures: the primary's CPU per connection, and the
// client's connect->first byte latency, against (a) one process accepting itself and (b) the child
// accepting itself (reusePort). Also tries to transfer a socket to a worker thread.
// Usage: node m2-handle-passing.mjs <children> <connections>
import { fork } from 'node:child_process';
import { Worker, MessageChannel } from 'node:worker_threads';
import net from 'node:net';
// Client: `conc` at a time; latencies (ms) from connect() to the first byte.
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
  process.on('message', async (m) => {
    process.send(await runClient(m.port, m.n, m.conc));
  });
} else if (process.argv[2] === 'child') {
  // Child: either gets sockets from the primary, or listens itself (argv[3] = port for reusePort).
  const greet = (s, ip) => {
    s.on('error', () => {});
    s.on('close', () => process.send({ closed: ip }));
    s.resume();
    s.end('220 hi\r\n');
  };
  process.on('message', (m, handle) => {
    if (m?.t === 'conn') greet(handle, m.ip);
    else if (m?.t === 'listen') {
      const srv = net.createServer((s) => {
        s.on('error', () => {});
        s.end('220 hi\r\n');
      });
      srv.listen({ host: '127.0.0.1', port: m.port, reusePort: true, backlog: 1024 }, () =>
        process.send({ ready: true }),
      );
    } else if (m?.t === 'cpu') {
      const u = process.cpuUsage();
      process.send({ cpu: u.user + u.system });
    } else if (m?.t === 'exit') process.exit(0);
  });
  process.send({ up: true });
} else {
  const nChildren = Number(process.argv[2] ?? 2);
  const total = Number(process.argv[3] ?? 2000);
  const once = (c) => new Promise((r) => c.once('message', r));
  const freePort = async () => {
    const p = net.createServer();
    await new Promise((r) => p.listen(0, '127.0.0.1', r));
    const port = p.address().port;
    await new Promise((r) => p.close(r));
    return port;
  };

  const clientProc = fork(new URL(import.meta.url).pathname, ['client']);
  const client = (port, n, conc) => {
    const p = once(clientProc);
    clientProc.send({ port, n, conc });
    return p;
  };

  const cpuOf = async (fn) => {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const r = await fn();
    const c = process.cpuUsage(c0);
    return {
      ...r,
      wallMs: Math.round(performance.now() - t0),
      primaryCpuUsPerConn: +((c.user + c.system) / total).toFixed(1),
    };
  };
  const out = {};

  // (a) one process: the primary accepts and greets.
  {
    const srv = net.createServer((s) => {
      s.on('error', () => {});
      s.end('220 hi\r\n');
    });
    await new Promise((r) => srv.listen({ port: 0, host: '127.0.0.1', backlog: 1024 }, r));
    const port = srv.address().port;
    await client(port, 200, 10); // warm up
    out.single_seq = await client(port, 300, 1);
    out.single_c20 = await client(port, total, 20);
    await new Promise((r) => srv.close(r));
  }
  const children = [];
  for (let i = 0; i < nChildren; i++) {
    const c = fork(new URL(import.meta.url).pathname, ['child']);
    await once(c);
    children.push(c);
  }
  // (b) handle passing with per-IP counting in the primary.
  {
    const perIp = new Map();
    let rr = 0;
    for (const c of children)
      c.on('message', (m) => {
        if (m?.closed) {
          const n = perIp.get(m.closed) - 1;
          n ? perIp.set(m.closed, n) : perIp.delete(m.closed);
        }
      });
    const srv = net.createServer({ pauseOnConnect: true }, (s) => {
      const ip = s.remoteAddress;
      const n = perIp.get(ip) ?? 0;
      if (n >= 1e9) return s.destroy();
      perIp.set(ip, n + 1);
      children[rr++ % children.length].send({ t: 'conn', ip }, s);
    });
    await new Promise((r) => srv.listen({ port: 0, host: '127.0.0.1', backlog: 1024 }, r));
    const port = srv.address().port;
    await client(port, 200, 10);
    out.passing_seq = await client(port, 300, 1);
    out.passing_c20 = await cpuOf(() => client(port, total, 20));
    await new Promise((r) => setTimeout(r, 200));
    out.passing_perIpLeftOpen = [...perIp.values()].reduce((a, b) => a + b, 0);
    await new Promise((r) => srv.close(r));
  }
  // (c) the children accept themselves (reusePort); the primary only runs the client.
  {
    const port = await freePort();
    for (const c of children) {
      c.send({ t: 'listen', port });
      await once(c);
    }
    await client(port, 200, 10);
    out.reuseport_seq = await client(port, 300, 1);
    out.reuseport_c20 = await cpuOf(() => client(port, total, 20));
  }
  for (const c of children) c.send({ t: 'exit' });
  clientProc.kill();
  // (d) can a socket go to a worker thread?
  {
    const w = new Worker(
      'const {parentPort}=require("node:worker_threads");parentPort.on("message",(m)=>{const s=m.s;console.log("worker got:", s && s.constructor && s.constructor.name, typeof (s&&s.write), Object.keys(s||{}).slice(0,6).join(","))})',
      { eval: true },
    );
    const srv = net.createServer({ pauseOnConnect: true }, (s) => {
      const tries = {};
      try {
        w.postMessage({ s }, [s]);
        tries.transferSocket = 'ok';
      } catch (e) {
        tries.transferSocket = `${e.name}: ${e.message}`;
      }
      try {
        w.postMessage({ h: s._handle }, [s._handle]);
        tries.transferHandle = 'ok';
      } catch (e) {
        tries.transferHandle = `${e.name}: ${e.message}`;
      }
      try {
        w.postMessage({ s });
        tries.cloneSocket = 'ok';
      } catch (e) {
        tries.cloneSocket = `${e.name}: ${e.message}`;
      }
      out.workerThread = tries;
      srv.close();
      setTimeout(() => w.terminate(), 300);
    });
    await new Promise((r) => srv.listen(0, '127.0.0.1', r));
    const c = net.connect(srv.address().port, '127.0.0.1');
    c.on('error', () => {});
    await new Promise((r) => srv.on('close', r));
  }
  console.log(JSON.stringify(out, null, 1));
}
