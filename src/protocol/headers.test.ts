import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeEncodedWords, headerSummary, parseHeaderBlock } from './headers.ts';

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const crlf = (s: string): string => s.replaceAll('\n', '\r\n');

// Real-world header blocks, verbatim (CRLF restored where the original has it), from the MIME suites in
// /work/shared/suites/mime: nodemailer/mailparser test/fixtures/nodemailer.eml (MIT),
// postalsys/postal-mime test/fixtures/calendar-event.eml (MIT-0, lines 57-66),
// jstedfast/MimeKit UnitTests/TestData/messages/japanese.txt (MIT, LF line ends as in the original).
const NODEMAILER_EML = crlf(`Delivered-To: andris.reinman@gmail.com
Received: by 10.28.50.2 with SMTP id y2csp233403wmy;
        Thu, 13 Oct 2016 04:39:49 -0700 (PDT)
X-Received: by 10.25.37.18 with SMTP id l18mr9511740lfl.88.1476358789184;
        Thu, 13 Oct 2016 04:39:49 -0700 (PDT)
Return-Path: <SRS0=63fc=V7=kreata.ee=andris@srs1.zonevs.eu>
Received: from srs1.zonevs.eu (srs1.zonevs.eu. [217.146.68.191])
        by mx.google.com with ESMTPS id l202si1012799lfg.293.2016.10.13.04.39.49
        for <andris.reinman@gmail.com>
        (version=TLS1_2 cipher=ECDHE-RSA-AES128-GCM-SHA256 bits=128/128);
        Thu, 13 Oct 2016 04:39:49 -0700 (PDT)
Received-SPF: pass (google.com: best guess record for domain of srs0=63fc=v7=kreata.ee=andris@srs1.zonevs.eu designates 217.146.68.191 as permitted sender) client-ip=217.146.68.191;
Authentication-Results: mx.google.com;
       dkim=pass header.i=@srs1.zonevs.eu;
       spf=pass (google.com: best guess record for domain of srs0=63fc=v7=kreata.ee=andris@srs1.zonevs.eu designates 217.146.68.191 as permitted sender) smtp.mailfrom=SRS0=63fc=V7=kreata.ee=andris@srs1.zonevs.eu;
       dmarc=fail (p=NONE dis=NONE) header.from=kreata.ee
DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=srs1.zonevs.eu;
 q=dns/txt; s=oct2016; bh=xKHKChGY0vTH8NsecmXwA0OqbinKOXeQbaC2UYp2BAM=;
 h=from:subject:date:message-id:to:mime-version:content-type;
 b=Ve18ogdCAG+7WZYkJPOewe1hKjhN4k9unz7bVHMXd6+1CQDRUkLCArQZJzSKxkM481nzXfjFn
 bI8qOuQL8mRk/8fAjYhxLgnr/3SyVIOhCnXxjdQkRzgouZyl42hqD0gIaCxu9uodtQrp2pbKvyl
 e+3sG+LhcdJmsPguOfILn14j+irinPSWrospC8PBIDTsUwO8DCyPqSlOADbW0B6TRUHWMf4XUX4
 W8TH61H1ZI3Xu3k0bvX7rsGHZjsy8dcshcnfYENLCLep8fsQMaB15EErc3RXycBX7CBd0iU1l50
 pYpUFd6bZehCF0ipTOgA7IJ7ZPafaH0YTU8wRntXOwbg==
Received: from host29.guest.zone.eu [217.146.66.6]
 by srs1.zonevs.eu (ZoneMTA Forwarder) with ESMTP id 157bdd754f70005750.002
 for <andris.reinman@gmail.com>;
 Thu, 13 Oct 2016 11:39:48 +0000
Content-Type: multipart/mixed;
 boundary="----sinikael-?=_1-14763587882000.8241290969717285"
X-Laziness-Level: 1000
From: Andris Kreata <andris@kreata.ee>
To: Andris Reinman <andris+123@kreata.ee>, andris.reinman@gmail.com
Subject: Nodemailer is unicode friendly =?UTF-8?Q?=E2=9C=94?=
 (1476358788189)
Message-ID: <012d606e-3550-2d94-b566-6cd996de88e3@kreata.ee>
X-Mailer: nodemailer (2.6.0; +http://nodemailer.com/;
 SMTP/2.7.2[client:2.12.0])
Date: Thu, 13 Oct 2016 11:39:48 +0000
MIME-Version: 1.0
X-Zone-Spam-Resolution: no action
X-Zone-Spam-Status: No, score=0.408099, required=15, tests=[MIME_GOOD=-0.1,
 R_MISSING_CHARSET=2.5, DMARC_POLICY_SOFTFAIL=0.1, MIME_UNKNOWN=0.1,
 R_DKIM_NA=0, BAYES_HAM=-2.1919]
X-Original-Sender: andris@kreata.ee
X-Zone-Forwarded-For: andris@kreata.ee
X-Zone-Forwarded-To: andris.reinman@gmail.com

------sinikael-?=_1-14763587882000.8241290969717285
Content-Type: multipart/alternative;
 boundary="----sinikael-?=_2-14763587882000.8241290969717285"

`);

