// Tests of the configuration loader: defaults, a full round trip, one case per kind of error (each names
// its key and line), many errors at once, syntax errors, path resolution, file errors, and the example
// file and docs staying in step with the loader.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { defaultConfig } from './config.ts';
import type { Config } from './config.ts';
import { ConfigLoadError, formatConfigErrors, loadConfig, parseConfig } from './load.ts';
import type { ConfigError } from './load.ts';

const ROOT = join(import.meta.dirname, '..', '..');

function parsedOk(text: string): { config: Config; warnings: ConfigError[] } {
  const r = parseConfig(text, 'test.toml');
  if (!r.ok) assert.fail(`expected success, got:\n${formatConfigErrors(r.errors, 'test.toml')}`);
  return r;
}

function parsedErrors(text: string): ConfigError[] {
  const r = parseConfig(text, 'test.toml');
  if (r.ok) assert.fail('expected errors, got a config');
  return r.errors;
}

const tmpRoot = mkdtempSync(join(tmpdir(), 'tern-config-'));
after(() => rmSync(tmpRoot, { recursive: true, force: true }));
let tmpCount = 0;
function freshDir(): string {
  const dir = join(tmpRoot, String(tmpCount++));
  mkdirSync(dir, { recursive: true });
  return dir;
}

describe('parseConfig: defaults', () => {
  test('an empty file gives the defaults of config.ts, with source set', () => {
    const { config, warnings } = parsedOk('');
    assert.deepEqual(config, { ...defaultConfig(), source: 'test.toml' });
    assert.deepEqual(warnings, []);
  });

  test('a key left out keeps its default while its neighbours change', () => {
    const { config } = parsedOk('[limits]\nmax_recipients = 500\n');
    assert.equal(config.limits.maxRecipients, 500);
    assert.equal(config.limits.maxMessageBytes, defaultConfig().limits.maxMessageBytes);
    assert.deepEqual(config.listeners, defaultConfig().listeners);
  });

  test('the snapshot is deeply frozen', () => {
    const { config } = parsedOk('local_domains = ["example.org"]\n');
    assert.ok(Object.isFrozen(config));
    assert.ok(Object.isFrozen(config.limits));
    assert.ok(Object.isFrozen(config.localDomains));
    assert.ok(Object.isFrozen(config.listeners[0]));
    assert.throws(() => (config.localDomains as string[]).push('x'), TypeError);
  });
});

const FULL = `
hostname = "mx1.Example.org"
data_dir = "/var/lib/tern"
local_domains = ["Example.ORG", "example.net"]

[[listeners]]
service = "smtp"
address = "0.0.0.0:25"

[[listeners]]
service = "smtp"
address = "[2001:db8::1]:25"
tls = "none"

[[listeners]]
service = "submission"
address = "127.0.0.1:587"

[[listeners]]
service = "submissions"
address = "mail.example.org:465"

[tls]
cert = "/etc/tern/cert.pem"
key = "/etc/tern/key.pem"

[limits]
max_message_bytes = 10485760
max_recipients = 250
max_transactions_per_connection = 50
max_connections = 500
max_connections_per_ip = 10
max_command_line_bytes = 2048
max_text_line_bytes = 4096
long_lines = "accept"
max_errors = 5
greeting_timeout_seconds = 30
command_timeout_seconds = 60
data_block_timeout_seconds = 120.5
data_total_timeout_seconds = 900
shutdown_grace_seconds = 0

[smtp]
bare_line_endings = "normalize"
vrfy = true
trusted_networks = ["192.0.2.0/24", "2001:DB8::/32", "198.51.100.7"]

[log]
level = "debug"
format = "json"
`;

