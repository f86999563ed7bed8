/**
 * Throwaway TLS material for the test servers: one test CA per test process (kept in memory
 * only) and a leaf certificate per server, made with the `openssl` CLI (Node cannot sign X.509).
 * Nothing here is ever committed or reused across runs.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { ConfigError } from '@xmppbus/core';

export interface TestCa {
  /** The CA certificate, PEM: what tests pass as `tls.ca`. */
  readonly certPem: string;
  readonly keyPem: string;
}

export interface ServerCertificate {
  /** Absolute paths inside the server's temp dir. */
  readonly certFile: string;
  readonly keyFile: string;
  readonly caPem: string;
}

/**
 * P-256 keys: generated in ~1 ms (RSA-2048 would cost ~100 ms each). Valid 40 days: ejabberd
 * warns at start about certificates that expire within a month.
 */
const KEY_ARGS = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '40'];

function openssl(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('openssl', args, { timeout: 30_000 }, (err, _stdout, stderr) => {
      if (!err) return resolve();
      const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
      reject(
        new ConfigError(
          missing
            ? 'openssl not found: run scripts/install-servers.sh (the TLS test certificates need it)'
            : `openssl ${args[0] ?? ''} failed: ${stderr || err.message}`,
          { cause: err },
        ),
      );
    });
  });
}

async function makeCa(): Promise<TestCa> {
  const dir = mkdtempSync(join(tmpdir(), 'xmppbus-testca-'));
  try {
    await openssl([
      'req',
      '-x509',
      ...KEY_ARGS,
      '-keyout',
      join(dir, 'ca.key'),
      '-out',
      join(dir, 'ca.pem'),
      '-subj',
      `/CN=xmppbus throwaway test CA ${randomBytes(4).toString('hex')}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    return {
      certPem: readFileSync(join(dir, 'ca.pem'), 'utf8'),
      keyPem: readFileSync(join(dir, 'ca.key'), 'utf8'),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

let shared: Promise<TestCa> | undefined;

/** The test CA of this process, created on first use (a failed attempt is not cached). */
export function testCa(): Promise<TestCa> {
  shared ??= makeCa().catch((err: unknown) => {
    shared = undefined;
    throw err;
  });
  return shared;
}

/** A fresh CA unrelated to the servers' one: for tests that check a foreign CA is refused. */
export function createTestCa(): Promise<TestCa> {
  return makeCa();
}

/**
 * Issues a server certificate for `names` (subjectAltName DNS entries; the first is the CN),
 * signed by the process's test CA, into `dir` as `server.crt`, `server.key` and `ca.crt`. The
 * CA key is written next to them only for the openssl call and removed right after.
 */
export async function issueServerCertificate(dir: string, names: readonly string[]): Promise<ServerCertificate> {
  const ca = await testCa();
  const certFile = join(dir, 'server.crt');
  const keyFile = join(dir, 'server.key');
  const caFile = join(dir, 'ca.crt');
  const caKeyFile = join(dir, `ca-${randomBytes(6).toString('hex')}.key`);
  writeFileSync(caFile, ca.certPem);
  writeFileSync(caKeyFile, ca.keyPem, { mode: 0o600 });
  try {
    await openssl([
      'req',
      '-x509',
      '-CA',
      caFile,
      '-CAkey',
      caKeyFile,
      ...KEY_ARGS,
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-subj',
      `/CN=${names[0] ?? 'localhost'}`,
      '-addext',
      `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}`,
      '-addext',
      'basicConstraints=critical,CA:FALSE',
      '-addext',
      'keyUsage=critical,digitalSignature',
      '-addext',
      'extendedKeyUsage=serverAuth',
    ]);
  } finally {
    unlinkSync(caKeyFile);
  }
  return { certFile, keyFile, caPem: ca.certPem };
}
