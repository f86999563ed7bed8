// `xmppbus server start --detach → status → call against it → stop`, with the real binary, on
// Prosody and on ejabberd: the first minutes of a new user, outside any config.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Session } from '@xmppbus/core';
import { RpcServer } from '@xmppbus/rpc';
import { stopServer, type ServerKind } from '@xmppbus/server';
import { CreateOrder } from '@xmppbus/testing';
import { componentTransport } from '@xmppbus/transport-component';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LiveCli, LiveProcess, ROOT, buildCli, killAll, xmppbus } from './cli-fixtures.js';

const QUICKSTART = join(ROOT, 'examples', 'quickstart', 'service.ts');

interface StartOutput {
  kind: ServerKind;
  detached: boolean;
  endpoints: { componentService: string; pubsubService: string; domain: string };
  components: { name: string; secret: string }[];
}

beforeAll(() => buildCli(), 120_000);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // alive, another user's (the server's system user)
  }
}

for (const kind of ['prosody', 'ejabberd'] as const) {
  describe(`xmppbus server [${kind}]`, () => {
    let dir: string;
    let session: Session | undefined;
    const stateDir = () => join(dir, '.xmppbus', 'server');
    // No XMPPBUS_* and no config file: the local server's state is all the CLI has.
    const cli = (args: string[]) => xmppbus(args, { cwd: dir });

    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), `xmppbus-cli-server-${kind}-`));
    });

    afterAll(async () => {
      killAll();
      await session?.close();
      await stopServer(stateDir()); // a no-op unless a test failed before `server stop`
      rmSync(dir, { recursive: true, force: true });
    }, 60_000);

    it('starts detached, reports its status, serves a call from the CLI, and stops', async () => {
      const start = await cli([
        'server',
        'start',
        '--detach',
        ...(kind === 'ejabberd' ? ['--ejabberd'] : []),
        '--component',
        'orders.localhost',
        '--json',
      ]);
      expect(start.code, start.stderr).toBe(0);
      const started = JSON.parse(start.stdout) as StartOutput;
      expect(started).toMatchObject({ kind, detached: true, endpoints: { domain: 'localhost' } });
      expect(started.components.map((c) => c.name)).toEqual(
        expect.arrayContaining(['orders.localhost', 'cli.localhost', 'cli-2.localhost']),
      );
      expect(readFileSync(join(stateDir(), '.gitignore'), 'utf8')).toContain('*');

      const status = await cli(['server', 'status', '--json']);
      expect(status.code).toBe(0);
      expect(JSON.parse(status.stdout)).toMatchObject({ running: true, ready: true, kind });

      // The user's service connects with the printed secret…
      const orders = started.components.find((c) => c.name === 'orders.localhost')!;
      const transport = await componentTransport({
        service: started.endpoints.componentService,
        domain: orders.name,
        password: orders.secret,
      });
      session = new Session({ transport });
      const rpc = new RpcServer({ session });
      rpc.handle(CreateOrder, ({ sku, qty }, { from }) => ({ orderId: `${sku}@${from}`, total: qty * 9.5 }));
      await rpc.start();

      // …and the CLI calls it as the server's CLI component, with nothing configured.
      const call = await cli(['call', 'orders.localhost', 'create', '{"sku":"B2","qty":2}', '--json']);
      expect(call.code, call.stderr).toBe(0);
      expect(JSON.parse(call.stdout)).toEqual({ orderId: 'B2@cli.localhost', total: 19 });
      await session.close();
      session = undefined;

      const stop = await cli(['server', 'stop', '--json']);
      expect(stop.code).toBe(0);
      expect(JSON.parse(stop.stdout)).toMatchObject({ stopped: true, kind });
      const after = await cli(['server', 'status']);
      expect(after.code).toBe(5);
      expect(after.stdout).toMatch(/^no server/);
    });

    it('runs in the foreground until Ctrl-C, then stops the server', async () => {
      const fg = new LiveCli(['server', 'start', '--json', ...(kind === 'ejabberd' ? ['--ejabberd'] : [])], {
        cwd: dir,
      });
      await fg.waitFor('the server', (o) => o.stderr.includes('until Ctrl-C'), 120_000);
      const { pid } = JSON.parse(fg.stdout) as { pid: number };
      expect(alive(pid)).toBe(true);
      expect((await fg.interrupt()).code).toBe(0);
      expect(alive(pid)).toBe(false);
    });

    if (kind === 'prosody')
      it('runs the first session of packages/cli/README.md: server start --env, the quickstart service, call', async () => {
        const start = await cli(['server', 'start', '--detach', '--component', 'orders.localhost', '--env', '.env']);
        expect(start.code, start.stderr).toBe(0);
        expect(start.stdout).not.toMatch(/secret \S/); // the secrets went to .env
        expect(readFileSync(join(dir, '.env'), 'utf8')).toMatch(/^XMPPBUS_TRANSPORT_DOMAIN=orders\.localhost$/m);
        // node --env-file=.env --import tsx service.ts
        const service = new LiveProcess(['--env-file', join(dir, '.env'), '--import', 'tsx', QUICKSTART], ROOT);
        try {
          await service.waitFor('the service', (o) => o.stdout.includes('orders ready'));
          const call = await cli(['call', 'orders.localhost', 'create', '{"sku":"A1","qty":2}']);
          expect(call.code, call.stderr).toBe(0);
          expect(JSON.parse(call.stdout)).toEqual({ orderId: 'o-A1-for-cli.localhost', total: 19 });
        } finally {
          expect((await service.interrupt()).code).toBe(0); // handleSignals: drained and closed
        }
        expect((await cli(['server', 'stop'])).code).toBe(0);
      });
  });
}
