/**
 * The bus's loggers. Library packages stay silent unless given a logger; the bus is where a
 * service gets one that speaks out of the box: warnings and errors on stderr, one line each
 * (JSON lines for machines, or a readable single line), plus an adapter for pino.
 */
import type { Logger } from '@xmppbus/core';
import type { LogFormat, LogLevel } from './config-schema.js';

const RANK: Readonly<Record<LogLevel, number>> = { error: 0, warn: 1, info: 2, debug: 3, silent: -1 };

export interface StderrLoggerOptions {
  /** Lowest level written (default `warn`); `silent` writes nothing. */
  level?: LogLevel;
  /** `json` (one JSON object per line) or `text`; default `text` on a terminal, else `json`. */
  format?: LogFormat;
  /** Bound to every line, e.g. `{ service: 'orders' }`. */
  fields?: Readonly<Record<string, unknown>>;
  /**
   * Fields computed per line (e.g. the active trace's `trace_id`/`span_id`); `undefined` adds none.
   * Called only for lines that are written.
   */
  context?: () => Readonly<Record<string, unknown>> | undefined;
  /** Where lines go (default: `process.stderr.write`). Each call receives one line ending in `\n`. */
  write?: (line: string) => void;
  /** Time source for the `time` field (default `Date.now`). */
  now?: () => number;
}

/** A console-free logger writing to stderr (or `write`). */
export function createLogger(options: StderrLoggerOptions = {}): Logger {
  const threshold = RANK[options.level ?? 'warn'];
  const format = options.format ?? (process.stderr.isTTY ? 'text' : 'json');
  const write = options.write ?? ((line: string) => void process.stderr.write(line));
  const now = options.now ?? Date.now;
  const fields = options.fields ?? {};
  const emit = (level: Exclude<LogLevel, 'silent'>) => {
    if (threshold < RANK[level]) return noop;
    return (message: string, ...details: unknown[]): void => {
      const extra = { ...fields, ...options.context?.() };
      write(
        format === 'json'
          ? jsonLine(now(), level, message, extra, details)
          : textLine(now(), level, message, extra, details),
      );
    };
  };
  return { error: emit('error'), warn: emit('warn'), info: emit('info'), debug: emit('debug') };
}

const noop = (): void => undefined;

function jsonLine(
  time: number,
  level: string,
  msg: string,
  extra: Readonly<Record<string, unknown>>,
  details: readonly unknown[],
): string {
  const line: Record<string, unknown> = { time: new Date(time).toISOString(), level, msg, ...extra };
  const rest: unknown[] = [];
  for (const d of details) {
    if (d instanceof Error && line['err'] === undefined) line['err'] = errorFields(d, true);
    else rest.push(d instanceof Error ? errorFields(d, false) : d);
  }
  if (rest.length > 0) line['details'] = rest.length === 1 ? rest[0] : rest;
  return `${safeJson(line)}\n`;
}

function textLine(
  time: number,
  level: string,
  msg: string,
  extra: Readonly<Record<string, unknown>>,
  details: readonly unknown[],
): string {
  let line = `${new Date(time).toISOString()} ${level.toUpperCase().padEnd(5)} ${oneLine(msg)}`;
  for (const [k, v] of Object.entries(extra)) line += ` ${k}=${oneLine(typeof v === 'string' ? v : safeJson(v))}`;
  for (const d of details) {
    if (d instanceof Error) {
      const code = (d as { code?: unknown }).code;
      line += ` [${d.name}${typeof code === 'string' ? ` ${code}` : ''}: ${oneLine(d.message)}]`;
    } else line += ` ${oneLine(typeof d === 'string' ? d : safeJson(d))}`;
  }
  return `${line}\n`;
}

function errorFields(err: Error, withStack: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = { name: err.name, message: err.message };
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') out['code'] = code;
  if (withStack && err.stack) out['stack'] = err.stack;
  return out;
}

function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ⏎ ');
}

/** JSON.stringify that survives cycles and BigInts. */
function safeJson(value: unknown): string {
  const seen = new WeakSet<object>();
  return JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v === 'bigint') return v.toString();
    if (typeof v === 'object' && v !== null) {
      if (seen.has(v)) return '[circular]';
      seen.add(v);
    }
    return v;
  });
}

/** The part of a pino logger the adapter uses (structural, so pino stays an optional peer). */
export interface PinoLike {
  error(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

/**
 * Adapts a pino logger (`pinoLogger(pino())`): the first `Error` detail goes to `err` (pino's
 * standard serializer), the other details to `details`.
 */
export function pinoLogger(pino: PinoLike): Logger {
  const adapt =
    (level: keyof PinoLike) =>
    (message: string, ...details: unknown[]): void => {
      const obj: Record<string, unknown> = {};
      const rest: unknown[] = [];
      for (const d of details) {
        if (d instanceof Error && obj['err'] === undefined) obj['err'] = d;
        else rest.push(d);
      }
      if (rest.length > 0) obj['details'] = rest.length === 1 ? rest[0] : rest;
      pino[level](obj, message);
    };
  return { error: adapt('error'), warn: adapt('warn'), info: adapt('info'), debug: adapt('debug') };
}
