// Interoperation with an independent DKIM implementation, Debian's python3-dkim (dkimpy): messages Tern
// signs verify in dkimpy, and messages dkimpy signs (every canonicalization, RSA and Ed25519, with l=)
// verify in Tern. dkimpy runs through its Python API with a dnsfunc serving our keys (the dkimverify
// command would ask the real DNS). Skipped, saying why, where no Python can import dkim; .ci/run installs
// python3-dkim. Negative controls (a tampered message) keep the checks honest.
// Deliberately NOT here: the third-party vectors (dkim-vectors.test.ts).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import type { DnsAnswer, Resolver } from '../../src/core/dns.ts';
import type { DkimKey } from '../../src/delivery/dkim-sign.ts';
import { dkimDnsRecord, signMessage } from '../../src/delivery/dkim-sign.ts';
import type { DkimResult } from '../../src/policy/dkim/verifier.ts';
import { DkimVerifier } from '../../src/policy/dkim/verifier.ts';

const SUITE_DIR = new URL('../fixtures/dkim/', import.meta.url);

// One request (JSON on stdin), one answer (JSON on stdout): a list of jobs, each a verify or a sign.
const DKIMPY = String.raw`
import base64, json, sys
import dkim

req = json.load(sys.stdin)
zone = {k.lower(): v for k, v in req["zone"].items()}

def dnsfunc(name, timeout=5):
    name = name.decode("ascii") if isinstance(name, bytes) else name
    return zone.get(name.rstrip(".").lower())

out = []
for job in req["jobs"]:
    msg = base64.b64decode(job["message"])
    if job["op"] == "verify":
        d = dkim.DKIM(msg, minkey=1024)
        count = len([1 for k, v in d.headers if k.lower() == b"dkim-signature"])
        results = []
        for i in range(count):
            try:
                results.append(bool(d.verify(idx=i, dnsfunc=dnsfunc)))
            except Exception as e:
                results.append("error: %s" % e)
        out.append(results)
    else:
        sig = dkim.sign(msg, job["selector"].encode(), job["domain"].encode(), job["key"].encode(),
                        canonicalize=(job["c"][0].encode(), job["c"][1].encode()),
                        signature_algorithm=job["algorithm"].encode(), length=job["length"])
        out.append(base64.b64encode(sig).decode("ascii"))
json.dump(out, sys.stdout)
`;

type Job =
  | { readonly op: 'verify'; readonly message: string }
  | {
      readonly op: 'sign';
      readonly message: string;
      readonly selector: string;
      readonly domain: string;
      readonly key: string;
      readonly algorithm: string;
      readonly c: readonly [string, string];
      readonly length: boolean;
    };

/** A Python that can import dkim: the one dkimverify runs with first (pyenv may shadow python3). */
function findPython(): string | null {
  const candidates: string[] = [];
  const which = spawnSync('sh', ['-c', 'command -v dkimverify'], { encoding: 'utf8' });
  const script = which.status === 0 ? which.stdout.trim() : '';
  if (script !== '' && existsSync(script)) {
    const shebang = /^#!\s*(\S+)/.exec(readFileSync(script, 'utf8').split('\n', 1)[0] ?? '');
    if (shebang?.[1] !== undefined) candidates.push(shebang[1]);
  }
  candidates.push('/usr/bin/python3', 'python3');
  for (const python of candidates) {
    if (spawnSync(python, ['-c', 'import dkim, nacl'], { stdio: 'ignore' }).status === 0) return python;
  }
  return null;
}