describe('parseConfig: a full file', () => {
  test('every key round-trips into Config, with units and case converted', () => {
    const { config, warnings } = parsedOk(FULL);
    assert.deepEqual(warnings, []);
    const expected: Config = {
      hostname: 'mx1.Example.org',
      dataDir: '/var/lib/tern',
      localDomains: ['example.org', 'example.net'],
      listeners: [
        { service: 'smtp', host: '0.0.0.0', port: 25, tls: 'starttls' },
        { service: 'smtp', host: '2001:db8::1', port: 25, tls: 'none' },
        { service: 'submission', host: '127.0.0.1', port: 587, tls: 'starttls' },
        { service: 'submissions', host: 'mail.example.org', port: 465, tls: 'implicit' },
      ],
      tls: { cert: '/etc/tern/cert.pem', key: '/etc/tern/key.pem' },
      limits: {
        maxMessageBytes: 10_485_760,
        maxRecipients: 250,
        maxTransactionsPerConnection: 50,
        maxConnections: 500,
        maxConnectionsPerIp: 10,
        maxCommandLineBytes: 2048,
        maxTextLineBytes: 4096,
        longLines: 'accept',
        maxErrors: 5,
        greetingTimeoutMs: 30_000,
        commandTimeoutMs: 60_000,
        dataBlockTimeoutMs: 120_500,
        dataTotalTimeoutMs: 900_000,
        shutdownGraceMs: 0,
      },
      smtp: {
        bareLineEndings: 'normalize',
        vrfy: true,
        trustedNetworks: ['192.0.2.0/24', '2001:db8::/32', '198.51.100.7/32'],
      },
      log: { level: 'debug', format: 'json' },
      source: 'test.toml',
    };
    assert.deepEqual(config, expected);
  });

  test('listeners as an inline array of tables work too', () => {
    const { config } = parsedOk(
      'listeners = [\n  { service = "smtp", address = "[::1]:2525" },\n  { service = "submissions", address = "127.0.0.1:0" },\n]\n',
    );
    assert.deepEqual(config.listeners, [
      { service: 'smtp', host: '::1', port: 2525, tls: 'starttls' },
      { service: 'submissions', host: '127.0.0.1', port: 0, tls: 'implicit' },
    ]);
  });

  test('port 0 listeners never conflict (the OS picks each port)', () => {
    const { config } = parsedOk(
      '[[listeners]]\nservice = "smtp"\naddress = "127.0.0.1:0"\n[[listeners]]\nservice = "submission"\naddress = "127.0.0.1:0"\n',
    );
    assert.equal(config.listeners.length, 2);
  });
});

