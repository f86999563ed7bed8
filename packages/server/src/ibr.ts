import { connect } from 'node:net';

import { ConflictError, ConnectionError, ProtocolError, TimeoutError } from '@xmppbus/core';

const NS_STREAM = 'http://etherx.jabber.org/streams';

function esc(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/'/g, '&apos;')
    .replace(/"/g, '&quot;');
}

/**
 * Registers accounts by XEP-0077 in-band registration over one raw, unauthenticated c2s stream
 * (milliseconds, where `ejabberdctl register` boots an Erlang VM per call: ~300 ms). Resolves
 * with per-user outcomes in order: undefined = registered, else the error.
 */
export function registerInBand(options: {
  port: number;
  domain: string;
  users: readonly (readonly [string, string])[];
  timeout?: number;
}): Promise<(Error | undefined)[]> {
  const { port, domain, users, timeout = 10_000 } = options;
  return new Promise((resolve, reject) => {
    const results: (Error | undefined)[] = [];
    let buf = '';
    let started = false;
    let settled = false;
    const sock = connect({ host: '127.0.0.1', port, noDelay: true });
    const finish = (err?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) {
        sock.destroy();
        reject(err);
      } else {
        sock.end('</stream:stream>', () => sock.destroy());
        resolve(results);
      }
    };
    const timer = setTimeout(
      () => finish(new TimeoutError(`in-band registration timed out after ${timeout} ms`)),
      timeout,
    );
    const sendNext = (): void => {
      const i = results.length;
      const user = users[i];
      if (!user) return finish();
      sock.write(
        `<iq type='set' id='reg${i}' to='${esc(domain)}'><query xmlns='jabber:iq:register'>` +
          `<username>${esc(user[0])}</username><password>${esc(user[1])}</password></query></iq>`,
      );
    };
    sock.setEncoding('utf8');
    sock.on('error', (e) => finish(new ConnectionError(`c2s socket on port ${port}: ${e.message}`, { cause: e })));
    sock.on('close', () => finish(new ConnectionError('c2s stream closed during in-band registration')));
    sock.on('connect', () => {
      sock.write(
        `<?xml version='1.0'?><stream:stream to='${esc(domain)}' xmlns='jabber:client' xmlns:stream='${NS_STREAM}' version='1.0'>`,
      );
    });
    sock.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.includes('<stream:error')) return finish(new ProtocolError(`stream error during registration: ${buf}`));
      if (!started) {
        const end = buf.indexOf('</stream:features>');
        if (end < 0) return;
        buf = buf.slice(end + '</stream:features>'.length);
        started = true;
        return sendNext();
      }
      // Responses come one at a time (we send the next IQ only after the previous answer).
      const m = /<iq\b[^>]*?(?:\/>|>[\s\S]*?<\/iq>)/.exec(buf);
      if (!m) return;
      buf = buf.slice(m.index + m[0].length);
      const user = users[results.length];
      if (/type=['"]result['"]/.test(m[0])) results.push(undefined);
      else if (m[0].includes('<conflict')) results.push(new ConflictError(`user ${user?.[0]}@${domain} exists`));
      else results.push(new ProtocolError(`in-band registration of ${user?.[0]} failed: ${m[0]}`));
      sendNext();
    });
  });
}