const CALENDAR_EVENT_EML = crlf(`Reply-To: Andris Reinman <andris@postalsys.com>
Sender: Google Calendar <calendar-notification@google.com>
Message-ID: <calendar-7791cb16-a4f3-43ae-a9a0-ed4003535ae7@google.com>
Date: Thu, 11 Apr 2024 06:19:44 +0000
Subject: =?UTF-8?Q?Invitation=3A_Test_event_=E2=8F=B0_=40_Thu_Apr_11=2C_2024_11am_=2D?=
	=?UTF-8?Q?_12pm_=28GMT=2B3=29_=28andris=40ethereal=2Eemail=29?=
From: Andris Reinman <andris@postalsys.com>
To: andris@ethereal.email
Content-Type: multipart/mixed; boundary="000000000000302e400615cc2412"

`);

const JAPANESE_TXT = `Message-ID: <55AE6D15.4010805@veritas-vos-liberabit.com>
Date: Wed, 22 Jul 2015 01:02:29 +0900
From: Atsushi Eno <x@x.com>
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:31.0) Gecko/20100101 Thunderbird/31.7.0
MIME-Version: 1.0
To: Jeffrey Stedfast <x@x.com>
Subject: =?ISO-2022-JP?B?GyRCRnxLXDhsJWEhPCVrJUYlOSVIGyhCICh0ZXN0aW5nIEph?=
 =?ISO-2022-JP?B?cGFuZXNlIGVtYWlscyk=?=
Content-Type: text/plain; charset=ISO-2022-JP
Content-Transfer-Encoding: 7bit

Let's see if both subject and body works fine...
`;

test('parseHeaderBlock: fields in order, unfolded, stopping at the empty line', () => {
  const fields = parseHeaderBlock(bytes(NODEMAILER_EML));
  assert.equal(fields[0]!.name, 'Delivered-To');
  assert.equal(fields[0]!.value, 'andris.reinman@gmail.com');
  assert.equal(fields.at(-1)!.name, 'X-Zone-Forwarded-To');
  // Nothing from the body, although the body has header-shaped lines.
  assert.equal(
    fields.some((f) => f.value.includes('multipart/alternative')),
    false,
  );
  assert.equal(fields.filter((f) => f.name === 'Received').length, 3);
  const subject = fields.find((f) => f.name === 'Subject')!;
  // Unfolding removes the CRLF only; the folding space stays; encoded-words stay raw.
  assert.equal(subject.value, 'Nodemailer is unicode friendly =?UTF-8?Q?=E2=9C=94?= (1476358788189)');
  const ct = fields.find((f) => f.name === 'Content-Type')!;
  assert.equal(ct.value, 'multipart/mixed; boundary="----sinikael-?=_1-14763587882000.8241290969717285"');
  const received = fields.find((f) => f.name === 'Received')!;
  assert.equal(
    received.value,
    'by 10.28.50.2 with SMTP id y2csp233403wmy;        Thu, 13 Oct 2016 04:39:49 -0700 (PDT)',
  );
  for (const f of fields) assert.doesNotMatch(f.value, /[\r\n]/);
});

test('parseHeaderBlock: bare LF is the same as CRLF, and so is a mix', () => {
  const lf = NODEMAILER_EML.replaceAll('\r\n', '\n');
  assert.deepEqual(parseHeaderBlock(bytes(lf)), parseHeaderBlock(bytes(NODEMAILER_EML)));
  const mixed = 'From: a@example.org\nSubject: one\r\n two\nTo: b@example.org\r\n\nBody: no\n';
  assert.deepEqual(parseHeaderBlock(bytes(mixed)), [
    { name: 'From', value: 'a@example.org' },
    { name: 'Subject', value: 'one two' },
    { name: 'To', value: 'b@example.org' },
  ]);
});

