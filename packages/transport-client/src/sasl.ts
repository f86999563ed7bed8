/**
 * SASL mechanisms for c2s login (RFC 4616 PLAIN, RFC 5802 SCRAM-SHA-1, RFC 7677
 * SCRAM-SHA-256), on Node's native crypto: PBKDF2 runs in libuv's thread pool, so a login
 * costs milliseconds of CPU instead of the 0.3–1 s of xmpp.js's JS implementation.
 * No channel binding (`n,,`); passwords are used as given (no SASLprep: keep them ASCII or NFC).
 */
import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';
import { AuthError, ProtocolError } from '@xmppbus/core';

export type SaslMechanismName = 'PLAIN' | 'SCRAM-SHA-1' | 'SCRAM-SHA-256';

/** Strongest first: the default choice is the first of these the server offers. */
export const MECHANISM_PREFERENCE: readonly SaslMechanismName[] = ['SCRAM-SHA-256', 'SCRAM-SHA-1', 'PLAIN'];

export interface SaslSession {
  readonly mechanism: SaslMechanismName;
  /** Initial response (raw, not yet base64). */
  initial(): string;
  /** Answers a server challenge (raw). */
  challenge(data: string): Promise<string>;
  /** Checks the additional data of `<success/>` (SCRAM: the server signature). */
  success(data: string): void;
}

export function plain(username: string, password: string, authzid = ''): SaslSession {
  return {
    mechanism: 'PLAIN',
    initial: () => `${authzid}\u0000${username}\u0000${password}`,
    challenge: () => Promise.reject(new ProtocolError('unexpected SASL challenge for PLAIN')),
    success: () => {},
  };
}

/** RFC 5802 `saslname`: ',' and '=' are escaped. */
function saslName(name: string): string {
  return name.replace(/=/g, '=3D').replace(/,/g, '=2C');
}

function parseAttributes(data: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of data.split(',')) {
    const i = part.indexOf('=');
    if (i === 1) out.set(part[0]!, part.slice(2));
  }
  return out;
}

function pbkdf2Async(password: string, salt: Buffer, iterations: number, len: number, digest: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    pbkdf2(password, salt, iterations, len, digest, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

export interface ScramOptions {
  /** Client nonce (tests pass the RFC's); default 24 random bytes, base64. */
  nonce?: string;
  /** Refuse servers asking for more PBKDF2 iterations than this (default 100 000). */
  maxIterations?: number;
}

export function scram(
  mechanism: 'SCRAM-SHA-1' | 'SCRAM-SHA-256',
  username: string,
  password: string,
  options: ScramOptions = {},
): SaslSession {
  const hash = mechanism === 'SCRAM-SHA-1' ? 'sha1' : 'sha256';
  const hashLen = hash === 'sha1' ? 20 : 32;
  const nonce = options.nonce ?? randomBytes(24).toString('base64');
  const maxIterations = options.maxIterations ?? 100_000;
  const clientFirstBare = `n=${saslName(username)},r=${nonce}`;
  let serverSignature: Buffer | undefined;
  const hmac = (key: Buffer, data: string): Buffer => createHmac(hash, key).update(data, 'utf8').digest();

  return {
    mechanism,
    initial: () => `n,,${clientFirstBare}`,
    async challenge(serverFirst: string): Promise<string> {
      if (serverSignature) throw new ProtocolError('unexpected second SCRAM challenge');
      const attrs = parseAttributes(serverFirst);
      const r = attrs.get('r');
      const s = attrs.get('s');
      const i = Number(attrs.get('i'));
      if (!r || !s || !Number.isInteger(i) || i < 1) throw new ProtocolError('malformed SCRAM server-first-message');
      if (!r.startsWith(nonce)) throw new AuthError('SCRAM server nonce does not extend the client nonce');
      if (i > maxIterations) throw new AuthError(`SCRAM iteration count ${i} exceeds the limit ${maxIterations}`);
      const salted = await pbkdf2Async(password, Buffer.from(s, 'base64'), i, hashLen, hash);
      const clientKey = hmac(salted, 'Client Key');
      const storedKey = createHash(hash).update(clientKey).digest();
      const clientFinalNoProof = `c=biws,r=${r}`;
      const authMessage = `${clientFirstBare},${serverFirst},${clientFinalNoProof}`;
      const proof = xor(clientKey, hmac(storedKey, authMessage));
      serverSignature = hmac(hmac(salted, 'Server Key'), authMessage);
      return `${clientFinalNoProof},p=${proof.toString('base64')}`;
    },
    success(data: string): void {
      if (!serverSignature) throw new ProtocolError('SCRAM success before the challenge');
      const v = parseAttributes(data).get('v');
      if (v === undefined) throw new AuthError('SCRAM success without server signature');
      const got = Buffer.from(v, 'base64');
      // Mutual authentication: a server that does not know the password cannot produce this.
      if (got.length !== serverSignature.length || !timingSafeEqual(got, serverSignature))
        throw new AuthError('SCRAM server signature mismatch');
    },
  };
}
