import { createHash } from 'node:crypto';
import { connect } from 'node:net';

import { AuthError, ConnectionError, ProtocolError, TimeoutError } from '@xmppbus/core';

export interface HandshakeOptions {
  host?: string;
  port: number;
  /** Component name to authenticate as (stream `to`). */
  name: string;
  secret: string;
  /** Milliseconds for the whole exchange (default 5000). */
  timeout?: number;
  signal?: AbortSignal;
}

const NS_STREAM = 'http://etherx.jabber.org/streams';

/** An authenticated raw component stream, read as text: just enough for the harness's probes. */
export interface RawComponentStream {
  /** Everything received so far. */
  readonly received: string;
  write(data: string): void;
  /** Resolves true once `pred` holds on what was received, false after `ms` without it. */
  until(pred: (received: string) => boolean, ms: number): Promise<boolean>;
  /** Closes the stream politely and the socket. */
  close(): void;
}

/**
 * Performs a full XEP-0114 handshake over a raw socket and closes the stream again. Resolves when
 * the server answered `<handshake/>`. Rejects with AuthError when the server refused the
 * credentials (`not-authorized`, `host-unknown`, `conflict`, ...), ConnectionError when the socket
 * failed (e.g. refused), TimeoutError when no answer came in time.
 */
export async function componentHandshake(options: HandshakeOptions): Promise<void> {
  (await openComponentStream(options)).close();
}

/**
 * Opens a raw component stream and performs the XEP-0114 handshake; resolves with the open stream
 * once the server answered `<handshake/>`. Rejects as `componentHandshake` does.
 */
export function openComponentStream(options: HandshakeOptions): Promise<RawComponentStream> {
  const { host = '127.0.0.1', port, name, secret, timeout = 5000, signal } = options;
  return new Promise<RawComponentStream>((resolve, reject) => {
    let buf = '';
    let sentHandshake = false;
    let settled = false;
    const waiters = new Set<() => void>();
    const sock = connect({ host, port, noDelay: true });
    const stream: RawComponentStream = {
      get received() {
        return buf;
      },
      write: (data) => void sock.write(data),
      until: (pred, ms) =>
        new Promise<boolean>((done) => {
          if (pred(buf)) return done(true);
          const check = (): void => {
            if (pred(buf)) finishWait(true);
          };
          const finishWait = (ok: boolean): void => {
            clearTimeout(t);
            waiters.delete(check);
            done(ok);
          };
          const t = setTimeout(() => finishWait(false), ms);
          waiters.add(check);
        }),
      close: () => void sock.end('</stream:stream>', () => sock.destroy()),
    };
    // Settles the handshake; later socket events only feed `until` waiters.
    const finish = (err?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (err) {
        sock.destroy();
        reject(err);
      } else resolve(stream);
    };
    const onAbort = (): void => finish(new ConnectionError('component handshake aborted', { cause: signal?.reason }));
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(
      () => finish(new TimeoutError(`component handshake on port ${port} timed out after ${timeout} ms`)),
      timeout,
    );
    sock.setEncoding('utf8');
    sock.on('error', (e) =>
      finish(new ConnectionError(`component socket on port ${port}: ${e.message}`, { cause: e })),
    );
    sock.on('close', () => finish(new ConnectionError(`component stream on port ${port} closed before the handshake`)));
    sock.on('connect', () => {
      sock.write(
        `<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='${NS_STREAM}' to='${name}'>`,
      );
    });
    sock.on('data', (chunk: string) => {
      buf += chunk;
      if (settled) {
        for (const w of [...waiters]) w();
        return;
      }
      const err = /<stream:error>([\s\S]*?)<\/stream:error>/.exec(buf);
      if (err) {
        const condition = /<([a-z-]+)[\s/]/.exec(err[1] ?? '')?.[1] ?? 'unknown';
        const text = /<text[^>]*>([\s\S]*?)<\/text>/.exec(err[1] ?? '')?.[1];
        finish(new AuthError(`component handshake refused: ${condition}${text ? ` (${text})` : ''}`));
        return;
      }
      if (!sentHandshake) {
        const id = /<stream:stream\b[^>]*?\sid=(?:'([^']*)'|"([^"]*)")/.exec(buf);
        if (!id) return;
        const streamId = id[1] ?? id[2] ?? '';
        const digest = createHash('sha1')
          .update(streamId + secret)
          .digest('hex');
        sentHandshake = true;
        sock.write(`<handshake>${digest}</handshake>`);
        return;
      }
      if (/<handshake\s*\/>|<handshake\s*><\/handshake>/.test(buf)) finish();
      else if (buf.includes('</stream:stream>')) finish(new ProtocolError('component stream closed without handshake'));
    });
  });
}
