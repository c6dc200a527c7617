// A private Dovecot for tests that need the mailbox server people put behind an MTA: LMTP (Tern's LMTP
// transport delivers to it) and ManageSieve/Pigeonhole (the reference Tern's ManageSieve is compared
// with). Its own base_dir, state_dir, users file and Maildirs in a temporary folder, on free loopback ports,
// started in the foreground and stopped by its pid. Needs root (Dovecot drops privileges to nobody).
// Deliberately NOT here: assertions; the tests decide what Dovecot's answers mean.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const DOVECOT = '/usr/sbin/dovecot';

/** Why a Dovecot test cannot run here, or false. */
export function dovecotSkip(protocol: 'lmtp' | 'managesieve'): string | false {
  if (!existsSync(DOVECOT)) return 'dovecot is not installed';
  if (process.getuid?.() !== 0) return 'starting a private Dovecot needs root';
  const binary = protocol === 'lmtp' ? '/usr/lib/dovecot/lmtp' : '/usr/lib/dovecot/managesieve';
  if (!existsSync(binary))
    return `${binary} is not installed (dovecot-${protocol === 'lmtp' ? 'lmtpd' : 'managesieved'})`;
  return false;
}

export interface DovecotOptions {
  readonly protocols: readonly ('lmtp' | 'managesieve')[];
  /** Users Dovecot knows (address → password); others are refused at RCPT / login. */
  readonly users: Readonly<Record<string, string>>;
}

export interface Dovecot {
  readonly dir: string;
  /** LMTP on TCP (when asked for). */
  readonly lmtpPort: number;
  /** LMTP on a Unix socket. */
  readonly lmtpPath: string;
  readonly managesievePort: number;
  /** The messages delivered to a user's INBOX (Maildir new/ and cur/), as stored. */
  messages(user: string): Promise<Buffer[]>;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address !== 'object') throw new Error('no port');
  return address.port;
}

function config(dir: string, o: DovecotOptions, lmtpPort: number, sievePort: number): string {
  return `
base_dir = ${dir}/run
state_dir = ${dir}/state
instance_name = tern-test-${lmtpPort}
protocols = ${o.protocols.join(' ')}
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_username_chars =
log_path = ${dir}/dovecot.log
default_login_user = dovenull
default_internal_user = dovecot
mail_location = maildir:${dir}/mail/%u
mail_uid = nobody
mail_gid = nogroup
first_valid_uid = 1
first_valid_gid = 1
postmaster_address = postmaster@example.test
recipient_delimiter = +
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u ${dir}/passwd
}
userdb {
  driver = passwd-file
  args = username_format=%u ${dir}/passwd
  default_fields = uid=nobody gid=nogroup home=${dir}/mail/%u
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = ${lmtpPort}
  }
  unix_listener lmtp {
    mode = 0666
  }
}
service managesieve-login {
  chroot =
  inet_listener sieve {
    address = 127.0.0.1
    port = ${sievePort}
  }
}
service anvil {
  chroot =
}
protocol lmtp {
  mail_plugins = sieve
}
plugin {
  sieve = file:${dir}/mail/%u/sieve;active=${dir}/mail/%u/.dovecot.sieve
}
`;
}

async function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('data', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export async function startDovecot(o: DovecotOptions): Promise<Dovecot> {
  const dir = await mkdtemp(join(tmpdir(), 'tern-dovecot-'));
  await chmod(dir, 0o755);
  for (const d of ['mail', 'run', 'state']) await mkdir(join(dir, d));
  const lmtpPort = await freePort();
  const sievePort = await freePort();
  await writeFile(join(dir, 'dovecot.conf'), config(dir, o, lmtpPort, sievePort));
  await writeFile(
    join(dir, 'passwd'),
    Object.entries(o.users)
      .map(([u, p]) => `${u}:{PLAIN}${p}::::::\n`)
      .join(''),
  );
  // The mail folders belong to the user Dovecot runs mail processes as.
  await new Promise((resolve) => spawn('chown', ['nobody:nogroup', join(dir, 'mail')]).once('exit', resolve));
  const child: ChildProcess = spawn(DOVECOT, ['-F', '-c', join(dir, 'dovecot.conf')], { stdio: 'ignore' });
  const port = o.protocols.includes('lmtp') ? lmtpPort : sievePort;
  let up = false;
  for (let i = 0; i < 100 && !(up = await answers(port)); i++) await new Promise((r) => setTimeout(r, 100));
  if (!up) {
    child.kill('SIGKILL');
    const log = await readFile(join(dir, 'dovecot.log'), 'utf8').catch(() => '');
    await rm(dir, { recursive: true, force: true });
    throw new Error(`the private Dovecot did not start:\n${log}`);
  }
  return {
    dir,
    lmtpPort,
    lmtpPath: join(dir, 'run', 'lmtp'),
    managesievePort: sievePort,
    async messages(user: string): Promise<Buffer[]> {
      const out: Buffer[] = [];
      for (const sub of ['new', 'cur']) {
        const folder = join(dir, 'mail', user, sub);
        const names = await readdir(folder).catch(() => [] as string[]);
        for (const n of names.sort()) out.push(await readFile(join(folder, n)));
      }
      return out;
    },
    async stop(): Promise<void> {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
