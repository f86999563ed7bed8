import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EXIT } from './errors.js';
import { run } from './program.js';
import { testIo } from './test/io.js';

// An empty working directory: no ./xmppbus.yaml, no local server state.
const cwd = mkdtempSync(join(tmpdir(), 'xmppbus-cli-program-'));
afterAll(() => rmSync(cwd, { recursive: true, force: true }));

async function cli(args: string[], options: { env?: Record<string, string>; stdin?: string } = {}) {
  const io = testIo({ cwd, ...options });
  const code = await run(args, io, new AbortController().signal);
  return { code, out: io.out(), err: io.err() };
}

describe('xmppbus', () => {
  it('lists every command, the config sources and the exit codes in --help', async () => {
    const { code, out } = await cli(['--help']);
    expect(code).toBe(EXIT.ok);
    for (const cmd of ['call', 'discover', 'ping', 'publish', 'tail', 'send', 'listen', 'dlq', 'bench', 'server'])
      expect(out).toMatch(new RegExp(`^  ${cmd} `, 'm'));
    expect(out).toMatch(/Exit codes:\n\s+0 {2}success/);
    expect(out).toContain('XMPPBUS_');
    expect(out).not.toMatch(/\u001b\[/); // no colour off a terminal
  });

  it('lists the subcommands of dlq, bench and server', async () => {
    expect((await cli(['dlq', '--help'])).out).toMatch(/list[\s\S]*show[\s\S]*replay[\s\S]*purge/);
    expect((await cli(['bench', '--help'])).out).toMatch(/rpc[\s\S]*pubsub[\s\S]*messaging/);
    expect((await cli(['server', '--help'])).out).toMatch(/start[\s\S]*status[\s\S]*stop[\s\S]*config/);
  });

  it('prints the version', async () => {
    expect(await cli(['--version'])).toMatchObject({ code: EXIT.ok, out: '0.1.0\n' });
  });

  it('exits 2 with one error line on a usage error', async () => {
    const unknown = await cli(['frobnicate']);
    expect(unknown.code).toBe(EXIT.usage);
    expect(unknown.err.split('\n')[0]).toMatch(/^error\[usage\]: unknown command 'frobnicate'/);
    const missing = await cli(['call', 'orders.localhost']);
    expect(missing.code).toBe(EXIT.usage);
    expect(missing.err).toMatch(/^error\[usage\]: missing required argument 'method'/);
  });

  it('checks arguments before connecting', async () => {
    const bad = await cli(['send', 'a.localhost', 'urn:x#y', '{}', '--qos', '3']);
    expect(bad).toMatchObject({ code: EXIT.usage, err: "error[usage]: --qos must be 0, 1 or 2, got '3'\n" });
    const badMethod = await cli(['call', 'a.localhost', 'urn:x#1x']);
    expect(badMethod.code).toBe(EXIT.usage);
    expect(badMethod.err.trimEnd().split('\n')).toHaveLength(1);
    const badJson = await cli(['publish', 'orders', 'urn:x#y', '{"a":'], {});
    expect(badJson.code).toBe(EXIT.usage);
    expect(badJson.err).toMatch(/^error\[usage\]: event is not valid JSON/);
  });

  it('says how to configure a connection when there is none', async () => {
    const r = await cli(['ping', 'localhost']);
    expect(r.code).toBe(EXIT.usage);
    expect(r.err).toMatch(/^error\[usage\]: no connection configured: .*xmppbus server start --detach/);
    expect(r.err.trimEnd().split('\n')).toHaveLength(1);
  });

  it('fails locally on a missing secret, naming where it may come from', async () => {
    const env = {
      XMPPBUS_TRANSPORT_KIND: 'component',
      XMPPBUS_TRANSPORT_SERVICE: 'xmpp://127.0.0.1:1',
      XMPPBUS_TRANSPORT_DOMAIN: 'cli.localhost',
    };
    const r = await cli(['ping', 'localhost'], { env });
    expect(r.code).toBe(EXIT.usage);
    expect(r.err).toMatch(/^error\[ERR_CONFIG\]: .*transport\.password is required \(XMPPBUS_PASSWORD/);
  });

  it('reads a missing --env-file as a usage error', async () => {
    const r = await cli(['--env-file', 'nope.env', 'ping', 'localhost']);
    expect(r.code).toBe(EXIT.usage);
    expect(r.err).toMatch(/^error\[usage\]: --env-file .*nope\.env: ENOENT/);
  });

  it('writes errors as JSON with --json', async () => {
    const r = await cli(['ping', 'localhost', '--json']);
    expect(r.code).toBe(EXIT.usage);
    const line = JSON.parse(r.err) as { error: { code: string; exit: number } };
    expect(line.error).toMatchObject({ code: 'usage', exit: 2 });
    expect(r.out).toBe('');
  });

  it('adds the stack with --verbose', async () => {
    const r = await cli(['ping', 'localhost', '--verbose']);
    expect(r.err.split('\n')[0]).toMatch(/^error\[usage\]/);
    expect(r.err).toMatch(/\n\s+at /);
  });

  it('prints a config snippet for a production server', async () => {
    const r = await cli([
      'server',
      'config',
      '--prosody',
      '--domain',
      'example.org',
      '--component',
      'orders.example.org',
    ]);
    expect(r.code).toBe(EXIT.ok);
    expect(r.out).toMatch(/Component "orders\.example\.org"/);
    expect((await cli(['server', 'config'])).code).toBe(EXIT.usage);
  });
});
