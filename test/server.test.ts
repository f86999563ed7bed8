/**
 * @xmppbus/server against real Prosody and ejabberd: start through the package API with a
 * component and an account, connect a real component and a real c2s client, a detached start from
 * a process that exits (status, .env for createBus, stop: process gone, ports free), the server's
 * system user when we are root, and a missing binary.
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { createBus } from '@xmppbus/bus';
import { AuthError, ConfigError, parseXml } from '@xmppbus/core';
import type { Element } from '@xmppbus/core';
import {
  installServer,
  randomSecret,
  readState,
  registerAccounts,
  SERVER_KINDS,
  ServerNotInstalledError,
  serverStatus,
  startServer,
  stopServer,
} from '@xmppbus/server';
import type { ServerKind, ServerState } from '@xmppbus/server';
import { clientTransport } from '@xmppbus/transport-client';
import { componentTransport } from '@xmppbus/transport-component';
import { waitFor } from '@xmppbus/testing';
import { afterEach, describe, expect, it } from 'vitest';

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tempDir(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `xmppbus-server-test-${name}-`));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Uid of a running process, from /proc. */
function uidOf(pid: number): number {
  const line = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(line?.[1]);
}

function userId(name: string): number | undefined {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}:`));
  return line ? Number(line.split(':')[2]) : undefined;
}

/** True if something accepts connections on 127.0.0.1:port (a listening server). */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    void import('node:net').then(({ connect }) => {
      const s = connect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
  });
}

function parseEnv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of text.matchAll(/^([A-Z_]+)=(.*)$/gm)) out[m[1]!] = m[2]!.replace(/^'(.*)'$/, '$1');
  return out;
}

/** Runs the fixture that starts a detached server and exits; resolves with its printed state. */
function startDetachedInChild(kind: ServerKind, stateDir: string, envFile: string): Promise<ServerState> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--conditions=source', '--import', 'tsx', 'test/fixtures/start-detached-server.ts', kind, stateDir, envFile],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`fixture exited ${code}: ${err}`));
      resolve(JSON.parse(out) as ServerState);
    });
  });
}

for (const kind of SERVER_KINDS) {
  describe(`@xmppbus/server [${kind}]`, () => {
    it('starts with a component and an account; a real component and a real c2s client talk through it', async () => {
      const secret = randomSecret();
      const password = randomSecret();
      await using server = await startServer({
        kind,
        components: [{ name: 'orders.localhost', secret }],
        accounts: [{ user: 'alice', password }],
      });
      expect(server.endpoints).toMatchObject({
        host: '127.0.0.1',
        domain: 'localhost',
        pubsubService: 'pubsub.localhost',
        componentService: `xmpp://127.0.0.1:${server.componentPort}`,
        c2sService: `xmpp://127.0.0.1:${server.c2sPort}`,
      });
      expect(server.secretOf('orders.localhost')).toBe(secret);

      const component = await componentTransport({
        service: server.componentService(),
        domain: 'orders.localhost',
        password: secret,
      });
      cleanups.push(() => component.close());
      const received: Element[] = [];
      component.onStanza((s) => void received.push(s));
      const client = await clientTransport({
        service: server.c2sService(),
        domain: server.domain,
        username: 'alice',
        password,
        mechanism: 'PLAIN',
        allowPlainWithoutTls: true,
      });
      cleanups.push(() => client.close());
      await client.send(parseXml("<message to='orders.localhost' id='m1'><body>hello</body></message>"));
      await waitFor(() => received.length > 0, { what: 'the message at the component' });
      expect(received[0]?.attrs['from']).toMatch(/^alice@localhost\//);

      // The component's own secret is the only one that works for its name.
      await expect(
        componentTransport({
          service: server.componentService(),
          domain: 'orders.localhost',
          password: `${secret}x`,
          reconnect: false,
        }),
      ).rejects.toBeInstanceOf(AuthError);
    });

    it('runs as its system user when started as root; wait() until aborted or exited', async () => {
      const root = process.getuid?.() === 0;
      await using server = await startServer({ kind });
      expect(uidOf(server.pid)).toBe(root ? userId(kind) : process.getuid?.());
      // wait(): what a foreground `xmppbus server start` blocks on, until Ctrl-C or the server dies.
      const ctl = new AbortController();
      const waiting = server.wait({ signal: ctl.signal });
      ctl.abort();
      expect(await waiting).toBe('aborted');
      const exited = server.wait();
      await server.kill();
      expect(await exited).toBe('exited');
    });

    it('creates many accounts at once (registerUsers), each can log in', async () => {
      await using server = await startServer({ kind });
      const accounts = Array.from({ length: 300 }, (_, i) => ({ user: `agent${i}`, password: `pw-${i}` }));
      await server.registerUsers(accounts);
      const last = await clientTransport({
        service: server.c2sService(),
        domain: server.domain,
        username: 'agent299',
        password: 'pw-299',
        mechanism: 'PLAIN',
        allowPlainWithoutTls: true,
      });
      await last.close();
      expect(server.state().accounts).toHaveLength(300);
      await expect(server.registerUser('agent7', 'again')).rejects.toMatchObject({ code: 'ERR_CONFLICT' });
    });

    it('detached: outlives the process that started it; status, accounts, .env for createBus, stop', async () => {
      // A project dir the server's user can traverse (mkdtemp makes 0700 dirs): the server lives in the state dir.
      const project = tempDir('state');
      chmodSync(project, 0o755);
      const stateDir = join(project, '.xmppbus', 'server');
      const envFile = join(stateDir, '..', '.env');
      cleanups.push(() => stopServer(stateDir)); // if an assertion fails before the stop below
      const started = await startDetachedInChild(kind, stateDir, envFile);

      expect(started.dir).toBe(join(stateDir, kind));
      expect(started.ephemeral).toBe(false);
      expect(statSync(started.dir).mode & 0o777).toBe(0o700);
      const status = await serverStatus(stateDir);
      expect(status).toMatchObject({ running: true, ready: true });
      expect(status.state?.pid).toBe(started.pid);
      expect(readState(stateDir)?.accounts).toEqual([{ user: 'agent1', password: 'agent1-pw' }]);
      await expect(startServer({ kind, detach: true, stateDir })).rejects.toThrow(/is running; stop it first/);

      // Accounts added later from another process (e.g. an IoT benchmark): they log in at once.
      await registerAccounts(stateDir, [{ user: 'agent2', password: 'agent2-pw' }]);
      expect(readState(stateDir)?.accounts.map((a) => a.user)).toEqual(['agent1', 'agent2']);
      const agent = await clientTransport({
        service: started.endpoints.c2sService,
        domain: 'localhost',
        username: 'agent2',
        password: 'agent2-pw',
        mechanism: 'PLAIN',
        allowPlainWithoutTls: true,
      });
      await agent.close();
      await expect(registerAccounts(stateDir, [{ user: 'agent1', password: 'x' }])).rejects.toMatchObject({
        code: 'ERR_CONFLICT',
      });

      // The .env feeds createBus as is.
      const env = parseEnv(readFileSync(envFile, 'utf8'));
      expect(env).toMatchObject({ XMPPBUS_TRANSPORT_KIND: 'component', XMPPBUS_TRANSPORT_DOMAIN: 'orders.localhost' });
      const bus = await createBus({ log: { level: 'silent' } }, { env });
      await bus.start({ timeout: 30_000 });
      await bus.close();

      const stopped = await stopServer(stateDir);
      expect(stopped.stopped).toBe(true);
      const e = started.endpoints;
      expect(await accepts(e.c2sPort)).toBe(false);
      expect(await accepts(e.componentPort)).toBe(false);
      expect(await serverStatus(stateDir)).toMatchObject({ running: false, ready: false, state: undefined });
      expect(await stopServer(stateDir)).toEqual({ stopped: false, state: undefined });
    });

    it('a missing binary is a typed error that says how to install', async () => {
      const path = process.env['PATH'];
      process.env['PATH'] = '/nonexistent';
      try {
        const err = await startServer({ kind }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(ServerNotInstalledError);
        expect(err).toBeInstanceOf(ConfigError);
        expect(err).toMatchObject({ code: 'ERR_CONFIG', kind });
        expect((err as Error).message).toMatch(
          /is not installed .*installServer\('\w+'\).*apt-get install -y --no-install-recommends/,
        );
        // Without apt-get there is nothing installServer can do: the same typed error.
        await expect(installServer(kind)).rejects.toBeInstanceOf(ServerNotInstalledError);
      } finally {
        process.env['PATH'] = path;
      }
      expect(await installServer(kind)).toEqual({ installed: [] }); // present: a no-op, no apt
    });
  });
}

describe('@xmppbus/server detached [prosody]', () => {
  it("uses a temp dir when the server's user cannot reach the state dir (as root under /root)", async () => {
    const root = process.getuid?.() === 0;
    const privateDir = tempDir('private');
    const stateDir = join(privateDir, 'state');
    mkdirSync(stateDir, { mode: 0o700 });
    const server = await startServer({ detach: true, stateDir, components: ['svc.localhost'] });
    cleanups.push(() => server.stop());
    expect(server.dir.startsWith(stateDir)).toBe(!root);
    expect(readState(stateDir)?.ephemeral).toBe(root);
    await server.stop();
    expect(readState(stateDir)).toBeUndefined();
  });
});
