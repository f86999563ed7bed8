// Proves the unit project's guard is active: unit tests cannot open or accept sockets.
import net from 'node:net';
import { expect, it } from 'vitest';

it('connect and listen throw in the unit project', () => {
  expect(() => net.connect(1, '127.0.0.1')).toThrow(/must not open sockets/);
  expect(() => net.createServer().listen(0, '127.0.0.1')).toThrow(/must not listen/);
});