test('parseHeaderBlock: 8-bit UTF-8 values (RFC 6532) and legacy 8-bit values', () => {
  const utf8 = bytes('Subject: Grüße aus Köln ✉\r\nFrom: Jösé <jose@exämple.org>\r\n\r\n');
  assert.deepEqual(parseHeaderBlock(utf8), [
    { name: 'Subject', value: 'Grüße aus Köln ✉' },
    { name: 'From', value: 'Jösé <jose@exämple.org>' },
  ]);
  // Latin-1 bytes are not UTF-8: read as windows-1252 instead of becoming U+FFFD.
  const latin1 = Uint8Array.from([...'Subject: caf', 0xe9, ' ', 0x80, '5\r\n\r\n'].flatMap(toBytes));
  assert.deepEqual(parseHeaderBlock(latin1), [{ name: 'Subject', value: 'café €5' }]);
});

function toBytes(x: string | number): number[] {
  return typeof x === 'number' ? [x] : [...bytes(x)];
}

test('parseHeaderBlock: tolerated oddities', () => {
  const text = [
    'From MAILER-DAEMON Thu Oct 13 11:39:48 2016', // mbox separator, only as the first line
    '  orphan continuation', // nothing to continue: dropped
    'Subject : spaced name', // obs-optional whitespace before the colon
    'X-Empty:',
    'X-Tabs:\t\tvalue\t ',
    'Date: Thu, 13 Oct 2016',
    'this line is not a header, so the body began',
    'To: not-a-header@example.org',
    '',
  ].join('\r\n');
  assert.deepEqual(parseHeaderBlock(bytes(text)), [
    { name: 'Subject', value: 'spaced name' },
    { name: 'X-Empty', value: '' },
    { name: 'X-Tabs', value: 'value' },
    { name: 'Date', value: 'Thu, 13 Oct 2016' },
  ]);
  assert.deepEqual(parseHeaderBlock(bytes('')), []);
  assert.deepEqual(parseHeaderBlock(bytes('\r\nSubject: body\r\n')), []);
  // No line end at all: the whole input is one field.
  assert.deepEqual(parseHeaderBlock(bytes('Subject: hi')), [{ name: 'Subject', value: 'hi' }]);
  // A "From " line later on is not a separator.
  assert.deepEqual(parseHeaderBlock(bytes('To: x\nFrom nobody\nSubject: s\n')), [{ name: 'To', value: 'x' }]);
});

test('parseHeaderBlock: reads at most maxBytes and drops a line cut by the limit', () => {
  const text = 'Subject: first\r\nX-Long: ' + 'a'.repeat(100) + '\r\nFrom: late@example.org\r\n\r\n';
  assert.deepEqual(parseHeaderBlock(bytes(text), 50), [{ name: 'Subject', value: 'first' }]);
  const cutInContinuation = 'Subject: first\r\n second\r\n third' + 'x'.repeat(10);
  assert.deepEqual(parseHeaderBlock(bytes(cutInContinuation), 30), [
    { name: 'Subject', value: 'first second' },
  ]);
  const huge = bytes('X-Big: ' + 'b'.repeat(200_000) + '\r\nSubject: s\r\n\r\n');
  assert.deepEqual(parseHeaderBlock(huge), []);
  assert.equal(parseHeaderBlock(huge, 300_000)[1]!.value, 's');
});

test('decodeEncodedWords: Q and B, utf-8 / iso-8859-1 / us-ascii / windows-1252', () => {
  assert.equal(decodeEncodedWords('=?utf-8?Q?caf=C3=A9_au_lait?='), 'café au lait');
  assert.equal(decodeEncodedWords('=?UTF-8?B?Y2Fmw6k=?='), 'café');
  assert.equal(decodeEncodedWords('=?iso-8859-1?q?J=F6rg?= <j@example.org>'), 'Jörg <j@example.org>');
  assert.equal(decodeEncodedWords('=?ISO-8859-1?B?SvZyZw==?='), 'Jörg');
  assert.equal(decodeEncodedWords('=?us-ascii?Q?plain_text?='), 'plain text');
  assert.equal(decodeEncodedWords('=?windows-1252?Q?=80_and_=93quotes=94?='), '€ and “quotes”');
  // Missing base64 padding, as some senders write it.
  assert.equal(decodeEncodedWords('=?utf-8?B?Y2Fmw6k?='), 'café');
  // RFC 2231 language suffix.
  assert.equal(decodeEncodedWords('=?utf-8*en?Q?hello?='), 'hello');
});

