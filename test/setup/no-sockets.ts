/**
 * Setup file of the `unit` vitest project: unit tests must not open sockets (the issue's
 * "no sockets" rule, made mechanical). Connecting or listening throws with a pointer to the
 * in-memory hub; real-server tests belong in test/ (the `integration` project). The patch is
 * installed per test file and removed afterwards, so a reused worker is left untouched.
 */
import net from 'node:net';
import { afterAll, beforeAll } from 'vitest';

const originalConnect = net.Socket.prototype.connect;
const originalListen = net.Server.prototype.listen;

function refuse(what: string): never {
  throw new Error(
    `unit tests must not ${what}: use @xmppbus/transport-memory (memoryHub) or an in-memory stream; ` +
      'tests against real servers go in test/ (integration project)',
  );
}

beforeAll(() => {
  net.Socket.prototype.connect = function connect(): never {
    refuse('open sockets');
  } as typeof originalConnect;
  net.Server.prototype.listen = function listen(): never {
    refuse('listen on ports');
  } as typeof originalListen;
});

afterAll(() => {
  net.Socket.prototype.connect = originalConnect;
  net.Server.prototype.listen = originalListen;
});