/** One bad setting each: the error must name this key, on this line, with a message matching this. */
const ERROR_CASES: { name: string; toml: string; key: string; line: number; message: RegExp }[] = [
  {
    name: 'unknown top-level key, with a suggestion',
    toml: 'hostname = "a.example"\ndataDir = "x"\n',
    key: 'dataDir',
    line: 2,
    message: /unknown key; did you mean "data_dir"/,
  },
  {
    name: 'unknown key in a section, with a suggestion',
    toml: '[limits]\nmax_recipients = 100\nmax_recipents = 5\n',
    key: 'limits.max_recipents',
    line: 3,
    message: /did you mean "max_recipients"/,
  },
  {
    name: 'unknown key with nothing close lists the known keys',
    toml: '\n[log]\ncolour = true\n',
    key: 'log.colour',
    line: 3,
    message: /known here: level, format/,
  },
  {
    name: 'unknown section',
    toml: '\n\n[queue]\nretries = 3\n',
    key: 'queue',
    line: 3,
    message: /unknown key/,
  },
  {
    name: 'wrong type: string for an integer',
    toml: '[limits]\nmax_recipients = "100"\n',
    key: 'limits.max_recipients',
    line: 2,
    message: /must be an integer, not a string/,
  },
  {
    name: 'wrong type: float for an integer',
    toml: '[limits]\n\nmax_errors = 2.5\n',
    key: 'limits.max_errors',
    line: 3,
    message: /must be an integer, not a float/,
  },
  {
    name: 'wrong type: string for a boolean',
    toml: '[smtp]\nvrfy = "yes"\n',
    key: 'smtp.vrfy',
    line: 2,
    message: /must be true or false, not a string/,
  },
  {
    name: 'wrong type: a scalar where a section belongs',
    toml: 'hostname = "a.example"\nlimits = 5\n',
    key: 'limits',
    line: 2,
    message: /must be a table \(\[limits\]\), not an integer/,
  },
  {
    name: 'wrong type: a date where a string belongs',
    toml: 'data_dir = 1979-05-27\n',
    key: 'data_dir',
    line: 1,
    message: /must be a string, not a date-time/,
  },
  {
    name: 'wrong type: [listeners] as a single table',
    toml: '[listeners]\nservice = "smtp"\n',
    key: 'listeners',
    line: 1,
    message: /must be an array of tables \(\[\[listeners\]\]\)/,
  },
  {
    name: 'out of range: command line below 512',
    toml: '[limits]\nmax_command_line_bytes = 511\n',
    key: 'limits.max_command_line_bytes',
    line: 2,
    message: /at least 512 \(RFC 5321 §4\.5\.3\.1\.4/,
  },
  {
    name: 'out of range: text line below 1000',
    toml: '[limits]\nmax_text_line_bytes = 998\n',
    key: 'limits.max_text_line_bytes',
    line: 2,
    message: /at least 1000/,
  },
  {
    name: 'out of range: zero recipients',
    toml: '[limits]\nmax_recipients = 0\n',
    key: 'limits.max_recipients',
    line: 2,
    message: /at least 1/,
  },
  {
    name: 'out of range: a zero timeout',
    toml: '[limits]\ncommand_timeout_seconds = 0\n',
    key: 'limits.command_timeout_seconds',
    line: 2,
    message: /greater than 0/,
  },
  {
    name: 'out of range: a timeout past what Node timers can hold',
    toml: '[limits]\ndata_total_timeout_seconds = 2147484\n',
    key: 'limits.data_total_timeout_seconds',
    line: 2,
    message: /at most 2147483 seconds/,
  },
  {
    name: 'out of range: negative shutdown grace',
    toml: '[limits]\nshutdown_grace_seconds = -1\n',
    key: 'limits.shutdown_grace_seconds',
    line: 2,
    message: /must not be negative/,
  },
  {
    name: 'bad enum value',
    toml: '[log]\nlevel = "verbose"\n',
    key: 'log.level',
    line: 2,
    message: /"verbose" is not one of "trace", "debug", "info", "warn", "error"/,
  },
  {
    name: 'bad hostname',
    toml: 'hostname = "mail server"\n',
    key: 'hostname',
    line: 1,
    message: /not a domain name/,
  },
  {
    name: 'bad local domain, found on its own line of a multi-line array',
    toml: 'local_domains = [\n  "example.org",\n  "bad_domain.example",\n]\n',
    key: 'local_domains[1]',
    line: 3,
    message: /"bad_domain\.example" is not a domain name/,
  },
  {
    name: 'bad trusted network: prefix too long',
    toml: '[smtp]\ntrusted_networks = ["10.0.0.0/8",\n  "10.0.0.0/33"]\n',
    key: 'smtp.trusted_networks[1]',
    line: 3,
    message: /not a network in CIDR form/,
  },
  {
    name: 'bad trusted network: not an address',
    toml: '[smtp]\ntrusted_networks = ["intranet"]\n',
    key: 'smtp.trusted_networks[0]',
    line: 2,
    message: /"intranet" is not a network/,
  },
  {
    name: 'listener address without a port',
    toml: '[[listeners]]\nservice = "smtp"\naddress = "0.0.0.0"\n',
    key: 'listeners[0].address',
    line: 3,
    message: /has no port/,
  },
  {
    name: 'listener IPv6 address without brackets',
    toml: '[[listeners]]\nservice = "smtp"\naddress = "::1:25"\n',
    key: 'listeners[0].address',
    line: 3,
    message: /IPv6 addresses go in brackets/,
  },
  {
    name: 'listener port out of range',
    toml: '[[listeners]]\nservice = "smtp"\naddress = "127.0.0.1:65536"\n',
    key: 'listeners[0].address',
    line: 3,
    message: /not a port number/,
  },
  {
    name: 'listener with a bad IPv4 address',
    toml: '[[listeners]]\nservice = "smtp"\naddress = "127.0.0.256:25"\n',
    key: 'listeners[0].address',
    line: 3,
    message: /neither an IPv4 address nor a host name/,
  },
  {
    name: 'listener with a bad IPv6 address',
    toml: '[[listeners]]\nservice = "smtp"\naddress = "[::g]:25"\n',
    key: 'listeners[0].address',
    line: 3,
    message: /not an IPv6 address/,
  },
  {
    name: 'listener without a service points at its header',
    toml: 'hostname = "a.example"\n\n[[listeners]]\naddress = "127.0.0.1:25"\n',
    key: 'listeners[0].service',
    line: 3,
    message: /missing/,
  },
  {
    name: 'listener with an unknown service',
    toml: '[[listeners]]\nservice = "smtps"\naddress = "127.0.0.1:465"\n',
    key: 'listeners[0].service',
    line: 2,
    message: /"smtps" is not one of/,
  },
  {
    name: 'submissions without implicit TLS',
    toml: '[[listeners]]\nservice = "submissions"\naddress = "127.0.0.1:465"\ntls = "starttls"\n',
    key: 'listeners[0].tls',
    line: 4,
    message: /implicit TLS by definition/,
  },
  {
    name: 'smtp with implicit TLS',
    toml: '[[listeners]]\nservice = "smtp"\naddress = "127.0.0.1:25"\ntls = "implicit"\n',
    key: 'listeners[0].tls',
    line: 4,
    message: /STARTTLS/,
  },
  {
    name: 'an empty listener list',
    toml: 'listeners = []\n',
    key: 'listeners',
    line: 1,
    message: /at least one listener/,
  },
  {
    name: 'duplicate listener address, reported on the second',
    toml: '[[listeners]]\nservice = "smtp"\naddress = "127.0.0.1:25"\n\n[[listeners]]\nservice = "submission"\naddress = "127.0.0.1:25"\n',
    key: 'listeners[1].address',
    line: 7,
    message: /127\.0\.0\.1:25 conflicts with listeners\[0\] \(127\.0\.0\.1:25, line 3\)/,
  },
  {
    name: 'duplicate IPv6 listener written two ways',
    toml: '[[listeners]]\nservice = "smtp"\naddress = "[::1]:25"\n[[listeners]]\nservice = "smtp"\naddress = "[0:0::1]:25"\n',
    key: 'listeners[1].address',
    line: 6,
    message: /conflicts with listeners\[0\]/,
  },
  {
    name: 'a listener under a wildcard on the same port',
    toml: '[[listeners]]\nservice = "smtp"\naddress = "0.0.0.0:25"\n[[listeners]]\nservice = "smtp"\naddress = "192.0.2.1:25"\n',
    key: 'listeners[1].address',
    line: 6,
    message: /conflicts with listeners\[0\] \(0\.0\.0\.0:25/,
  },
  {
    name: 'an IPv4 listener beside dual-stack [::] on the same port',
    toml: 'listeners = [{ service = "smtp", address = "[::]:25" },\n  { service = "smtp", address = "0.0.0.0:25" }]\n',
    key: 'listeners[1].address',
    line: 2,
    message: /conflicts with listeners\[0\] \(\[::\]:25, line 1\)/,
  },
  {
    name: 'tls.cert without tls.key',
    toml: '\n[tls]\ncert = "cert.pem"\n',
    key: 'tls.key',
    line: 2,
    message: /give both tls\.cert and tls\.key, or neither/,
  },
  {
    name: 'an empty path',
    toml: 'data_dir = ""\n',
    key: 'data_dir',
    line: 1,
    message: /must not be empty/,
  },
  {
    name: 'dotted keys are located too',
    toml: 'hostname = "a.example"\nlimits.max_errors = 0\n',
    key: 'limits.max_errors',
    line: 2,
    message: /at least 1/,
  },
];

describe('parseConfig: each kind of error names its key and line', () => {
  for (const c of ERROR_CASES) {
    test(c.name, () => {
      const errors = parsedErrors(c.toml);
      assert.equal(errors.length, 1, formatConfigErrors(errors, 'test.toml'));
      const [e] = errors;
      assert.equal(e!.key, c.key);
      assert.equal(e!.line, c.line);
      assert.match(e!.message, c.message);
    });
  }
});

describe('parseConfig: many errors at once', () => {
  test('every error in the file is reported, in file order', () => {
    const errors = parsedErrors(
      [
        'hostname = "bad host"', // 1
        'local_domains = ["ok.example", "-bad.example"]', // 2
        '', // 3
        '[[listeners]]', // 4
        'service = "smtp"', // 5
        'address = "nowhere"', // 6
        '', // 7
        '[limits]', // 8
        'max_recipients = "lots"', // 9
        'max_command_line_bytes = 10', // 10
        'colour = "blue"', // 11
        '', // 12
        '[log]', // 13
        'format = "xml"', // 14
      ].join('\n'),
    );
    assert.deepEqual(
      errors.map((e) => [e.line, e.key]),
      [
        [1, 'hostname'],
        [2, 'local_domains[1]'],
        [6, 'listeners[0].address'],
        [9, 'limits.max_recipients'],
        [10, 'limits.max_command_line_bytes'],
        [11, 'limits.colour'],
        [14, 'log.format'],
      ],
    );
  });

  test('keys inside multi-line strings do not confuse the line scan', () => {
    const errors = parsedErrors('hostname = """\nlimits = 1\n"""\n[limits]\nmax_errors = 0\n');
    assert.deepEqual(
      errors.map((e) => [e.line, e.key]),
      [
        [1, 'hostname'],
        [5, 'limits.max_errors'],
      ],
    );
  });
});

describe('parseConfig: TOML syntax errors', () => {
  test('a syntax error is one error with its line', () => {
    const errors = parsedErrors('hostname = "a.example"\n[limits]\nmax_recipients = = 3\n');
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!.key, '');
    assert.equal(errors[0]!.line, 3);
    assert.match(errors[0]!.message, /^TOML syntax error: .+ \(column \d+\)$/);
  });

  test('a key defined twice is a syntax error on the second line', () => {
    const errors = parsedErrors('[smtp]\nvrfy = true\nvrfy = false\n');
    assert.equal(errors[0]!.line, 3);
    assert.match(errors[0]!.message, /TOML syntax error/);
  });
});

describe('parseConfig: warnings', () => {
  test('fewer than 100 recipients is allowed, with a warning that names key and line', () => {
    const { config, warnings } = parsedOk('[limits]\nmax_recipients = 10\n');
    assert.equal(config.limits.maxRecipients, 10);
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0]!.key, 'limits.max_recipients');
    assert.equal(warnings[0]!.line, 2);
    assert.match(warnings[0]!.message, /RFC 5321 §4\.5\.3\.1\.8/);
  });

  test('a message limit under 64K is allowed with a warning', () => {
    const { warnings } = parsedOk('[limits]\nmax_message_bytes = 1000\n');
    assert.deepEqual(
      warnings.map((w) => w.key),
      ['limits.max_message_bytes'],
    );
  });

  test('a local domain listed twice (in any case) is kept once, with a warning', () => {
    const { config, warnings } = parsedOk('local_domains = ["a.example",\n "A.Example"]\n');
    assert.deepEqual(config.localDomains, ['a.example']);
    assert.deepEqual(
      warnings.map((w) => [w.key, w.line]),
      [['local_domains[1]', 2]],
    );
  });
});

