/** Optional logger (console-compatible). The default is silent: library code never prints. */
export interface Logger {
  error(message: string, ...details: unknown[]): void;
  warn(message: string, ...details: unknown[]): void;
  info(message: string, ...details: unknown[]): void;
  debug(message: string, ...details: unknown[]): void;
}

const noop = (): void => {};
export const silentLogger: Logger = Object.freeze({ error: noop, warn: noop, info: noop, debug: noop });
