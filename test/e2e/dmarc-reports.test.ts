// DMARC aggregate reports end to end (RFC 7489 §7.2, §7.1, Appendix C): inbound mail from domains whose
// DMARC records ask for reports is counted; `tern dmarc reports` shows what is owed and to whom (an
// address outside the domain's organization only with its `<domain>._report._dmarc.<dest>` record);
// `--send` queues them and the report arrives in a local mailbox, where Python's email, gzip and
// xml.etree read it and its fields are checked.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { RecordSpec } from '../support/dns-server.ts';
import type { DnsServer } from '../support/dns-server.ts';
import { runProcess } from './harness.ts';
import type { AuthTern } from './authchecks-helpers.ts';
import { message, startAuthTern, startZones, transact } from './authchecks-helpers.ts';
import { havePython } from './outbound-helpers.ts';

const skip = havePython() ? false : 'python3 is not available';
const RCPT = 'rcpt@example.test';
const REPORTS = 'dmarc@example.test';
const txt = (text: string): RecordSpec[] => [{ type: 'TXT', text }];

interface Plan {
  domain: string;
  messages: number;
  rows: number;
  to: { address: string; outcome: string }[];
}

describe('DMARC aggregate reports', { skip }, () => {
  let dns: DnsServer;
  let tern: AuthTern;

  before(async () => {
    dns = await startZones({
      test: {
        'rep.test': txt('v=spf1 ip4:127.0.0.1 -all'),
        '_dmarc.rep.test': txt(`v=DMARC1; p=none; rua=mailto:${REPORTS},mailto:other@elsewhere.test`),
        // example.test agrees to receive rep.test's reports (§7.1); elsewhere.test has said nothing.
        'rep.test._report._dmarc.example.test': txt('v=DMARC1'),
        'fail.test': txt('v=spf1 ip4:192.0.2.1 -all'),
        '_dmarc.fail.test': txt(`v=DMARC1; p=quarantine; rua=mailto:${REPORTS}!1k`),
        'fail.test._report._dmarc.example.test': txt('v=DMARC1'),
        'quiet.test': txt('v=spf1 ip4:127.0.0.1 -all'),
        '_dmarc.quiet.test': txt('v=DMARC1; p=none'),
      },
    });
    tern = await startAuthTern(dns, { users: [RCPT, REPORTS] });
    const send = async (from: string, subject: string): Promise<void> => {
      const tx = await transact({
        port: tern.ports.smtp,
        helo: 'client.rep.test',
        from,
        to: RCPT,
        message: message({ from, to: RCPT, subject }),
      });
      assert.equal(tx.data?.code, 250, JSON.stringify(tx));
    };
    await send('a@rep.test', 'one');
    await send('b@rep.test', 'two');
    await send('c@fail.test', 'three');
    await send('d@quiet.test', 'four');
  });
  after(async () => {
    await tern?.stop();
    await dns?.close();
  });

  test('what is owed: per domain that asks, the messages, rows and each address with its outcome', async () => {
    const r = await tern.tern(['dmarc', 'reports', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const plans = (JSON.parse(r.stdout) as Plan[]).sort((a, b) => a.domain.localeCompare(b.domain));
    assert.deepEqual(
      plans.map((p) => [p.domain, p.messages, p.rows]),
      [
        ['fail.test', 1, 1],
        ['rep.test', 2, 1],
      ],
      'quiet.test asks for no reports',
    );
    const rep = plans.find((p) => p.domain === 'rep.test')!;
    assert.deepEqual(rep.to[0], { address: REPORTS, outcome: 'send' });
    assert.match(rep.to[1]!.outcome, /elsewhere\.test has not agreed/);
  });

  test('--send: reports queued and delivered; their gzipped XML reads as RFC 7489 Appendix C says', async () => {
    const r = await tern.tern(['dmarc', 'reports', '--send', '--today', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const stored = await tern.waitForMessages(REPORTS, 2, 20_000);
    const script = [
      'import sys, json, gzip, email, xml.etree.ElementTree as ET',
      'msg = email.message_from_bytes(sys.stdin.buffer.read())',
      'part = next(p for p in msg.walk() if p.get_content_type() == "application/gzip")',
      'assert part.get_filename().endswith(".xml.gz"), part.get_filename()',
      'root = ET.fromstring(gzip.decompress(part.get_payload(decode=True)))',
      'assert root.tag == "feedback"',
      'meta = root.find("report_metadata")',
      'for f in ["org_name", "email", "report_id"]: assert meta.findtext(f), f',
      'assert int(meta.find("date_range/end").text) > int(meta.find("date_range/begin").text)',
      'pub = root.find("policy_published")',
      'rows = [{"ip": r.findtext("row/source_ip"), "count": int(r.findtext("row/count")),',
      '  "disposition": r.findtext("row/policy_evaluated/disposition"), "spf": r.findtext("row/policy_evaluated/spf"),',
      '  "from": r.findtext("identifiers/header_from"), "spf_result": r.findtext("auth_results/spf/result"),',
      '  "spf_domain": r.findtext("auth_results/spf/domain")} for r in root.findall("record")]',
      'print(json.dumps({"domain": pub.findtext("domain"), "p": pub.findtext("p"), "rows": rows, "subject": msg["Subject"]}))',
    ].join('\n');
    const reports = [];
    for (const m of stored) {
      const raw = await tern.storedMessage(REPORTS, m.id);
      const out = await runProcess('python3', ['-c', script], { stdin: raw });
      assert.equal(out.code, 0, out.stderr);
      reports.push(
        JSON.parse(out.stdout) as {
          domain: string;
          p: string;
          subject: string;
          rows: {
            ip: string;
            count: number;
            disposition: string;
            spf: string;
            from: string;
            spf_result: string;
          }[];
        },
      );
    }
    const rep = reports.find((x) => x.domain === 'rep.test')!;
    assert.equal(rep.p, 'none');
    assert.match(rep.subject, /^Report Domain: rep\.test Submitter: mx\.example\.test Report-ID: <.+>$/);
    assert.deepEqual(rep.rows, [
      {
        ip: '127.0.0.1',
        count: 2,
        disposition: 'none',
        spf: 'pass',
        from: 'rep.test',
        spf_result: 'pass',
        spf_domain: 'rep.test',
      },
    ]);
    const fail = reports.find((x) => x.domain === 'fail.test')!;
    assert.equal(fail.rows[0]!.disposition, 'quarantine');
    assert.equal(fail.rows[0]!.spf, 'fail');
    // Sent once: nothing is owed any more.
    const again = JSON.parse((await tern.tern(['dmarc', 'reports', '--json'])).stdout) as Plan[];
    assert.deepEqual(again, []);
  });
});