function dkimpy(python: string, zone: Record<string, string>, jobs: readonly Job[]): unknown[] {
  const run = spawnSync(python, ['-c', DKIMPY], {
    input: JSON.stringify({ zone, jobs }),
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(run.status, 0, run.stderr);
  return JSON.parse(run.stdout) as unknown[];
}

// A new line first: a body that did not end in CRLF must keep its first l= octets.
const APPENDED = Buffer.from('\r\nAppended by a stranger\r\n');
const b64 = (s: string | Buffer): string => Buffer.from(s).toString('base64');

function resolverFor(zone: Record<string, string>): Pick<Resolver, 'txt'> {
  return {
    txt(name: string): Promise<DnsAnswer<string>> {
      const record = zone[name.toLowerCase()];
      return Promise.resolve(
        record === undefined ? { kind: 'nxdomain' } : { kind: 'ok', records: [record], ttlMs: 0 },
      );
    },
  };
}

async function ternVerify(message: Buffer, zone: Record<string, string>): Promise<DkimResult[]> {
  const verifier = new DkimVerifier({ resolver: resolverFor(zone), nowMs: Date.now() });
  for (let i = 0; i < message.length; i += 1000) verifier.push(message.subarray(i, i + 1000));
  return verifier.finish();
}

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ed = generateKeyPairSync('ed25519');
const RSA: DkimKey = {
  domain: 'tern.example',
  selector: 'rsa1',
  algorithm: 'rsa-sha256',
  privateKeyPem: rsa.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
};
const ED: DkimKey = {
  domain: 'tern.example',
  selector: 'ed1',
  algorithm: 'ed25519-sha256',
  privateKeyPem: ed.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
};
const ZONE: Record<string, string> = {
  'rsa1._domainkey.tern.example': dkimDnsRecord(RSA).value,
  'ed1._domainkey.tern.example': dkimDnsRecord(ED).value,
};
// dkimpy reads PKCS#1 PEM for RSA and the base64 32-octet seed for Ed25519.
const RSA_FOR_DKIMPY = rsa.privateKey.export({ format: 'pem', type: 'pkcs1' }).toString();
const ED_SEED_FOR_DKIMPY = Buffer.from(ed.privateKey.export({ format: 'jwk' }).d!, 'base64url').toString(
  'base64',
);

function messages(): Record<string, Buffer> {
  const crlf = (s: string): Buffer => Buffer.from(s.replace(/\r?\n/g, '\r\n'), 'latin1');
  const made: Record<string, Buffer> = {
    plain: crlf(
      'From: Alice <alice@tern.example>\nTo: bob@example.net\nCc: carol@example.net\nSubject: Hello\n' +
        'Date: Thu, 15 Jan 2026 12:00:00 +0000\nMessage-ID: <1@tern.example>\nMIME-Version: 1.0\n' +
        'Content-Type: text/plain; charset=utf-8\n\nHi Bob,  \n\ttabs\tand  spaces\n\n\n',
    ),
    folded: crlf(
      'From: "A very long display name, to make the field fold" \n <alice@tern.example>\n' +
        'Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= and a subject that goes on\n\tand on\nTo: bob@example.net\n' +
        'List-Unsubscribe: <mailto:unsub@tern.example>\n\nno trailing newline',
    ),
    multipart: crlf(
      'From: alice@tern.example\nTo: bob@example.net\nSubject: parts\nMIME-Version: 1.0\n' +
        'Content-Type: multipart/mixed; boundary="b1"\n\n--b1\nContent-Type: text/plain\n\nbody one\n' +
        `--b1\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n${'QUJD'.repeat(5000).replace(/(.{76})/g, '$1\n')}\n--b1--\n`,
    ),
  };
  made['rfc6376'] = crlf(readFileSync(new URL('dkimpy/rfc6376.msg', SUITE_DIR), 'latin1'));
  return made;
}

const python = findPython();

if (python === null) {
  test(
    'DKIM interop with python3-dkim',
    {
      skip: 'no Python with the dkim module (Debian python3-dkim; .ci/run installs it): dkimpy interop not run',
    },
    () => {},
  );
} else {
  describe('DKIM interop: Tern signs, dkimpy verifies', () => {
    test('RSA and Ed25519, single and dual, every message', async () => {
      const cases: { name: string; message: Buffer; keys: DkimKey[] }[] = [];
      for (const [name, message] of Object.entries(messages())) {
        cases.push({ name: `${name} rsa`, message, keys: [RSA] });
        cases.push({ name: `${name} ed25519`, message, keys: [ED] });
        cases.push({ name: `${name} dual`, message, keys: [RSA, ED] });
      }
      const signed = await Promise.all(
        cases.map(async (c) => {
          const headers = await signMessage({
            content: () => Readable.from([c.message]),
            keys: c.keys,
            nowMs: Date.now(),
          });
          return Buffer.concat([Buffer.from(headers, 'latin1'), c.message]);
        }),
      );
      const tampered = signed.map((m) =>
        Buffer.from(m.toString('latin1').replace(/(\r\n\r\n[\s\S]*?)(\w)/, '$1X'), 'latin1'),
      );
      const jobs: Job[] = [...signed, ...tampered].map((m) => ({ op: 'verify', message: b64(m) }));
      const results = dkimpy(python, ZONE, jobs);
      cases.forEach((c, i) => {
        assert.deepEqual(
          results[i],
          c.keys.map(() => true),
          `dkimpy on ${c.name}`,
        );
        // dkimpy answers a body hash mismatch with an exception (reported as "error: ..."), never true.
        const bad = results[cases.length + i] as unknown[];
        assert.equal(bad.length, c.keys.length);
        for (const r of bad) assert.notEqual(r, true, `dkimpy on tampered ${c.name}`);
      });
    });
  });

  describe('DKIM interop: dkimpy signs, Tern verifies', () => {
    test('simple and relaxed, header and body; RSA and Ed25519; with and without l=', async () => {
      const jobs: (Job & { op: 'sign' })[] = [];
      const sources: Buffer[] = [];
      for (const message of Object.values(messages())) {
        for (const h of ['simple', 'relaxed']) {
          for (const b of ['simple', 'relaxed']) {
            for (const [selector, algorithm, key] of [
              ['rsa1', 'rsa-sha256', RSA_FOR_DKIMPY],
              ['ed1', 'ed25519-sha256', ED_SEED_FOR_DKIMPY],
            ] as const) {
              for (const length of [false, true]) {
                jobs.push({
                  op: 'sign',
                  message: b64(message),
                  selector,
                  domain: 'tern.example',
                  key,
                  algorithm,
                  c: [h, b],
                  length,
                });
                sources.push(message);
              }
            }
          }
        }
      }
      const signatures = dkimpy(python, ZONE, jobs) as string[];
      assert.equal(signatures.length, jobs.length);
      for (const [i, job] of jobs.entries()) {
        const signed = Buffer.concat([Buffer.from(signatures[i]!, 'base64'), sources[i]!]);
        const label = `${job.algorithm} c=${job.c.join('/')}${job.length ? ' l=' : ''}`;
        const [r] = await ternVerify(signed, ZONE);
        assert.equal(r!.result, 'pass', `${label}: ${r!.reason}`);
        assert.equal(r!.selector, job.selector);
        assert.equal(r!.bodyLengthLimited, job.length, label);
        if (job.length) {
          // Content appended after l= still passes (RFC 6376), flagged as not covered.
          const appended = await ternVerify(Buffer.concat([signed, APPENDED]), ZONE);
          assert.equal(appended[0]!.result, 'pass', label);
          assert.match(appended[0]!.reason, /octets of body not signed/);
        } else {
          const changed = await ternVerify(Buffer.concat([signed, APPENDED]), ZONE);
          assert.equal(changed[0]!.result, 'fail', label);
        }
      }
    });
  });
}
