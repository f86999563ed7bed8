// The `xmppbus` binary end to end against a real Prosody: every command, as a child process
// without a TTY (so: no colour, no progress bar), with the documented exit codes.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Type } from '@sinclair/typebox';
import { Session } from '@xmppbus/core';
import { Messenger } from '@xmppbus/messaging';
import { RpcError, RpcServer } from '@xmppbus/rpc';
import { payload } from '@xmppbus/schema';
import { sqliteMessageStore } from '@xmppbus/store-sqlite';
import { CreateOrder, GetOrder, startProsody, waitFor, type XmppServer } from '@xmppbus/testing';
import { componentTransport } from '@xmppbus/transport-component';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LiveCli, buildCli, jsonLines, killAll, xmppbus } from './cli-fixtures.js';

const Note = payload({
  ns: 'urn:example:notes:1',
  name: 'note',
  schema: Type.Object({ text: Type.String(), n: Type.Integer() }),
});
const Parcel = payload({ ns: 'urn:example:parcels:1', name: 'parcel', schema: Type.Object({ ref: Type.String() }) });

describe('xmppbus CLI [prosody]', () => {
  let srv: XmppServer;
  let dir: string;
  const sessions: Session[] = [];
  let notes: Messenger;
  const received: { value: unknown; qos: number; from: string }[] = [];

  /** A started session of component `domain` (closed after all tests). */
  async function session(domain: string): Promise<Session> {
    const transport = await componentTransport({
      service: srv.componentService(),
      domain,
      password: srv.componentSecret,
    });
    const s = new Session({ transport });
    sessions.push(s);
    await s.start();
    return s;
  }

  /** The CLI's environment: connect as component `domain` of the test server. */
  function env(domain = 'svc-a.localhost'): Record<string, string> {
    return {
      XMPPBUS_TRANSPORT_KIND: 'component',
      XMPPBUS_TRANSPORT_SERVICE: srv.componentService(),
      XMPPBUS_TRANSPORT_DOMAIN: domain,
      XMPPBUS_PASSWORD: srv.componentSecret,
      XMPPBUS_PUBSUB_SERVICE: srv.pubsubService,
    };
  }
  const run = (args: string[], domain?: string, input?: string) =>
    xmppbus(args, { cwd: dir, env: env(domain), ...(input !== undefined && { input }) });

  beforeAll(async () => {
    buildCli();
    dir = mkdtempSync(join(tmpdir(), 'xmppbus-cli-test-'));
    srv = await startProsody();
    // svc-b serves orders with its TypeScript contracts; the CLI knows them only by reflection.
    const rpc = new RpcServer({ session: await session('svc-b.localhost') });
    rpc.handle(CreateOrder, ({ sku, qty }, { from }) => {
      if (sku === 'NONE') throw new RpcError(CreateOrder, 'outOfStock', { sku, available: 0 });
      return { orderId: `${sku}@${from}`, total: qty * 9.5 };
    });
    rpc.handle(GetOrder, ({ orderId }, { to }) => ({ orderId, qty: 2, by: to }));
    await rpc.start();
    // svc-e takes typed notes (any QoS).
    notes = new Messenger({ session: await session('svc-e.localhost') });
    notes.handle(Note, (value, m) => void received.push({ value, qos: m.qos, from: m.from }));
    await notes.start();
  }, 120_000);

  afterEach(() => killAll());

  afterAll(async () => {
    killAll();
    await notes?.close();
    for (const s of sessions.splice(0)) await s.close();
    await srv?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('--help lists every command and the exit codes', async () => {
    const r = await xmppbus(['--help'], { cwd: dir });
    expect(r.code).toBe(0);
    for (const cmd of ['call', 'discover', 'ping', 'publish', 'tail', 'send', 'listen', 'dlq', 'bench', 'server'])
      expect(r.stdout).toMatch(new RegExp(`^  ${cmd} `, 'm'));
    expect(r.stdout).toContain('Exit codes:');
  });

  it('calls a method with JSON input, encoded and validated with the reflected schema', async () => {
    const r = await run(['call', 'svc-b.localhost', 'urn:example:orders:1#create', '{"sku":"A1","qty":2}', '--json']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(r.stdout)).toEqual({ orderId: 'A1@svc-a.localhost', total: 19 });
    // A bare method name, the request on stdin, pretty output (no colour off a TTY).
    const get = await run(['call', 'svc-b.localhost', 'get'], undefined, '{"orderId":"o7"}');
    expect(get.code).toBe(0);
    expect(JSON.parse(get.stdout)).toEqual({ orderId: 'o7', qty: 2, by: 'svc-b.localhost' });
    expect(get.stdout).not.toMatch(/\u001b\[/);
  });

  it('calls with raw XML', async () => {
    const r = await run([
      'call',
      'svc-b.localhost',
      'urn:example:orders:1#get',
      '--xml',
      '--get',
      '<get xmlns="urn:example:orders:1"><orderId>o8</orderId></get>',
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(
      '<get xmlns="urn:example:orders:1"><orderId>o8</orderId><qty>2</qty><by>svc-b.localhost</by></get>',
    );
  });

  it('reports invalid input, declared errors and unknown methods in one line with their exit code', async () => {
    const invalid = await run(['call', 'svc-b.localhost', 'create', '{"sku":"A1","qty":0}']);
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toMatch(/^error\[ERR_VALIDATION\]: .*\/qty.*\n$/);
    expect(invalid.stderr.split('\n')).toHaveLength(2); // one line, no stack
    const declared = await run(['call', 'svc-b.localhost', 'create', '{"sku":"NONE","qty":1}', '--json']);
    expect(declared.code).toBe(1);
    expect(jsonLines(declared.stderr)[0]).toMatchObject({ error: { code: 'conflict', type: 'cancel' } });
    const unknown = await run(['call', 'svc-b.localhost', 'refund', '{}']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(
      /has no method refund \(it has: urn:example:orders:1#create, urn:example:orders:1#get\)/,
    );
    const nobody = await run(['call', 'svc-p.localhost', 'create', '{}']);
    expect(nobody.code).toBe(5);
    expect(nobody.stderr).toMatch(/^error\[(service-unavailable|remote-server-timeout)\]: /); // Prosody: "Component unavailable"
  });

  it('discovers a service (methods and schemas) and the server (its services)', async () => {
    const r = await run(['discover', 'svc-b.localhost', '--json']);
    expect(r.code).toBe(0);
    const d = JSON.parse(r.stdout) as {
      features: string[];
      contracts: { kind: string; ns: string; name: string; request: unknown }[];
    };
    expect(d.features).toContain('urn:xmppbus:schema:1');
    expect(d.contracts.map((c) => `${c.kind} ${c.name}`).sort()).toEqual(['method create', 'method get']);
    expect(d.contracts.find((c) => c.name === 'create')?.request).toMatchObject({
      properties: { qty: { type: 'integer' } },
    });
    const pretty = await run(['discover', 'svc-b.localhost']);
    expect(pretty.stdout).toMatch(/urn:example:orders:1#create {2}set\n {4}request \{ sku: string, qty: integer \}/);
    const server = await run(['discover', 'localhost', '--json']);
    expect((JSON.parse(server.stdout) as { items: { jid: string }[] }).items.map((i) => i.jid)).toContain(
      'pubsub.localhost',
    );
  });

  it('pings with a round-trip time', async () => {
    const r = await run(['ping', 'svc-b.localhost', '-n', '2', '--json']);
    expect(r.code).toBe(0);
    const p = JSON.parse(r.stdout) as { count: number; rtt: number[]; avg: number };
    expect(p.count).toBe(2);
    expect(p.rtt).toHaveLength(2);
    expect(p.avg).toBeGreaterThan(0);
  });

  it('tails a node live as JSON lines while another process publishes, and stops cleanly on Ctrl-C', async () => {
    const tail = new LiveCli(['tail', 'cli-orders', '--create', '--json'], { cwd: dir, env: env('svc-c.localhost') });
    await tail.waitFor('tail subscribed', (o) => o.stderr.includes('tailing'));
    const pub = await run([
      'publish',
      'cli-orders',
      'urn:example:orders:events:1#created',
      '{"orderId":"o1","qty":2}',
      '--id',
      'e1',
    ]);
    expect(pub.code).toBe(0);
    await tail.waitFor('the item', (o) => o.stdout.includes('"e1"'));
    const [line] = jsonLines(tail.stdout);
    expect(line).toMatchObject({
      type: 'item',
      node: 'cli-orders',
      id: 'e1',
      event: 'urn:example:orders:events:1#created',
      payload: { orderId: 'o1', qty: '2' },
    });
    // An event batch (docs/protocol.md §4) prints one line per event, ids `<item>#<i>`.
    const created = (id: string): string =>
      `<created xmlns='urn:example:orders:events:1'><orderId>${id}</orderId><qty>1</qty></created>`;
    const batch = await run([
      'publish',
      'cli-orders',
      'urn:xmppbus:events:batch:1#events',
      `<events xmlns='urn:xmppbus:events:batch:1' count='2'>${created('o2')}${created('o3')}</events>`,
      '--xml',
      '--id',
      'b1',
    ]);
    expect(batch.code).toBe(0);
    await tail.waitFor('the batch', (o) => o.stdout.includes('"b1#1"'));
    expect(jsonLines(tail.stdout).slice(1)).toMatchObject([
      { id: 'b1#0', event: 'urn:example:orders:events:1#created', payload: { orderId: 'o2' } },
      { id: 'b1#1', event: 'urn:example:orders:events:1#created', payload: { orderId: 'o3' } },
    ]);
    const end = await tail.interrupt();
    expect(end.code).toBe(0);
  });

  it('sends QoS 1 to a listener, and QoS 2 with the receiver’s reflected schema', async () => {
    const listen = new LiveCli(['listen', 'urn:x:1#hello', '--json'], { cwd: dir, env: env('svc-d.localhost') });
    await listen.waitFor('the listener', (o) => o.stderr.includes('listening'));
    const sent = await run([
      'send',
      'svc-d.localhost',
      'urn:x:1#hello',
      '<hello xmlns="urn:x:1"><a>1</a></hello>',
      '--xml',
      '--qos',
      '1',
    ]);
    expect(sent).toMatchObject({ code: 0 });
    await listen.waitFor('the message', (o) => o.stdout.includes('hello'));
    expect(jsonLines(listen.stdout)[0]).toMatchObject({
      from: 'svc-a.localhost',
      qos: 1,
      contract: 'urn:x:1#hello',
      payload: { a: '1' },
    });
    expect((await listen.interrupt()).code).toBe(0);

    const typed = await run([
      'send',
      'svc-e.localhost',
      'urn:example:notes:1#note',
      '{"text":"hi","n":3}',
      '--qos',
      '2',
      '--json',
    ]);
    expect(typed.code).toBe(0);
    expect(JSON.parse(typed.stdout)).toEqual({ to: 'svc-e.localhost', contract: 'urn:example:notes:1#note', qos: 2 });
    await waitFor(() => received.length === 1, { what: 'the note' });
    expect(received[0]).toEqual({ value: { text: 'hi', n: 3 }, qos: 2, from: 'svc-a.localhost' });
    // Refused before sending: the reflected schema says n is an integer.
    const bad = await run(['send', 'svc-e.localhost', 'urn:example:notes:1#note', '{"text":"hi","n":"3"}']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error\[ERR_VALIDATION\]: .*\/n/);
    expect(received).toHaveLength(1);
  });

  it('lists, shows, replays and purges the dead letters of a service’s store', async () => {
    const dlqDir = mkdtempSync(join(dir, 'dlq-'));
    const store = join(dlqDir, 'outbox.db');
    // A service (svc-f) whose message to svc-e was refused: svc-e had no handler for parcels yet.
    const sender = new Messenger({
      session: await session('svc-f.localhost'),
      store: sqliteMessageStore({ path: store }),
    });
    await sender.start();
    await expect(sender.send(Parcel, 'svc-e.localhost', { ref: 'p1' }, { qos: 1 })).rejects.toThrow();
    await expect(sender.send(Parcel, 'svc-e.localhost', { ref: 'p2' }, { qos: 1 })).rejects.toThrow();
    await sender.close();
    await sessions.pop()!.close(); // the service is stopped: replay connects as svc-f
    writeFileSync(
      join(dlqDir, 'xmppbus.yaml'),
      `transport:\n  kind: component\n  service: ${srv.componentService()}\n  domain: svc-f.localhost\nmessaging:\n  store:\n    path: outbox.db\n`,
    );
    // The service's secret from its .env (as `xmppbus server start --env` writes it).
    writeFileSync(join(dlqDir, '.env'), `XMPPBUS_PASSWORD=${JSON.stringify(srv.componentSecret)}\n`);
    const dlq = (args: string[]) => xmppbus(['--env-file', '.env', 'dlq', ...args], { cwd: dlqDir });

    const list = await dlq(['list', '--json']);
    expect(list.code).toBe(0);
    const letters = jsonLines<{ id: string; to: string; reason: string; payload: string }>(list.stdout);
    expect(letters.map((l) => [l.to, l.reason, l.payload])).toEqual([
      ['svc-e.localhost', 'rejected', '{urn:example:parcels:1}parcel'],
      ['svc-e.localhost', 'rejected', '{urn:example:parcels:1}parcel'],
    ]);
    const table = await dlq(['list']);
    expect(table.stdout).toMatch(/^ID +TO +PAYLOAD +QOS +REASON/);

    const show = await dlq(['show', letters[0]!.id, '--json']);
    expect(JSON.parse(show.stdout)).toMatchObject({
      id: letters[0]!.id,
      stanza: expect.stringContaining('<ref>p1</ref>') as unknown,
    });

    const parcels: string[] = [];
    const off = notes.handle(Parcel, (p) => void parcels.push(p.ref));
    try {
      const replay = await dlq(['replay', letters[0]!.id, '--json']);
      expect(replay.code).toBe(0);
      expect(JSON.parse(replay.stdout)).toEqual({ id: letters[0]!.id, outcome: 'delivered' });
      expect(parcels).toEqual(['p1']);
    } finally {
      off();
    }
    const purge = await dlq(['purge', '--all', '--json']);
    expect(jsonLines(purge.stdout)).toEqual([{ id: letters[1]!.id, removed: true }]);
    expect((await dlq(['list'])).stdout).toBe('no dead letters\n');
    expect((await dlq(['show', 'nope'])).code).toBe(2);
  });

  it('benchmarks rpc, pubsub and messaging with small counts', async () => {
    for (const kind of [['rpc'], ['pubsub'], ['messaging', '--qos', '1']]) {
      const r = await run(['bench', ...kind, '-n', '20', '--concurrency', '4', '--json']);
      expect(r.code, r.stderr).toBe(0);
      const result = JSON.parse(r.stdout) as {
        ops: number;
        errors: number;
        throughput: number;
        p50: number;
        p99: number;
      };
      expect(result).toMatchObject({ ops: 20, errors: 0 });
      expect(result.p99).toBeGreaterThanOrEqual(result.p50);
      expect(r.stderr).toBe(''); // no progress bar off a TTY
    }
    const table = await run(['bench', 'rpc', '-n', '10']);
    expect(table.stdout).toMatch(/^BENCH +OPS +ERRORS +SECONDS +OPS\/S +P50 MS +P99 MS +MAX MS\nrpc +10 +0 /);
  });

  it('is refused by the default access policy as a user account, with a hint', async () => {
    await srv.registerUser('ops', 'ops-secret-1');
    const r = await xmppbus(
      [
        'call',
        'svc-b.localhost',
        'create',
        '{"sku":"A1","qty":1}',
        '--jid',
        'ops@localhost/cli',
        '--service',
        srv.c2sService(),
      ],
      { cwd: dir, env: { XMPPBUS_PASSWORD: 'ops-secret-1' } },
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error\[forbidden\]: .*ops@localhost.* — hint: .*access rule/);
    expect(r.stderr.split('\n')).toHaveLength(2);
  });

  it('exits 3 with one line naming the component on a bad secret', async () => {
    const r = await xmppbus(['ping', 'svc-b.localhost'], {
      cwd: dir,
      env: { ...env('svc-g.localhost'), XMPPBUS_PASSWORD: 'wrong' },
    });
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/^error\[ERR_AUTH\]: .*svc-g\.localhost.* — hint: check the secret/);
    expect(r.stderr.split('\n')).toHaveLength(2);
    expect(r.stdout).toBe('');
  });
});
