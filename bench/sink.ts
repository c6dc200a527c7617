// A minimal SMTP sink (accept everything, keep nothing) for the relay scenario when Postfix's smtp-sink
// is not installed: greeting, EHLO with PIPELINING, MAIL/RCPT/RSET/NOOP → 250, DATA until the final dot
// (RFC 5321 §4.1.1.4), QUIT → 221. It answers every complete command in a buffer with one write.
// Deliberately NOT here: TLS, AUTH, BDAT, limits of any kind, correctness beyond what a relay needs.
// `node bench/sink.ts PORT` runs it until killed.

import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { fileURLToPath } from 'node:url';

const END = '\r\n.\r\n';

function serve(socket: Socket): void {
  socket.setNoDelay(true);
  let text = '';
  let inData = false;
  socket.write('220 sink.bench.test ESMTP\r\n');
  socket.on('error', () => undefined);
  socket.on('data', (d: Buffer) => {
    text += d.toString('latin1');
    let out = '';
    for (;;) {
      if (inData) {
        // The dot may follow the DATA line directly (an empty message) or the text's last CRLF.
        const end = text.startsWith('.\r\n') ? 0 : text.indexOf(END);
        if (end < 0) {
          // Keep only what could still be the start of the terminator.
          text = text.slice(-4);
          break;
        }
        text = text.slice(end === 0 ? 3 : end + END.length);
        inData = false;
        out += '250 2.0.0 Ok: discarded\r\n';
        continue;
      }
      const eol = text.indexOf('\r\n');
      if (eol < 0) break;
      const verb = text.slice(0, 4).toUpperCase();
      text = text.slice(eol + 2);
      if (verb === 'EHLO') out += '250-sink.bench.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 0\r\n';
      else if (verb === 'DATA') {
        inData = true;
        out += '354 End data with <CR><LF>.<CR><LF>\r\n';
      } else if (verb === 'QUIT') {
        socket.end(`${out}221 2.0.0 Bye\r\n`);
        return;
      } else out += '250 2.0.0 Ok\r\n';
    }
    if (out !== '') socket.write(out);
  });
}

export async function startSink(port: number, host = '127.0.0.1'): Promise<Server> {
  const server = createServer(serve);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await startSink(Number(process.argv[2] ?? 2500));
}
