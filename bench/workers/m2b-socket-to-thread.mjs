// M2b: does postMessage({s}, [s]) really move a net.Socket into a worker thread in Node 24?
import { Worker } from 'node:worker_threads';
import net from 'node:net';
const w = new Worker(
  `
const { parentPort } = require('node:worker_threads');
parentPort.on('message', (m) => {
  const s = m.s;
  const r = { ctor: s?.constructor?.name, hasHandle: !!s?._handle, writable: s?.writable, remote: s?.remoteAddress };
  try { s.write('220 from worker\\r\\n'); r.write = 'ok'; } catch (e) { r.write = e.message; }
  parentPort.postMessage(r);
});`,
  { eval: true },
);
const srv = net.createServer({ pauseOnConnect: true }, (s) => {
  w.postMessage({ s }, [s]);
  setTimeout(
    () => console.log('primary after transfer:', { destroyed: s.destroyed, hasHandle: !!s._handle }),
    100,
  );
});
w.on('message', (r) => console.log('worker:', r));
await new Promise((r) => srv.listen(0, '127.0.0.1', r));
const c = net.connect(srv.address().port, '127.0.0.1');
let got = '';
c.on('data', (d) => (got += d));
c.on('error', (e) => (got += `[${e.code}]`));
setTimeout(() => {
  console.log('client got:', JSON.stringify(got));
  process.exit(0);
}, 500);
