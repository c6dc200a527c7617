// M3b: CPU cost per small message when many are in flight (20,000 echoed, 100 outstanding): thread vs process.
import { Worker, isMainThread, parentPort } from 'node:worker_threads';
import { fork } from 'node:child_process';
const small = { t: 'auth.check', ip: '203.0.113.7', account: 'alice@example.org', id: 1 };
if (process.argv[2] === 'child') process.on('message', (m) => process.send(m));
else if (!isMainThread) parentPort.on('message', (m) => parentPort.postMessage(m));
else {
  const run = async (send, onMsg, n = 20000, window = 100) => {
    const c0 = process.threadCpuUsage();
    const t0 = performance.now();
    await new Promise((resolve) => {
      let sent = 0,
        got = 0;
      onMsg(() => {
        got++;
        if (got === n) resolve();
        else if (sent < n) {
          sent++;
          send(small);
        }
      });
      for (; sent < window; sent++) send(small);
    });
    const c = process.threadCpuUsage(c0);
    const ms = performance.now() - t0;
    return {
      msgsPerSec: Math.round((n / ms) * 1000),
      mainThreadCpuUsPerRoundTrip: +((c.user + c.system) / n).toFixed(1),
    };
  };
  const out = {};
  const w = new Worker(new URL(import.meta.url));
  out.thread = await run(
    (m) => w.postMessage(m),
    (f) => w.on('message', f),
  );
  await w.terminate();
  const c = fork(new URL(import.meta.url).pathname, ['child'], { serialization: 'advanced' });
  out.process_advanced = await run(
    (m) => c.send(m),
    (f) => c.on('message', f),
  );
  c.kill();
  console.log(JSON.stringify(out));
}