describe('formatConfigErrors', () => {
  test('FILE:LINE: key: message, leaving out what is unknown', () => {
    const text = formatConfigErrors(
      [
        { key: 'limits.max_errors', line: 4, message: 'must be at least 1' },
        { key: '', line: 2, message: 'TOML syntax error: x' },
        { key: '', line: null, message: 'cannot read' },
        { key: 'hostname', line: null, message: 'bad' },
      ],
      '/etc/tern.toml',
    );
    assert.equal(
      text,
      [
        '/etc/tern.toml:4: limits.max_errors: must be at least 1',
        '/etc/tern.toml:2: TOML syntax error: x',
        '/etc/tern.toml: cannot read',
        '/etc/tern.toml: hostname: bad',
      ].join('\n'),
    );
  });
});

describe('loadConfig', () => {
  test('no path and no ./tern.toml: the defaults, data_dir resolved against cwd', () => {
    const cwd = freshDir();
    const config = loadConfig({ path: null, cwd });
    assert.deepEqual(config, { ...defaultConfig(), dataDir: join(cwd, 'data'), source: null });
    assert.ok(Object.isFrozen(config.limits));
  });

  test('no path: ./tern.toml in cwd is used when it exists', () => {
    const cwd = freshDir();
    writeFileSync(join(cwd, 'tern.toml'), 'hostname = "mx.example.org"\n');
    const config = loadConfig({ path: null, cwd });
    assert.equal(config.hostname, 'mx.example.org');
    assert.equal(config.source, join(cwd, 'tern.toml'));
  });

  test('relative paths resolve against the config file directory, not cwd', () => {
    const cwd = freshDir();
    const etc = join(cwd, 'etc', 'tern');
    mkdirSync(etc, { recursive: true });
    writeFileSync(
      join(etc, 'main.toml'),
      'data_dir = "../../var/mail"\n[tls]\ncert = "certs/cert.pem"\nkey = "/abs/key.pem"\n',
    );
    const config = loadConfig({ path: 'etc/tern/main.toml', cwd });
    assert.equal(config.source, join(etc, 'main.toml'));
    assert.equal(config.dataDir, join(cwd, 'var', 'mail'));
    assert.equal(config.tls.cert, join(etc, 'certs', 'cert.pem'));
    assert.equal(config.tls.key, '/abs/key.pem');
  });

  test('parseConfig itself leaves relative paths as written', () => {
    const { config } = parsedOk('data_dir = "mail"\n');
    assert.equal(config.dataDir, 'mail');
  });

  test('a named file that is missing throws ConfigLoadError naming the file', () => {
    const cwd = freshDir();
    const err = catchLoad({ path: 'nope.toml', cwd });
    assert.equal(err.source, join(cwd, 'nope.toml'));
    assert.deepEqual(err.errors, [
      { key: '', line: null, message: 'cannot read the configuration file: it does not exist' },
    ]);
    assert.equal(
      err.message,
      `${join(cwd, 'nope.toml')}: cannot read the configuration file: it does not exist`,
    );
  });

  test('./tern.toml that is a directory is an error, not a silent fallback', () => {
    const cwd = freshDir();
    mkdirSync(join(cwd, 'tern.toml'));
    const err = catchLoad({ path: null, cwd });
    assert.match(err.message, /it is a directory/);
  });

  test('a bad file throws ConfigLoadError listing each error as FILE:LINE: key: message', () => {
    const cwd = freshDir();
    const file = join(cwd, 'tern.toml');
    writeFileSync(file, '[limits]\nmax_errors = 0\n[log]\nlevel = "loud"\n');
    const err = catchLoad({ path: 'tern.toml', cwd });
    assert.equal(err.errors.length, 2);
    assert.equal(
      err.message,
      `${file}:2: limits.max_errors: must be at least 1\n${file}:4: log.level: "loud" is not one of "trace", "debug", "info", "warn", "error"`,
    );
  });

  test('a file that is not UTF-8 is refused', () => {
    const cwd = freshDir();
    writeFileSync(join(cwd, 'tern.toml'), Buffer.from([0x68, 0x3d, 0x22, 0xff, 0xfe, 0x22, 0x0a]));
    assert.match(catchLoad({ path: null, cwd }).message, /not valid UTF-8/);
  });

  test('warnings of a file that loads go to onWarning', () => {
    const cwd = freshDir();
    writeFileSync(join(cwd, 'tern.toml'), '[limits]\nmax_recipients = 5\n');
    const seen: string[] = [];
    const config = loadConfig({
      path: null,
      cwd,
      onWarning: (w, source) => seen.push(formatConfigErrors([w], source)),
    });
    assert.equal(config.limits.maxRecipients, 5);
    assert.equal(seen.length, 1);
    assert.match(
      seen[0]!,
      new RegExp(`^${escapeRegExp(join(cwd, 'tern.toml'))}:2: limits\\.max_recipients: `),
    );
  });
});

