import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { connect } from 'node:net';

import { describe, expect, it } from 'vitest';

import { AuthError } from '@xmppbus/core';
import { componentHandshake, describeServers, startServer, SERVER_KINDS } from '@xmppbus/testing';
import type { XmppServer } from '@xmppbus/testing';

/** Raw SASL PLAIN login over a plaintext c2s stream; resolves 'success' or the failure condition. */
function plainLogin(srv: XmppServer, username: string, password: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: srv.host, port: srv.c2sPort, noDelay: true });
    let buf = '';
    let authSent = false;
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`login timed out; got: ${buf}`));
    }, 10_000);
    const done = (r: string): void => {
      clearTimeout(timer);
      sock.end('</stream:stream>', () => sock.destroy());
      resolve(r);
    };
    sock.setEncoding('utf8');
    sock.on('error', reject);
    sock.write(
      `<?xml version='1.0'?><stream:stream to='${srv.domain}' xmlns='jabber:client' ` +
        `xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`,
    );
    sock.on('data', (chunk: string) => {
      buf += chunk;
      if (!authSent && buf.includes('</stream:features>')) {
        expect(buf).toContain('<mechanism>PLAIN</mechanism>');
        authSent = true;
        const token = Buffer.from(`\0${username}\0${password}`).toString('base64');
        sock.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${token}</auth>`);
      } else if (authSent && /<success[\s/>]/.test(buf)) {
        done('success');
      } else if (authSent && buf.includes('</failure>')) {
        done(/<failure[^>]*>\s*<([a-z-]+)/.exec(buf)?.[1] ?? 'failure');
      }
    });
  });
}

/** 'R' running, 'Z' zombie, undefined when the pid does not exist. */
function procState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return undefined;
  }
}

/** Listening TCP sockets of one process as 'addr:port' strings (from /proc/net/tcp{,6} + its fds). */
function listenersOf(pid: number): string[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m?.[1]) inodes.add(m[1]);
    } catch {
      // fd closed meanwhile
    }
  }
  const out: string[] = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[3] !== '0A' || !f[9] || !inodes.has(f[9])) continue;
      const [addrHex = '', portHex = ''] = (f[1] ?? '').split(':');
      const addr =
        addrHex.length === 8
          ? [...Buffer.from(addrHex, 'hex')].reverse().join('.')
          : addrHex === '0'.repeat(32)
            ? '::'
            : addrHex;
      out.push(`${addr}:${parseInt(portHex, 16)}`);
    }
  }
  return out.sort();
}

/** Start time of a process in clock ticks since boot (/proc/PID/stat field 22). */
function startTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
}

/** epmd daemons started at or after `sinceTicks` (epmd detaches, so look machine-wide). */
function epmdsStartedSince(sinceTicks: number): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'epmd' && startTicks(pid) >= sinceTicks;
      } catch {
        return false;
      }
    });
}

describeServers(
  'harness',
  (server, kind) => {
    it('runs the server as a live process with its config in a temp dir', () => {
      const srv = server();
      expect(srv.kind).toBe(kind);
      expect(procState(srv.pid)).toMatch(/^[RSD]$/);
      expect(readFileSync(`/proc/${srv.pid}/cmdline`, 'utf8')).toContain(srv.dir);
      expect(srv.componentService()).toBe(`xmpp://127.0.0.1:${srv.componentPort}`);
      expect(srv.c2sService()).toBe(`xmpp://127.0.0.1:${srv.c2sPort}`);
      expect(srv.components).toEqual(['svc-a.localhost', 'svc-b.localhost']);
      expect(srv.logs()).not.toBe('');
    });

    it('accepts a component handshake with the secret and refuses a wrong one', async () => {
      const srv = server();
      await componentHandshake({ port: srv.componentPort, name: 'svc-a.localhost', secret: srv.componentSecret });
      await expect(
        componentHandshake({ port: srv.componentPort, name: 'svc-b.localhost', secret: `${srv.componentSecret}x` }),
      ).rejects.toBeInstanceOf(AuthError);
    });

    it('logs in initial and runtime-registered users with PLAIN, refuses a wrong password', async () => {
      const srv = server();
      expect(await plainLogin(srv, 'alice', 'alice-pw')).toBe('success');
      await srv.registerUser('carol', 'carol pw "quoted" ü');
      expect(await plainLogin(srv, 'carol', 'carol pw "quoted" ü')).toBe('success');
      expect(await plainLogin(srv, 'carol', 'nope')).toBe('not-authorized');
      await expect(srv.registerUser('carol', 'other')).rejects.toMatchObject({ code: 'ERR_CONFLICT' });
    });

    it('binds only 127.0.0.1 and starts no epmd', () => {
      const srv = server();
      const listeners = listenersOf(srv.pid);
      const expected = [`127.0.0.1:${srv.c2sPort}`, `127.0.0.1:${srv.componentPort}`];
      for (const l of expected) expect(listeners).toContain(l);
      expect(listeners.filter((l) => !l.startsWith('127.0.0.1:'))).toEqual([]);
      // ejabberd also listens on its Erlang distribution port, on loopback; nothing else.
      expect(listeners.length).toBe(kind === 'ejabberd' ? 3 : 2);
      expect(epmdsStartedSince(startTicks(srv.pid))).toEqual([]);
      if (kind === 'ejabberd') expect(readFileSync(`/proc/${srv.pid}/cmdline`, 'utf8')).toContain('-start_epmd\0false');
    });

    it('kill() removes the process; restart() comes back on the same ports with the same data', async () => {
      const srv = server();
      const { pid, c2sPort, componentPort } = srv;
      await srv.kill();
      expect(procState(pid)).toBeUndefined(); // gone and reaped, not a zombie
      await expect(
        componentHandshake({
          port: componentPort,
          name: 'svc-a.localhost',
          secret: srv.componentSecret,
          timeout: 2000,
        }),
      ).rejects.toMatchObject({ code: 'ERR_CONNECTION' });
      await srv.restart();
      expect(srv.pid).not.toBe(pid);
      expect(procState(srv.pid)).toMatch(/^[RSD]$/);
      expect([srv.c2sPort, srv.componentPort]).toEqual([c2sPort, componentPort]);
      await componentHandshake({ port: componentPort, name: 'svc-a.localhost', secret: srv.componentSecret });
      expect(await plainLogin(srv, 'alice', 'alice-pw')).toBe('success');
    });

    it('stop() ends the process and removes the temp dir; stopping twice is fine', async () => {
      const srv = server();
      const { pid, dir } = srv;
      await srv.stop();
      expect(procState(pid)).toBeUndefined();
      expect(existsSync(dir)).toBe(false);
      await srv.stop();
    });
  },
  { components: ['svc-a.localhost', 'svc-b.localhost'], users: [['alice', 'alice-pw']] },
);

describe('harness with await using', () => {
  it.each(SERVER_KINDS)('[%s] disposes the server at the end of the scope', async (kind) => {
    let pid = 0;
    let dir = '';
    {
      await using srv = await startServer(kind, { components: ['svc-z.localhost'] });
      ({ pid, dir } = srv);
      await componentHandshake({ port: srv.componentPort, name: 'svc-z.localhost', secret: srv.componentSecret });
    }
    expect(procState(pid)).toBeUndefined();
    expect(existsSync(dir)).toBe(false);
  });
});
