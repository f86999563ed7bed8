/**
 * The optional logger library code reports to. Console-compatible (`logger: console` works);
 * pino/winston fit with a thin adapter. Library code never prints on its own: the default is
 * `silentLogger`.
 */
export interface Logger {
  error(message: string, ...details: unknown[]): void;
  warn(message: string, ...details: unknown[]): void;
  info(message: string, ...details: unknown[]): void;
  debug(message: string, ...details: unknown[]): void;
}

const noop = (): void => {};

/** A logger that discards everything (the default everywhere). */
export const silentLogger: Logger = Object.freeze({ error: noop, warn: noop, info: noop, debug: noop });