describe('tern.example.toml and docs/configuration.md', () => {
  const example = readFileSync(join(ROOT, 'tern.example.toml'), 'utf8');

  test('the example parses, without warnings, to exactly the defaults', () => {
    const { config, warnings } = parsedOk(example);
    assert.deepEqual(warnings, []);
    assert.deepEqual(config, { ...defaultConfig(), source: 'test.toml' });
  });

  test('the example still parses with its commented keys switched on', () => {
    const uncommented = example.replace(/^# ((?:cert|key) = .*)$/gm, '$1');
    assert.notEqual(uncommented, example);
    const { config } = parsedOk(uncommented);
    assert.notEqual(config.tls.cert, null);
    assert.notEqual(config.tls.key, null);
  });

  test('every key of the example is documented in docs/configuration.md', () => {
    const docs = readFileSync(join(ROOT, 'docs', 'configuration.md'), 'utf8');
    const keys = [...example.matchAll(/^(?:# )?([a-z_]+) = /gm)].map((m) => m[1]!);
    assert.ok(keys.length >= 25, `found only ${keys.length} keys in the example`);
    const missing = keys.filter((k) => !docs.includes(`\`${k}\``));
    assert.deepEqual(missing, []);
  });
});

function catchLoad(opts: { path: string | null; cwd: string }): ConfigLoadError {
  try {
    loadConfig(opts);
  } catch (err) {
    assert.ok(err instanceof ConfigLoadError, `expected ConfigLoadError, got ${String(err)}`);
    return err;
  }
  return assert.fail('expected loadConfig to throw');
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
