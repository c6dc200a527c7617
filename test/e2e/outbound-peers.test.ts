// End to end: Tern delivering to SMTP servers written by others, outside Node: Python's aiosmtpd, Python's
// stdlib smtpd (asyncore; Python 3.11 and older) and Postfix's smtp-sink. One message each, found by MX,
// with a line that starts with a dot (RFC 5321 §4.5.2 transparency) and a long body; each peer must see
// the right envelope and the message exactly as submitted. Each case is skipped, saying why, when the
// peer is not installed here (Debian: python3-aiosmtpd for /usr/bin/python3; postfix for smtp-sink).
// Deliberately NOT here: behaviour that needs a scriptable peer (smtp-server, in the other files).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startDnsServer } from '../support/dns-server.ts';
import type { DnsServer } from '../support/dns-server.ts';
import type { ExternalPeer, OutboundTern } from './outbound-helpers.ts';
import {
  closedPort,
  findPython,
  findSmtpSink,
  havePython,
  startOutboundTern,
  startPythonPeer,
  startSmtpSink,
} from './outbound-helpers.ts';
import { waitFor } from './harness.ts';

const SENDER = 'alice@example.test';
const aiosmtpdPython = findPython('aiosmtpd');
const smtpdPython = findPython('smtpd');
const smtpSink = findSmtpSink();

const PEERS = [
  {
    name: 'aiosmtpd',
    ip: '127.0.0.81',
    skip: aiosmtpdPython
      ? false
      : 'aiosmtpd is not installed for any python3 here (Debian: python3-aiosmtpd)',
    start: (port: number) => startPythonPeer('aiosmtpd', aiosmtpdPython!, '127.0.0.81', port),
  },
  {
    name: 'smtpd',
    ip: '127.0.0.82',
    skip: smtpdPython ? false : "Python's smtpd module is gone here (removed in Python 3.12)",
    start: (port: number) => startPythonPeer('smtpd', smtpdPython!, '127.0.0.82', port),
  },
  {
    name: 'smtp-sink',
    ip: '127.0.0.83',
    skip: smtpSink ? false : "Postfix's smtp-sink is not installed here (Debian: postfix)",
    start: (port: number) => startSmtpSink(smtpSink!, '127.0.0.83', port),
  },
] as const;

/** A message with a line starting with "." and one that is only ".", and enough body to span writes. */
function body(peer: string): Buffer {
  const filler = Array.from({ length: 400 }, (_, i) => `line ${i} of the message for ${peer}`).join('\r\n');
  return Buffer.from(
    `From: <${SENDER}>\r\nTo: <user@${peer}.test>\r\nSubject: to ${peer}\r\n` +
      `Date: Mon, 02 Feb 2026 10:00:00 +0000\r\nMessage-ID: <peer-${peer}@example.test>\r\n\r\n` +
      `.a line that starts with a dot\r\n..two dots\r\n.\r\n${filler}\r\nend\r\n`,
  );
}

describe('independent receiving peers', { skip: havePython() ? false : 'python3 is not available' }, () => {
  let dns: DnsServer;
  let tern: OutboundTern;
  let port: number;
  const started: ExternalPeer[] = [];

  before(async () => {
    port = await closedPort();
    dns = await startDnsServer({
      zones: Object.fromEntries(
        PEERS.map((p) => [
          `${p.name}.test`,
          {
            '@': [{ type: 'MX' as const, preference: 10, exchange: `mx.${p.name}.test` }],
            mx: [{ type: 'A' as const, address: p.ip }],
          },
        ]),
      ),
    });
    tern = await startOutboundTern({ dns: dns.endpoint, outbound: { port }, users: [SENDER] });
  });
  after(async () => {
    await tern?.stop();
    await Promise.all(started.map((p) => p.close()));
    await dns?.close();
  });

  for (const peer of PEERS) {
    test(`delivered to ${peer.name}, envelope and bytes intact`, { skip: peer.skip }, async () => {
      const rx = await peer.start(port);
      started.push(rx);
      const to = `user@${peer.name}.test`;
      const raw = body(peer.name);
      const r = await tern.send({ action: 'sendmail', from: SENDER, to: [to], raw });
      assert.equal(r.ok, true, JSON.stringify(r));
      const [got] = await waitFor(`a message at ${peer.name}`, async () => {
        const list = await rx.messages();
        return list.length > 0 ? list : undefined;
      });
      await tern.waitForEmptyQueue();
      assert.equal(got!.mailFrom, SENDER);
      assert.deepEqual(got!.rcptTos, [to]);
      // The peer's copy is the submitted message with Tern's Received line on top; peers that end
      // their copy with a line break of their own (smtp-sink's dump) are allowed that.
      const text = got!.data.toString('latin1').replace(/\n$/, '');
      const expected = raw.toString('latin1').replace(/\r\n$/, '');
      assert.match(text, /^Received: from /, 'Tern adds its trace header');
      const at = text.replace(/\r\n/g, '\n').indexOf(expected.replace(/\r\n/g, '\n'));
      assert.ok(at > 0, `the message arrives whole at ${peer.name}:\n${text.slice(0, 600)}`);
    });
  }
});
