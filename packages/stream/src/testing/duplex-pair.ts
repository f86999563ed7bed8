import { Duplex } from 'node:stream';

/**
 * Two connected in-memory byte streams: what one end writes, the other reads. Ending one end
 * ends the other's readable side; destroying one destroys both (a dropped TCP connection).
 * Wrap one end with `StreamLink.over()` and script the server on the other: unit tests open no
 * sockets.
 */
export function duplexPair(): [Duplex, Duplex] {
  const ends: Duplex[] = [];
  const make = (peer: () => Duplex): Duplex =>
    new Duplex({
      read() {},
      write(chunk: Buffer, _enc, cb) {
        peer().push(chunk);
        cb();
      },
      final(cb) {
        peer().push(null);
        cb();
      },
      destroy(err, cb) {
        const p = peer();
        if (!p.destroyed) p.destroy();
        cb(err);
      },
    });
  ends.push(
    make(() => ends[1]!),
    make(() => ends[0]!),
  );
  return [ends[0]!, ends[1]!];
}
