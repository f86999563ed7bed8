import { envFileText, type ServerState } from '@xmppbus/server';
import { describe, expect, it } from 'vitest';
import { UsageError } from './errors.js';
import { parseEnvFile } from './env-file.js';

describe('parseEnvFile', () => {
  it('reads bare, quoted and exported values, skipping comments', () => {
    const text = [
      '# a comment',
      'A=plain',
      "B='lit\\eral # not a comment'",
      'C="line\\nbreak \\"q\\""',
      'export D=x # trailing comment',
      '',
      'E=',
    ].join('\n');
    expect(parseEnvFile(text)).toEqual({
      A: 'plain',
      B: 'lit\\eral # not a comment',
      C: 'line\nbreak "q"',
      D: 'x',
      E: '',
    });
  });

  it('refuses lines it cannot read, naming the line', () => {
    expect(() => parseEnvFile('A=1\nnot a line', 'x.env')).toThrow(new UsageError('x.env:2: not a KEY=value line'));
    expect(() => parseEnvFile("A='open")).toThrow(/unterminated/);
  });

  it('reads the .env that `xmppbus server start --env` writes', () => {
    const state = {
      version: 1,
      kind: 'prosody',
      pid: 1,
      endpoints: {
        host: '127.0.0.1',
        domain: 'localhost',
        pubsubService: 'pubsub.localhost',
        c2sPort: 5222,
        componentPort: 5347,
        componentTlsPort: undefined,
        c2sService: 'xmpp://127.0.0.1:5222',
        componentService: 'xmpp://127.0.0.1:5347',
      },
      componentSecret: 's',
      components: [{ name: 'orders.localhost', secret: 'we\'ird "secret" #1' }],
      accounts: [],
      dir: '/tmp/x',
      ephemeral: true,
      configFile: '/tmp/x/prosody.cfg.lua',
      logFile: '/tmp/x/prosody.log',
      caFile: undefined,
      startedAt: new Date(0).toISOString(),
    } satisfies ServerState;
    expect(parseEnvFile(envFileText(state))).toMatchObject({
      XMPPBUS_TRANSPORT_KIND: 'component',
      XMPPBUS_TRANSPORT_SERVICE: 'xmpp://127.0.0.1:5347',
      XMPPBUS_TRANSPORT_DOMAIN: 'orders.localhost',
      XMPPBUS_PASSWORD: 'we\'ird "secret" #1',
    });
  });
});
