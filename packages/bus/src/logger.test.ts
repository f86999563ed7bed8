import { XmppBusError } from '@xmppbus/core';
import { describe, expect, it } from 'vitest';
import { createLogger, pinoLogger, type PinoLike } from './logger.js';

const NOW = Date.UTC(2026, 0, 2, 3, 4, 5);

describe('createLogger', () => {
  it('writes one JSON line per entry at or above its level, errors with code and stack', () => {
    const lines: string[] = [];
    const log = createLogger({
      level: 'warn',
      format: 'json',
      write: (l) => lines.push(l),
      now: () => NOW,
      fields: { service: 'orders' },
      context: () => ({ trace_id: 't1' }),
    });
    log.info('dropped');
    log.warn('multi\nline', { n: 1 }, 'x');
    log.error('failed', new XmppBusError('ERR_STORE', 'disk full'));
    expect(lines).toHaveLength(2);
    expect(lines.every((l) => l.endsWith('\n') && !l.slice(0, -1).includes('\n'))).toBe(true);
    expect(JSON.parse(lines[0]!)).toEqual({
      time: '2026-01-02T03:04:05.000Z',
      level: 'warn',
      msg: 'multi\nline',
      service: 'orders',
      trace_id: 't1',
      details: [{ n: 1 }, 'x'],
    });
    const err = JSON.parse(lines[1]!) as { err: { name: string; code: string; stack: string } };
    expect(err.err).toMatchObject({ name: 'XmppBusError', code: 'ERR_STORE', message: 'disk full' });
    expect(err.err.stack).toContain('disk full');
  });

  it('writes a readable single line in text format, and nothing when silent', () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'debug', format: 'text', write: (l) => lines.push(l), now: () => NOW });
    const cyclic: Record<string, unknown> = {};
    cyclic['self'] = cyclic;
    log.debug('a\nb', new Error('boom'), cyclic);
    expect(lines).toEqual(['2026-01-02T03:04:05.000Z DEBUG a ⏎ b [Error: boom] {"self":"[circular]"}\n']);
    const quiet: string[] = [];
    createLogger({ level: 'silent', write: (l) => quiet.push(l) }).error('x');
    expect(quiet).toEqual([]);
  });
});

describe('pinoLogger', () => {
  it('maps (message, ...details) onto pino (obj, msg): the first error as err', () => {
    const calls: [string, object, string | undefined][] = [];
    const fake: PinoLike = {
      error: (o, m) => calls.push(['error', o, m]),
      warn: (o, m) => calls.push(['warn', o, m]),
      info: (o, m) => calls.push(['info', o, m]),
      debug: (o, m) => calls.push(['debug', o, m]),
    };
    const log = pinoLogger(fake);
    const e = new Error('boom');
    log.error('failed (ref r1)', e, { id: 1 });
    log.info('plain');
    expect(calls).toEqual([
      ['error', { err: e, details: { id: 1 } }, 'failed (ref r1)'],
      ['info', {}, 'plain'],
    ]);
  });
});
