// TLS material for the listeners: the operator's PEM files (tls.cert / tls.key), or else a self-signed
// certificate made once and kept in <data_dir>/tls so STARTTLS (RFC 3207) and implicit TLS (RFC 8314)
// work out of the box. Opportunistic SMTP peers accept a self-signed certificate (RFC 7435); clients of
// submission need the operator's real one, which is why the configured pair always wins.
// Deliberately not here: ACME, SNI with several certificates, reloading on file change.
//
// SECURITY: the private key is written with mode 0600 inside a 0700 directory, created through a temporary
// file and a rename so no reader ever sees a half-written key.

import { randomBytes, X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { createSecureContext as nodeCreateSecureContext } from 'node:tls';
import type { SecureContext, TlsOptions } from 'node:tls';
import { generate } from 'selfsigned';
import type { Config } from '../config/config.ts';
import { Events } from '../core/events.ts';
import type { Logger } from '../core/ports.ts';

export interface TlsMaterial {
  /** PEM certificate (chain) to present. */
  readonly cert: string;
  /** PEM private key. */
  readonly key: string;
  readonly selfSigned: boolean;
}

/** A configured certificate or key that cannot be used; `key` names the config key to fix. */
export class TlsMaterialError extends Error {
  readonly key: 'tls.cert' | 'tls.key';
  constructor(key: 'tls.cert' | 'tls.key', message: string, options?: { cause?: unknown }) {
    super(`${key}: ${message}`, options);
    this.name = 'TlsMaterialError';
    this.key = key;
  }
}

const DAY_MS = 86_400_000;
/** ~10 years: a self-signed certificate has no one to renew it, so it should outlive the install. */
const SELF_SIGNED_VALID_MS = 3653 * DAY_MS;
/** Backdated a day so peers with a slow clock do not see a certificate from the future. */
const SELF_SIGNED_BACKDATE_MS = DAY_MS;
/** A self-signed certificate this close to expiry is replaced at start rather than left to lapse. */
const SELF_SIGNED_RENEW_BEFORE_MS = 30 * DAY_MS;

export function selfSignedPaths(dataDir: string): { dir: string; cert: string; key: string } {
  const dir = join(dataDir, 'tls');
  return { dir, cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') };
}

export async function loadTlsMaterial(
  config: Pick<Config, 'hostname' | 'dataDir' | 'tls'>,
  logger: Logger,
  options: { nowMs?: number } = {},
): Promise<TlsMaterial> {
  const nowMs = options.nowMs ?? Date.now();
  const { cert: certPath, key: keyPath } = config.tls;
  if (certPath !== null || keyPath !== null) {
    if (certPath === null) throw new TlsMaterialError('tls.cert', 'must be set when tls.key is set');
    if (keyPath === null) throw new TlsMaterialError('tls.key', 'must be set when tls.cert is set');
    return loadConfigured(certPath, keyPath, logger, nowMs);
  }
  return loadSelfSigned(config.hostname, config.dataDir, logger, nowMs);
}

async function readPem(path: string, key: 'tls.cert' | 'tls.key'): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new TlsMaterialError(key, `cannot read ${JSON.stringify(path)}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/** Parse and cross-check a pair; returns a reason instead of throwing so callers decide who is at fault. */
function inspectPair(
  cert: string,
  key: string,
): { ok: true; x509: X509Certificate } | { ok: false; key: 'tls.cert' | 'tls.key'; reason: string } {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    return { ok: false, key: 'tls.cert', reason: `not a PEM certificate (${(err as Error).message})` };
  }
  try {
    if (!x509.checkPrivateKey(createPrivateKey(key))) {
      return { ok: false, key: 'tls.key', reason: 'does not match the certificate in tls.cert' };
    }
  } catch (err) {
    return {
      ok: false,
      key: 'tls.key',
      reason: `not an unencrypted PEM private key (${(err as Error).message})`,
    };
  }
  return { ok: true, x509 };
}

async function loadConfigured(
  certPath: string,
  keyPath: string,
  logger: Logger,
  nowMs: number,
): Promise<TlsMaterial> {
  const cert = await readPem(certPath, 'tls.cert');
  const key = await readPem(keyPath, 'tls.key');
  const checked = inspectPair(cert, key);
  if (!checked.ok) throw new TlsMaterialError(checked.key, `${JSON.stringify(certPath)}: ${checked.reason}`);
  const fields = { cert: certPath, subject: checked.x509.subject, validTo: checked.x509.validTo };
  // An expired certificate is still served: refusing to start would stop mail, and most MTAs still
  // deliver over TLS with a lapsed certificate. The warning is for the operator.
  if (Date.parse(checked.x509.validTo) < nowMs)
    logger.warn(Events.tlsCertLoaded, { ...fields, expired: true });
  else logger.event(Events.tlsCertLoaded, fields);
  return { cert, key, selfSigned: false };
}

async function readIfPresent(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

async function loadSelfSigned(
  hostname: string,
  dataDir: string,
  logger: Logger,
  nowMs: number,
): Promise<TlsMaterial> {
  const paths = selfSignedPaths(dataDir);
  const cert = await readIfPresent(paths.cert);
  const key = await readIfPresent(paths.key);
  if (cert !== null && key !== null) {
    const reason = reasonToReplace(cert, key, hostname, nowMs);
    if (reason === null) {
      logger.event(Events.tlsSelfSignedLoaded, { cert: paths.cert, hostname });
      return { cert, key, selfSigned: true };
    }
    logger.warn(Events.tlsSelfSignedReplaced, { cert: paths.cert, hostname, reason });
  }
  const made = await makeSelfSigned(hostname, nowMs);
  await mkdir(paths.dir, { recursive: true, mode: 0o700 });
  // Key first: a crash between the renames leaves a pair that fails the match check and is remade.
  await writeAtomically(paths.key, made.key, 0o600);
  await writeAtomically(paths.cert, made.cert, 0o644);
  logger.event(Events.tlsSelfSignedCreated, {
    cert: paths.cert,
    hostname,
    validTo: new Date(made.notAfterMs).toISOString(),
  });
  return { cert: made.cert, key: made.key, selfSigned: true };
}

function reasonToReplace(cert: string, key: string, hostname: string, nowMs: number): string | null {
  const checked = inspectPair(cert, key);
  if (!checked.ok) return checked.reason;
  if (Date.parse(checked.x509.validTo) - SELF_SIGNED_RENEW_BEFORE_MS < nowMs) return 'expired or expiring';
  // Not yet valid: the clock was wrong when it was made (or is wrong now); peers would refuse it either way.
  if (Date.parse(checked.x509.validFrom) > nowMs) return 'not yet valid';
  const matches = isIP(hostname) ? checked.x509.checkIP(hostname) : checked.x509.checkHost(hostname);
  if (matches === undefined) return 'hostname changed';
  return null;
}

async function makeSelfSigned(
  hostname: string,
  nowMs: number,
): Promise<{ cert: string; key: string; notAfterMs: number }> {
  const names = [...new Set([hostname, 'localhost', '127.0.0.1'])];
  const notAfterMs = nowMs + SELF_SIGNED_VALID_MS;
  const pems = await generate([{ name: 'commonName', value: hostname }], {
    keyType: 'rsa', // RSA rather than ECDSA: some old SMTP peers still offer no ECDSA suites.
    keySize: 2048,
    algorithm: 'sha256',
    notBeforeDate: new Date(nowMs - SELF_SIGNED_BACKDATE_MS),
    notAfterDate: new Date(notAfterMs),
    extensions: [
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: names.map((n) => (isIP(n) ? { type: 7, ip: n } : { type: 2, value: n })),
      },
    ],
  });
  return { cert: pems.cert, key: pems.private, notAfterMs };
}

async function writeAtomically(path: string, data: string, mode: number): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await writeFile(tmp, data, { mode, flag: 'wx', flush: true });
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/**
 * Server TLS options shared by both listener kinds: TLS 1.0/1.1 off (RFC 8996); Node's default cipher list
 * is already forward-secret first. For implicit TLS pass these to tls.createServer (it ignores a
 * `secureContext` option and would serve no certificate at all).
 */
export function serverTlsOptions(
  material: Pick<TlsMaterial, 'cert' | 'key'>,
  options: { minVersion?: 'TLSv1.2' | 'TLSv1.3'; ca?: string } = {},
): TlsOptions {
  return {
    cert: material.cert,
    key: material.key,
    minVersion: options.minVersion ?? 'TLSv1.2',
    honorCipherOrder: true,
    // CAs whose client certificates count as verified (tls.client_ca).
    ...(options.ca === undefined ? {} : { ca: options.ca }),
  };
}

/** The same as a SecureContext, for STARTTLS: `new TLSSocket(socket, { isServer: true, secureContext })`. */
export function createSecureContext(
  material: Pick<TlsMaterial, 'cert' | 'key'>,
  options: { minVersion?: 'TLSv1.2' | 'TLSv1.3'; ca?: string } = {},
): SecureContext {
  return nodeCreateSecureContext(serverTlsOptions(material, options));
}