test('decodeEncodedWords: whitespace between adjacent words goes, around plain text it stays', () => {
  assert.equal(decodeEncodedWords('=?utf-8?Q?a?= =?utf-8?Q?b?='), 'ab');
  assert.equal(decodeEncodedWords('=?utf-8?Q?a?=\t \t=?iso-8859-1?Q?b?='), 'ab');
  assert.equal(decodeEncodedWords('=?utf-8?Q?a_?= =?utf-8?Q?b?='), 'a b');
  assert.equal(decodeEncodedWords('x =?utf-8?Q?a?= y =?utf-8?Q?b?= z'), 'x a y b z');
  // A multi-byte character split across two words (common with B encoding) survives.
  const euro = bytes('€'); // e2 82 ac
  const w1 = btoa(String.fromCharCode(euro[0]!));
  const w2 = btoa(String.fromCharCode(euro[1]!, euro[2]!));
  assert.equal(decodeEncodedWords(`=?utf-8?B?${w1}?= =?utf-8?B?${w2}?=`), '€');
  assert.equal(decodeEncodedWords('=?utf-8?Q?=E2=82?= =?UTF-8?Q?=AC?='), '€');
});

test('decodeEncodedWords: unknown charsets and broken words are left as they are', () => {
  assert.equal(decodeEncodedWords('=?x-klingon?Q?qapla=27?='), '=?x-klingon?Q?qapla=27?=');
  assert.equal(decodeEncodedWords('=?x-klingon?Q?a?= =?utf-8?Q?b?='), '=?x-klingon?Q?a?= b');
  assert.equal(decodeEncodedWords('=?utf-8?B?not*base64?='), '=?utf-8?B?not*base64?=');
  assert.equal(decodeEncodedWords('=?utf-8?X?abc?='), '=?utf-8?X?abc?=');
  assert.equal(decodeEncodedWords('no words here =? at all ?='), 'no words here =? at all ?=');
  assert.equal(decodeEncodedWords('=?utf-8?Q?x=ZZ?='), 'x=ZZ');
});

test('headerSummary of real messages', () => {
  assert.deepEqual(headerSummary(bytes(NODEMAILER_EML)), {
    from: 'Andris Kreata <andris@kreata.ee>',
    subject: 'Nodemailer is unicode friendly ✔ (1476358788189)',
    date: 'Thu, 13 Oct 2016 11:39:48 +0000',
    messageId: '<012d606e-3550-2d94-b566-6cd996de88e3@kreata.ee>',
  });
  assert.deepEqual(headerSummary(bytes(CALENDAR_EVENT_EML)), {
    from: 'Andris Reinman <andris@postalsys.com>',
    subject: 'Invitation: Test event ⏰ @ Thu Apr 11, 2024 11am - 12pm (GMT+3) (andris@ethereal.email)',
    date: 'Thu, 11 Apr 2024 06:19:44 +0000',
    messageId: '<calendar-7791cb16-a4f3-43ae-a9a0-ed4003535ae7@google.com>',
  });
  // ISO-2022-JP is not in the minimum set, but the runtime's decoder knows it.
  assert.equal(headerSummary(bytes(JAPANESE_TXT)).subject, '日本語メールテスト (testing Japanese emails)');
});

test('headerSummary: absent fields are empty, the first occurrence wins, names match in any case', () => {
  assert.deepEqual(headerSummary(bytes('X-Only: this\r\n\r\nSubject: body\r\n')), {
    from: '',
    subject: '',
    date: '',
    messageId: '',
  });
  const s = headerSummary(bytes('SUBJECT: first\nsubject: second\nfrom: =?utf-8?B?w4lsaXNl?= <e@x.org>\n\n'));
  assert.equal(s.subject, 'first');
  assert.equal(s.from, 'Élise <e@x.org>');
});

test('headerSummary: decoded control characters cannot break a listing line', () => {
  const s = headerSummary(bytes('Subject: =?utf-8?Q?line1=0D=0Aline2=00?=\r\n\r\n'));
  assert.equal(s.subject, 'line1  line2 ');
});

test('total: arbitrary bytes never throw, values never hold a line break', () => {
  const headerish = fc.array(
    fc.oneof(
      fc.constantFrom(
        '\r\n',
        '\n',
        '\r',
        ' ',
        '\t',
        ':',
        'Subject',
        'From',
        '=?utf-8?B?',
        '=?x?Q?',
        '?=',
        '=C3',
      ),
      fc.string(),
    ),
  );
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array(),
        headerish.map((parts) => bytes(parts.join(''))),
      ),
      (input) => {
        for (const f of parseHeaderBlock(input)) {
          assert.doesNotMatch(f.value, /\n/);
          assert.ok(f.name.length > 0 && !f.name.includes(':'));
        }
        const sum = headerSummary(input);
        for (const v of [sum.from, sum.subject, sum.date, sum.messageId])
          assert.doesNotMatch(v, /[\x00-\x1f]/);
      },
    ),
  );
  fc.assert(
    fc.property(fc.string(), (s) => {
      const decoded = decodeEncodedWords(s);
      if (!s.includes('=?')) assert.equal(decoded, s);
    }),
  );
});
