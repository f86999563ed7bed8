/**
 * The optional logger transports report to. Console-compatible (`logger: console` works);
 * pino/winston fit with a thin adapter. The default is silent.
 */
export interface Logger {
  error(message: string, ...details: unknown[]): void;
  warn(message: string, ...details: unknown[]): void;
  info(message: string, ...details: unknown[]): void;
  debug(message: string, ...details: unknown[]): void;
}

const noop = (): void => {};

export const silentLogger: Logger = Object.freeze({ error: noop, warn: noop, info: noop, debug: noop });
